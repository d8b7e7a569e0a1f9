"""services.refresh_flags / refresh_flags_task: one encounter's flags between sweeps."""

import datetime as dt

import pytest

from charting import loadgen, services
from charting.models import Administration, DocumentationFlag, Encounter
from charting.tasks import refresh_flags_task
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

NOW = dt.datetime(2026, 3, 10, 23, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.mark.django_db
def test_a_gap_opens_one_flag_a_fix_resolves_it_and_nothing_changes_twice(clinic):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    adm = AdministrationFactory(encounter=enc, drug=DrugFactory(name="infliximab", hcpcs=""), started_at=NOW - 8 * H)
    Administration.objects.filter(pk=adm.pk).update(recorded_at=adm.started_at)
    first = services.refresh_flags(enc.pk, now=NOW)
    assert first["opened"] >= 1 and first["resolved"] == 0
    flag = DocumentationFlag.objects.open().get(administration=adm, kind="still_running")
    assert flag.message.startswith("Stop time missing for infliximab")
    assert services.refresh_flags(enc.pk, now=NOW) == {"opened": 0, "resolved": 0, "open": first["open"]}
    Administration.objects.filter(pk=adm.pk).update(stopped_at=NOW - 6 * H)
    services.refresh_flags(enc.pk, now=NOW)
    flag.refresh_from_db()
    assert flag.resolved_at == NOW
    assert not DocumentationFlag.objects.open().filter(administration=adm, kind="still_running").exists()


@pytest.mark.django_db
def test_unknown_encounter_raises(db):
    import uuid

    with pytest.raises(Encounter.DoesNotExist):
        services.refresh_flags(uuid.uuid4(), now=NOW)


@pytest.mark.django_db
def test_refreshing_every_encounter_leaves_the_sweep_nothing_to_do(db):
    """The per-encounter Python path and the set-based SQL sweep give the same flags."""
    loadgen.generate(clinics=2, encounters=700, seed=21, days=30, today=dt.date(2026, 3, 10))
    for encounter_id in Encounter.objects.values_list("pk", flat=True):
        services.refresh_flags(encounter_id, now=NOW)
    assert DocumentationFlag.objects.open().count() > 0
    assert services.sweep_flags(now=NOW) == {"opened": 0, "resolved": 0, "open": DocumentationFlag.objects.open().count(), "skipped": 0}


@pytest.mark.django_db
def test_the_task_refreshes_one_encounter(clinic, monkeypatch):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    AdministrationFactory(encounter=enc, drug=DrugFactory(name="rituximab", hcpcs=""), started_at=NOW - 8 * H)
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    result = refresh_flags_task.apply(args=[str(enc.pk)]).get()
    assert result["opened"] == DocumentationFlag.objects.open().filter(encounter=enc).count() >= 1


@pytest.mark.django_db
def test_vials_waste_and_signing_resolve_their_flags_at_once_not_at_the_next_sweep(clinic, nurse, monkeypatch):
    """Session 4: the card showed a stale "No vials charted" above the charted
    vials until the next sweep. Charting the vials, confirming the waste and
    signing now refresh the encounter's flags in their own transaction."""
    from decimal import Decimal

    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    adm = AdministrationFactory(encounter=enc, drug=DrugFactory(name="rituximab"), started_at=NOW - 8 * H, stopped_at=NOW - 6 * H, dose_value=Decimal("700"), dose_unit="mg")
    Administration.objects.filter(pk=adm.pk).update(recorded_at=adm.started_at)
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    services.refresh_flags(enc.pk, now=NOW)

    def open_kinds():
        return set(DocumentationFlag.objects.open().filter(encounter=enc).values_list("kind", flat=True))

    assert "ndc_lot_missing" in open_kinds()
    services.record_vials(adm, ndc="50242-051-21", lot="LOT7", expiry=None, container_type="single_dose", size_value=Decimal("100"), size_unit="mg", count=7, actor=nurse)
    assert "ndc_lot_missing" not in open_kinds()
    assert "waste_unconfirmed" in open_kinds()  # the vials opened this one, at once too
    services.confirm_waste(adm, wasted_value=Decimal("0"), wasted_unit="mg", actor=nurse)
    assert "waste_unconfirmed" not in open_kinds()
    services.sign_encounter(enc, actor=nurse)
    assert open_kinds() == set()
    resolved = DocumentationFlag.objects.filter(encounter=enc, kind__in=["ndc_lot_missing", "waste_unconfirmed"])
    assert resolved.count() == 2 and all(f.resolved_at == NOW for f in resolved)
