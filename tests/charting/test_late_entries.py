"""REC-3: `recorded_at` is the server's time (a posted one is ignored); a start
charted more than CHAIRSIDE_LATE_ENTRY_MINUTES after it happened is a late
entry, flagged at threshold + 1 s and not at threshold - 1 s (both the chair's
panel and the sweep), and shown to the nurse and to the coder."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from charting import checks, services
from charting.models import AccessSite, Administration, DocumentationFlag, Encounter, FlagKind
from coding.services import suggest_for_encounter
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, chart_vials

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)  # 11:00 EDT in the clinic


def test_rec3_posted_recorded_at_is_ignored(nurse_client, clinic):
    """A client posting recorded_at (bare or under the form prefix) for a site
    and a drug gets the server's time; a posted started_at on Start too."""
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    fake = "2026-03-10T06:00"
    with time_machine.travel(NOW, tick=False):
        nurse_client.post(
            reverse("charting:add_access_site", kwargs={"pk": encounter.pk}),
            {"site-kind": AccessSite.Kind.PERIPHERAL_IV, "site-location": "left forearm", "site-gauge": "22", "site-recorded_at": fake, "recorded_at": fake},
        )
        site = encounter.access_sites.get()
        nurse_client.post(
            reverse("charting:add_administration", kwargs={"pk": encounter.pk}),
            {"adm-drug": DrugFactory().pk, "adm-route": "iv_infusion", "adm-access_site": site.pk, "adm-dose_value": "500", "adm-dose_unit": "mg",
             "adm-purpose": "treatment", "adm-recorded_at": fake, "recorded_at": fake},
        )
        adm = encounter.administrations.get()
        nurse_client.post(reverse("charting:start_administration", kwargs={"pk": adm.pk}), {"started_at": fake, "recorded_at": fake})
    adm.refresh_from_db()
    site.refresh_from_db()
    assert site.recorded_at == NOW and adm.recorded_at == NOW and adm.started_at == NOW
    assert DocumentationFlag.objects.filter(kind=FlagKind.LATE_ENTRY).count() == 0


@pytest.fixture
def late_limit(settings):
    settings.CHAIRSIDE_LATE_ENTRY_MINUTES = 60
    return dt.timedelta(minutes=60)


def _charted_now(encounter, started_at) -> Administration:
    """A drug charted (recorded_at = the frozen server clock) with a start `started_at`."""
    adm = AdministrationFactory(encounter=encounter, drug=DrugFactory(name="late drug"), started_at=started_at, stopped_at=NOW)
    assert adm.recorded_at == NOW
    return adm


@pytest.mark.parametrize(("offset", "late"), [(dt.timedelta(seconds=1), True), (dt.timedelta(seconds=-1), False), (dt.timedelta(0), False)], ids=["threshold+1s", "threshold-1s", "threshold"])
def test_rec3_late_entry_boundary(clinic, late_limit, offset, late):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    with time_machine.travel(NOW, tick=False):
        adm = _charted_now(encounter, NOW - late_limit - offset)
        chart = Encounter.objects.for_chart().get(pk=encounter.pk)
        panel = [i for i in checks.check_encounter(chart, now=NOW) if i.kind == FlagKind.LATE_ENTRY]
        counts = services.sweep_flags(now=NOW)
    swept = DocumentationFlag.objects.filter(kind=FlagKind.LATE_ENTRY, administration=adm)
    assert bool(panel) is late and swept.exists() is late
    assert (adm.late_entry_minutes(late_limit) is not None) is late
    if late:
        assert panel[0].message == "Late drug started 09:59 was charted at 11:00: give the reason for the late entry (correct the start)."
        assert not panel[0].blocking and counts["opened"] >= 1


def test_rec3_late_entry_is_shown_to_the_nurse_and_to_the_coder(client, clinic, nurse, coder, late_limit, monkeypatch):
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    with time_machine.travel(NOW, tick=False):
        adm = chart_vials(_charted_now(encounter, NOW - dt.timedelta(minutes=95)))
        on_time = chart_vials(AdministrationFactory(encounter=encounter, drug=DrugFactory(name="prompt drug"), started_at=NOW, stopped_at=NOW + dt.timedelta(minutes=1)))
        client.force_login(nurse)
        nurse_page = client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
        services.sign_encounter(encounter, actor=nurse)
        suggest_for_encounter(encounter.pk)
        client.force_login(coder)
        coder_page = client.get(reverse("coding:review", kwargs={"encounter_id": encounter.pk})).content.decode()
    assert "Late drug started 09:25 was charted at 11:00" in nurse_page
    assert coder_page.count('data-testid="late-entry"') == 1
    assert "late drug (" + adm.label + ") started 2026-03-10 09:25, charted 2026-03-10 11:00" in coder_page
    assert "95 min later" in coder_page and "No reason given by the nurse." in coder_page
    assert on_time.label + ") started" not in coder_page


def test_rec3_a_corrected_start_is_shown_to_the_coder_as_explained(client, clinic, nurse, coder, late_limit, monkeypatch):
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    with time_machine.travel(NOW, tick=False):
        adm = chart_vials(_charted_now(encounter, NOW - dt.timedelta(minutes=30)))
        services.correct_time(adm, field="started_at", new_value=NOW - dt.timedelta(minutes=120), reason="charted after the code blue", actor=nurse)
        services.sign_encounter(encounter, actor=nurse)
        suggest_for_encounter(encounter.pk)
        client.force_login(coder)
        page = client.get(reverse("coding:review", kwargs={"encounter_id": encounter.pk})).content.decode()
    assert "120 min later" in page and "The start was corrected with a reason" in page
    assert not DocumentationFlag.objects.filter(kind=FlagKind.LATE_ENTRY).exists()
