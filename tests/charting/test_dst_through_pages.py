"""TIM-2 end to end through the pages: a nurse charts through the views
(open, site, drug, Start/Stop taps on a frozen clock, vials, waste, sign),
the suggestion service codes the signed encounter, and the coded minutes,
lines and date of service are what absolute time says; a local time typed
into a gap of the clock is refused with a message naming it.

The clinic is on America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT,
2026-11-01 02:00 EDT -> 01:00 EST.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from charting import services
from charting.models import AccessSite, Administration, Encounter
from coding import services as coding_services
from tests.factories import DrugFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC


@pytest.fixture(autouse=True)
def _no_celery(monkeypatch):
    """Signing enqueues the coding task after commit; the test runs the service itself."""
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _post(client, name, data, **kwargs):
    response = client.post(reverse(name, kwargs=kwargs), data)
    assert response.status_code in (200, 302), (name, response.status_code, response.content[:500])
    return response


def chart_infusion(client, clinic, traveller, *, opened: dt.datetime, start: dt.datetime, stop: dt.datetime) -> Encounter:
    """Open today's encounter, add a site and a chemo drug, tap Start at
    `start` and Stop at `stop` (server clock frozen), chart vials and waste,
    sign. Returns the signed encounter."""
    patient = PatientFactory(clinic=clinic)
    drug = DrugFactory(name="dst-drug", hcpcs="J9999", billing_unit_value=Decimal("10"), billing_unit_unit="mg")
    traveller.move_to(opened)
    _post(client, "charting:open_encounter", {"patient": patient.pk, "setting": "office"})
    encounter = Encounter.objects.get(patient=patient)
    _post(client, "charting:add_access_site", {"site-kind": AccessSite.Kind.PERIPHERAL_IV, "site-location": "left forearm", "site-gauge": "22"}, pk=encounter.pk)
    site = encounter.access_sites.get()
    _post(
        client, "charting:add_administration",
        {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-access_site": site.pk, "adm-dose_value": "500", "adm-dose_unit": "mg", "adm-purpose": "treatment", "adm-admin_class": ""},
        pk=encounter.pk,
    )
    adm = encounter.administrations.get()
    traveller.move_to(start)
    _post(client, "charting:start_administration", {}, pk=adm.pk)
    traveller.move_to(stop)
    _post(client, "charting:stop_administration", {}, pk=adm.pk)
    _post(client, "charting:record_vials", {"ndc": "57894-030-01", "lot": "LOT1", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "5"}, pk=adm.pk)
    _post(client, "charting:confirm_waste", {"none": "on", "wasted_unit": "mg"}, pk=adm.pk)
    traveller.move_to(stop + dt.timedelta(minutes=5))
    _post(client, "charting:sign_encounter", {}, pk=encounter.pk)
    encounter.refresh_from_db()
    assert encounter.is_signed, "signed without a confirmation: the record was complete"
    adm.refresh_from_db()
    assert (adm.started_at, adm.stopped_at) == (start, stop)
    return encounter


def coded(encounter: Encounter) -> dict[str, tuple[int, int | None, dt.date | None]]:
    suggestion = coding_services.suggest_for_encounter(encounter.pk)
    return {line.code: (line.units, line.minutes, line.date_of_service) for line in suggestion.lines.all()}


def test_tim2_fall_back_0130_edt_to_0115_est_is_45_minutes(nurse_client, clinic, coder, client):
    """01:30 EDT (05:30 UTC) to 01:15 EST (06:15 UTC) on 2026-11-01: the wall
    clock says -15 minutes, absolute time says 45: one initial chemo hour."""
    with time_machine.travel(utc(2026, 11, 1, 5, 0), tick=False) as traveller:
        encounter = chart_infusion(nurse_client, clinic, traveller, opened=utc(2026, 11, 1, 5, 20), start=utc(2026, 11, 1, 5, 30), stop=utc(2026, 11, 1, 6, 15))
        lines = coded(encounter)
        # The coder's review page shows the same drip minutes.
        client.force_login(coder)
        page = client.get(reverse("coding:review", kwargs={"encounter_id": encounter.pk})).content.decode()
    assert encounter.date_of_service == dt.date(2026, 11, 1)
    assert lines["96413"] == (1, 45, dt.date(2026, 11, 1))
    assert "96415" not in lines
    assert lines["J9999"][0] == 50  # 500 mg in 10 mg units
    assert "45 min" in page


def test_tim2_spring_forward_0150_est_to_0310_edt_is_20_minutes(nurse_client, clinic):
    """01:50 EST (06:50 UTC) to 03:10 EDT (07:10 UTC) on 2026-03-08: the wall
    clock says 80 minutes, absolute time 20: 96413 needs more than 15."""
    with time_machine.travel(utc(2026, 3, 8, 6, 0), tick=False) as traveller:
        encounter = chart_infusion(nurse_client, clinic, traveller, opened=utc(2026, 3, 8, 6, 40), start=utc(2026, 3, 8, 6, 50), stop=utc(2026, 3, 8, 7, 10))
        lines = coded(encounter)
    assert lines["96413"] == (1, 20, dt.date(2026, 3, 8))


def test_tim2_midnight_spanning_infusion_keeps_the_date_of_its_start(nurse_client, clinic):
    """23:30 to 00:45 EDT (03:30 to 04:45 UTC): 75 minutes, one initial hour
    (15 minutes past it is no add-on, R7), dated the day it started (D4, R14),
    although it was stopped and signed the next day."""
    with time_machine.travel(utc(2026, 6, 16, 3, 0), tick=False) as traveller:
        encounter = chart_infusion(nurse_client, clinic, traveller, opened=utc(2026, 6, 16, 3, 20), start=utc(2026, 6, 16, 3, 30), stop=utc(2026, 6, 16, 4, 45))
        lines = coded(encounter)
    assert encounter.date_of_service == dt.date(2026, 6, 15)
    assert lines["96413"] == (1, 75, dt.date(2026, 6, 15))
    assert "96415" not in lines
    assert all(when == dt.date(2026, 6, 15) for _units, _minutes, when in lines.values())


def _started(client, clinic, traveller, at: dt.datetime) -> Administration:
    patient = PatientFactory(clinic=clinic)
    drug = DrugFactory(name="dst-drug")
    traveller.move_to(at - dt.timedelta(minutes=30))
    _post(client, "charting:open_encounter", {"patient": patient.pk, "setting": "office"})
    encounter = Encounter.objects.get(patient=patient)
    _post(client, "charting:add_access_site", {"site-kind": AccessSite.Kind.PERIPHERAL_IV, "site-location": "left forearm", "site-gauge": "22"}, pk=encounter.pk)
    _post(
        client, "charting:add_administration",
        {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-access_site": encounter.access_sites.get().pk, "adm-dose_value": "500", "adm-dose_unit": "mg", "adm-purpose": "treatment"},
        pk=encounter.pk,
    )
    adm = encounter.administrations.get()
    _post(client, "charting:start_administration", {}, pk=adm.pk)
    traveller.move_to(at)
    return adm


def test_tim2_typed_spring_forward_gap_time_is_refused_on_the_correction_form(nurse_client, clinic):
    """02:30 on 2026-03-08 never happened in New York: the correction form
    answers 400 with the message on its field, and nothing changes."""
    with time_machine.travel(utc(2026, 3, 8, 8, 0), tick=False) as traveller:  # 04:00 EDT
        adm = _started(nurse_client, clinic, traveller, utc(2026, 3, 8, 8, 0))
        adm.refresh_from_db()
        before = adm.started_at
        response = nurse_client.post(reverse("charting:correct_time", kwargs={"pk": adm.pk}), {"target": "started_at", "new_value": "2026-03-08T02:30", "reason": "tapped late"})
    assert response.status_code == 400
    message = "02:30 did not exist on Sun 8 Mar 2026 in America/New_York: the clocks went forward from 02:00 to 03:00. Check the time."
    form = next(a for a in response.context["administrations"] if a.pk == adm.pk).correction_form
    assert form.errors["new_value"] == [message]
    assert message in response.content.decode()
    adm.refresh_from_db()
    assert adm.started_at == before and not adm.time_corrections.exists()


def test_tim2_typed_fall_back_repeated_time_is_refused_as_ambiguous(nurse_client, clinic):
    with time_machine.travel(utc(2026, 11, 1, 8, 0), tick=False) as traveller:  # 03:00 EST
        adm = _started(nurse_client, clinic, traveller, utc(2026, 11, 1, 8, 0))
        response = nurse_client.post(
            reverse("charting:correct_time", kwargs={"pk": adm.pk}), {"target": "started_at", "new_value": "2026-11-01T01:30", "reason": "tapped late"}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200  # htmx: the card comes back with the form's error
    assert "01:30 happened twice on Sun 1 Nov 2026 in America/New_York" in response.content.decode()
    assert not adm.time_corrections.exists()


def test_tim2_typed_gap_time_is_refused_in_an_amendment(clinic, nurse):
    """The amendment parser reads typed times the same way (services)."""
    with time_machine.travel(utc(2026, 3, 8, 9, 0), tick=False):
        from tests.factories import AdministrationFactory, EncounterFactory, amending

        encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 8))
        adm = AdministrationFactory(encounter=encounter, started_at=utc(2026, 3, 8, 6, 0), stopped_at=utc(2026, 3, 8, 8, 0))
        with amending():
            Encounter.objects.filter(pk=encounter.pk).update(status="signed", signed_by=UserFactory(username="signer"), signed_at=utc(2026, 3, 8, 8, 30))
        from charting.models import AmendmentReason

        with pytest.raises(services.ChartingError, match="02:30 did not exist on Sun 8 Mar 2026"):
            services.amend_administration(adm, field="started_at", new_value="2026-03-08 02:30", reason=AmendmentReason.objects.filter(is_active=True).first(), reason_text="", actor=nurse)
