"""Attack 2: another clinic's ids are 404 for every view, plain and htmx, GET and POST,
and nothing of the other clinic changes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from charting.models import AccessSite, Administration, Encounter, Pause, TimeCorrection
from coding.models import SuggestedLine

from .conftest import HTMX
from .test_urls import NURSE_READ, NURSE_WRITE, URLS, WRITE

pytestmark = pytest.mark.django_db

ADM_URLS = {n for n in NURSE_READ | NURSE_WRITE if "/administrations/" in URLS[n]}
ENC_URLS = {n for n in NURSE_READ | NURSE_WRITE if "/encounters/" in URLS[n] and n != "charting:open_encounter"}

# What a curious user would post: well-formed data, so only the scoping stops it.
POST_DATA = {
    "charting:add_access_site": {"site-kind": "port", "site-location": "chest"},
    "charting:add_administration": {"adm-route": "subcutaneous", "adm-purpose": "treatment"},
    "charting:pause_administration": {"reason": "Pump alarm"},
    "charting:correct_time": {"target": "started_at", "new_value": "2025-01-01T09:00", "reason": "x"},
}


def test_every_nurse_url_with_an_id_is_covered():
    with_id = (NURSE_READ | NURSE_WRITE) - {"charting:worklist", "charting:open_encounter"}
    assert with_id == ADM_URLS | ENC_URLS
    assert ADM_URLS and ENC_URLS


def _snapshot():
    return (
        list(Administration.objects.values_list("pk", "started_at", "stopped_at")),
        Pause.objects.count(),
        TimeCorrection.objects.count(),
        AccessSite.objects.count(),
        Administration.objects.count(),
        list(Encounter.objects.values_list("pk", "status")),
        list(SuggestedLine.objects.values_list("pk", "accepted_at")),
    )


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", sorted(ADM_URLS | ENC_URLS))
def test_another_clinics_nurse_gets_404(client, other_clinic_nurse, adm, name, htmx):
    if name in ADM_URLS:
        # a running drug, so that pause/stop/resume would all be possible for its own nurse
        from charting import services

        services.start_administration(adm, actor=None)
        target = reverse(name, kwargs={"pk": adm.pk})
    else:
        target = reverse(name, kwargs={"pk": adm.encounter.pk})
    client.force_login(other_clinic_nurse)
    before = _snapshot()
    headers = HTMX if htmx else {}
    if name in WRITE:
        response = client.post(target, POST_DATA.get(name, {}), **headers)
    else:
        response = client.get(target, **headers)
    assert response.status_code == 404
    assert _snapshot() == before
    # ids leak nothing: the patient's name is not in the 404 page
    assert b"Zed" not in response.content


def test_another_clinics_patient_cannot_be_opened(client, other_clinic_nurse, encounter):
    client.force_login(other_clinic_nurse)
    response = client.post(reverse("charting:open_encounter"), {"patient": encounter.patient.pk, "setting": "office"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert Encounter.objects.filter(clinic__in=[encounter.clinic]).count() == 1


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_another_clinics_coder_gets_404_on_review_and_accept(client, other_clinic_coder, line, htmx):
    encounter = line.suggestion.encounter
    client.force_login(other_clinic_coder)
    headers = HTMX if htmx else {}
    assert client.get(reverse("coding:review", kwargs={"encounter_id": encounter.pk}), **headers).status_code == 404
    assert client.post(reverse("coding:accept_line", kwargs={"line_id": line.pk}), **headers).status_code == 404
    assert client.post(reverse("coding:accept_all", kwargs={"encounter_id": encounter.pk}), **headers).status_code == 404
    line.refresh_from_db()
    assert not line.is_accepted
    assert b"queue-row" not in client.get(reverse("coding:queue")).content


def test_another_clinics_access_site_cannot_be_used(client, nurse, encounter, other_clinic):
    from tests.factories import AccessSiteFactory, DrugFactory, EncounterFactory, PatientFactory

    foreign = AccessSiteFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=other_clinic)), label="A")
    drug = DrugFactory(name="rituximab")
    client.force_login(nurse)
    response = client.post(
        reverse("charting:add_administration", kwargs={"pk": encounter.pk}),
        {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-access_site": foreign.pk, "adm-purpose": "treatment", "adm-dose_value": "100", "adm-dose_unit": "mg"},
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Administration.objects.filter(encounter=encounter).exists()


def test_a_coder_cannot_review_a_draft_of_their_own_clinic(client, coder, encounter):
    client.force_login(coder)
    assert client.get(reverse("coding:review", kwargs={"encounter_id": encounter.pk})).status_code == 404
    assert client.post(reverse("coding:accept_all", kwargs={"encounter_id": encounter.pk})).status_code == 404
