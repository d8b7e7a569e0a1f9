"""Attack 4: markup typed into a patient name, an access site location, a pause
reason (and a catalog drug name) is escaped on every page and partial that shows it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from charting import services
from coding.services import suggest_for_encounter
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, chart_vials

from .conftest import HTMX

pytestmark = pytest.mark.django_db

PAYLOAD = '<script>alert("x")</script>'
IMG = '"><img src=x onerror=alert(1)>'
RAW = ("<script>alert", "<img src=x")


def assert_escaped(html: str, *, expect: int = 1):
    for raw in RAW:
        assert raw not in html, raw
    assert html.count("&lt;script&gt;alert(") + html.count("&lt;img src=x") >= expect


@pytest.fixture
def hostile(clinic, nurse):
    patient = PatientFactory(clinic=clinic, given_name=PAYLOAD, family_name=IMG, mrn="XSS<b>1</b>")
    encounter = EncounterFactory(patient=patient)
    site = AccessSiteFactory(encounter=encounter, label="A", location=PAYLOAD)
    adm = AdministrationFactory(encounter=encounter, access_site=site, label="x", drug=DrugFactory(name=f"drug {PAYLOAD}"))
    services.start_administration(adm, actor=nurse)
    services.pause_administration(adm, reason=IMG + PAYLOAD, actor=nurse)
    return adm


def test_nurse_pages_escape_everything(client, nurse, hostile):
    client.force_login(nurse)
    worklist = client.get(reverse("charting:worklist")).content.decode()
    assert_escaped(worklist, expect=2)  # row and the open-encounter <select>
    page = client.get(reverse("charting:encounter", kwargs={"pk": hostile.encounter.pk})).content.decode()
    assert_escaped(page, expect=4)  # title, header, site, drug, pause
    assert "XSS&lt;b&gt;1&lt;/b&gt;" in page
    partial = client.post(reverse("charting:resume_administration", kwargs={"pk": hostile.pk}), **HTMX).content.decode()
    assert_escaped(partial, expect=2)  # drug name, pause reason


def test_messages_naming_a_hostile_drug_are_escaped(client, nurse, hostile):
    client.force_login(nurse)
    services.stop_administration(hostile, actor=nurse)
    # plain POST: the refusal is a flash message on the page
    page = client.post(reverse("charting:pause_administration", kwargs={"pk": hostile.pk}), {"reason": PAYLOAD}, follow=True).content.decode()
    assert "is not running, so it cannot be paused" in page
    assert_escaped(page)
    partial = client.post(reverse("charting:stop_administration", kwargs={"pk": hostile.pk}), **HTMX).content.decode()
    assert "already stopped" in partial
    assert_escaped(partial)


def test_retyped_form_values_are_escaped(client, nurse, hostile):
    client.force_login(nurse)
    services.stop_administration(hostile, actor=nurse)
    response = client.post(reverse("charting:add_access_site", kwargs={"pk": hostile.encounter.pk}), {"site-kind": "port", "site-location": PAYLOAD, "site-gauge": "99"})
    assert response.status_code == 400
    assert_escaped(response.content.decode())
    response = client.post(reverse("charting:correct_time", kwargs={"pk": hostile.pk}), {"target": "started_at", "new_value": IMG, "reason": PAYLOAD}, **HTMX)
    assert_escaped(response.content.decode(), expect=2)


def test_coder_pages_escape_everything(client, coder, hostile, nurse):
    services.stop_administration(hostile, actor=nurse)
    chart_vials(hostile)
    services.sign_encounter(hostile.encounter, actor=nurse)
    suggestion = suggest_for_encounter(hostile.encounter.pk)
    client.force_login(coder)
    queue = client.get(reverse("coding:queue")).content.decode()
    assert_escaped(queue)
    review = client.get(reverse("coding:review", kwargs={"encounter_id": hostile.encounter.pk})).content.decode()
    assert_escaped(review, expect=3)  # patient, drug, site location
    line = suggestion.lines.first()
    if line is not None:
        partial = client.post(reverse("coding:accept_line", kwargs={"line_id": line.pk}), **HTMX).content.decode()
        assert_escaped(partial)
