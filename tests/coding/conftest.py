"""Fixtures of the coding tests: people, charted encounters, a real Celery worker."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from charting.models import Clinic, Encounter
from tests.factories import (
    AccessSiteFactory,
    AdministrationFactory,
    DrugFactory,
    EncounterFactory,
    PatientFactory,
    UserFactory,
)


@pytest.fixture
def other_clinic_coder(other_clinic):
    return UserFactory(username="other_coder", roles=["coder"], clinics=[other_clinic])


@pytest.fixture
def make_encounter(clinic):
    """Chart a signed office encounter with `n` sequential 60-minute therapeutic
    infusions (the first is the initial 96365, the others 96367)."""

    def make(n: int = 1, *, in_clinic: Clinic | None = None, signed: bool = True) -> Encounter:
        where = in_clinic or clinic
        signer = UserFactory(roles=["nurse"], clinics=[where]) if signed else None
        encounter = EncounterFactory(
            patient=PatientFactory(clinic=where),
            date_of_service=dt.date(2025, 6, 10),
            status="signed" if signed else "draft",
            signed_by=signer,
            signed_at=timezone.now() if signed else None,
        )
        site = AccessSiteFactory(encounter=encounter, label="A")
        start = dt.datetime(2025, 6, 10, 13, 0, tzinfo=dt.UTC)
        for i in range(n):
            AdministrationFactory(
                encounter=encounter,
                label=str(i + 1),
                drug=DrugFactory(name=f"test drug {i}", hcpcs="", billing_unit_value=None, billing_unit_unit="", admin_family="therapeutic"),
                access_site=site,
                dose_value=Decimal(100),
                started_at=start + dt.timedelta(minutes=61 * i),
                stopped_at=start + dt.timedelta(minutes=61 * i + 60),
            )
        return encounter

    return make


@pytest.fixture
def review_reasons(transactional_db):
    """The override and amendment reasons the data migrations seed. A
    transactional test's database is flushed after the test before it, seeds
    included, so those tests seed them again the migrations' way."""
    import importlib

    from django.apps import apps

    importlib.import_module("coding.migrations.0008_seed_override_reasons").seed(apps, None)
    importlib.import_module("charting.migrations.0006_seed_amendment_reasons").seed(apps, None)
