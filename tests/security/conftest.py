"""Fixtures of the adversarial tests: one charted draft encounter, one signed
and coded encounter, people with no role / another clinic's coder."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from charting import services
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _no_celery(monkeypatch):
    """Signing enqueues a coding task after commit; these tests never want it on Redis."""
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)


@pytest.fixture
def no_role_user(clinic):
    return UserFactory(username="nobody", roles=[], clinics=[clinic])


@pytest.fixture
def other_clinic_coder(other_clinic):
    return UserFactory(username="other_coder", roles=["coder"], clinics=[other_clinic])


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic, given_name="Ada", family_name="Zed", mrn="SEC-0001-ZZCANARY-4711"))


@pytest.fixture
def site(encounter):
    return AccessSiteFactory(encounter=encounter, label="A")


@pytest.fixture
def adm(encounter, site):
    return AdministrationFactory(encounter=encounter, access_site=site, label="infliximab", drug=DrugFactory(name="infliximab"))


@pytest.fixture
def signed_encounter(clinic):
    """A signed encounter with one 60-minute infusion (not coded yet)."""
    signer = UserFactory(username="signer", roles=["nurse"], clinics=[clinic])
    encounter = EncounterFactory(
        patient=PatientFactory(clinic=clinic, mrn="SEC-SIGNED-ZZCANARY-4711"),
        date_of_service=dt.date(2025, 6, 10),
        status="signed",
        signed_by=signer,
        signed_at=timezone.now(),
    )
    site = AccessSiteFactory(encounter=encounter, label="A")
    start = dt.datetime(2025, 6, 10, 13, 0, tzinfo=dt.UTC)
    AdministrationFactory(
        encounter=encounter,
        label="1",
        drug=DrugFactory(name="signed drug", hcpcs="", billing_unit_value=None, billing_unit_unit="", admin_family="therapeutic"),
        access_site=site,
        dose_value=Decimal(100),
        started_at=start,
        stopped_at=start + dt.timedelta(minutes=60),
    )
    return encounter


@pytest.fixture
def line(signed_encounter):
    from coding.services import suggest_for_encounter

    return suggest_for_encounter(signed_encounter.pk).lines.order_by("position").first()
