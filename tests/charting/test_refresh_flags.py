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
