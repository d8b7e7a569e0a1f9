"""Persona fixtures, so permission tests read like stories.

The nurse and the coder work in `clinic`; `other_clinic_nurse` works in
`other_clinic` only. All share the password `tests.factories.PASSWORD`.
"""

import pytest

from tests.factories import ClinicFactory, UserFactory


@pytest.fixture
def clinic(db):
    return ClinicFactory(name="Riverside Infusion", time_zone="America/New_York")


@pytest.fixture
def other_clinic(db):
    return ClinicFactory(name="Hilltop Infusion", time_zone="America/Los_Angeles")


@pytest.fixture
def nurse(clinic):
    return UserFactory(username="nurse", first_name="Nora", last_name="Nurse", roles=["nurse"], clinics=[clinic])


@pytest.fixture
def other_clinic_nurse(other_clinic):
    return UserFactory(username="other_nurse", first_name="Olga", last_name="Other", roles=["nurse"], clinics=[other_clinic])


@pytest.fixture
def coder(clinic):
    return UserFactory(username="coder", first_name="Cody", last_name="Coder", roles=["coder"], clinics=[clinic])


@pytest.fixture
def admin(clinic):
    return UserFactory(username="admin", first_name="Ada", last_name="Admin", roles=["admin"], clinics=[clinic], is_staff=True)


@pytest.fixture
def nurse_client(client, nurse):
    client.force_login(nurse)
    return client
