"""Attack 3 (CSRF): every write URL refuses a POST without the CSRF token, and
accepts it with the token htmx sends (X-CSRFToken from the page's hx-headers)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from charting import services
from charting.models import AccessSite, Administration, Encounter, OtherService, Pause, TimeCorrection
from coding.models import SuggestedLine

from .test_urls import CODER_WRITE, NURSE_WRITE, URLS

pytestmark = pytest.mark.django_db


def _targets(adm, line):
    out = {}
    for name in NURSE_WRITE:
        if name == "charting:open_encounter":
            out[name] = (reverse(name), {"patient": adm.encounter.patient.pk, "setting": "office"})
        elif name == "charting:edit_access_site":
            out[name] = (reverse(name, kwargs={"pk": adm.encounter_id}), {"site": adm.access_site_id, "separate_site_medically_required": "on", "reason": "Vesicant on its own line"})
        elif name == "charting:check_access_site":
            out[name] = (reverse(name, kwargs={"pk": adm.encounter_id}), {"site": adm.access_site_id, "finding": "patent"})
        elif name == "charting:document_em_service":
            em = adm.encounter.other_services.create(kind="em_visit", level="99213")
            out[name] = (reverse(name, kwargs={"pk": adm.encounter_id}), {"service": em.pk, "significant_separately_identifiable": "on", "note": "New rash assessed"})
        elif "/administrations/" in URLS[name]:
            out[name] = (reverse(name, kwargs={"pk": adm.pk}), {"reason": "Pump alarm", "target": "started_at", "new_value": "2025-01-01T09:00"})
        else:
            out[name] = (reverse(name, kwargs={"pk": adm.encounter.pk}), {"site-kind": "port"})
    out["coding:accept_line"] = (reverse("coding:accept_line", kwargs={"line_id": line.pk}), {})
    out["coding:accept_all"] = (reverse("coding:accept_all", kwargs={"encounter_id": line.suggestion.encounter_id}), {})
    encounter_id = line.suggestion.encounter_id
    reason = {"reason": "1", "reason_text": "x", "version": "0"}
    out["coding:change_line"] = (reverse("coding:change_line", kwargs={"line_id": line.pk}), {"code": "96366", "units": "2", **reason})
    out["coding:delete_line"] = (reverse("coding:delete_line", kwargs={"line_id": line.pk}), reason)
    out["coding:add_line"] = (reverse("coding:add_line", kwargs={"encounter_id": encounter_id}), {"add-code": "96366", "add-units": "1", "add-reason": "1", "add-version": "0"})
    out["coding:withdraw_line"] = (reverse("coding:withdraw_line", kwargs={"final_id": 1}), {"version": "0"})
    out["coding:open_query"] = (reverse("coding:open_query", kwargs={"encounter_id": encounter_id}), {"query-question": "Why?", "query-version": "0"})
    out["coding:close_query"] = (reverse("coding:close_query", kwargs={"query_id": 1}), {"version": "0"})
    out["coding:finalise"] = (reverse("coding:finalise", kwargs={"encounter_id": encounter_id}), {"version": "0"})
    out["coding:export_download"] = (reverse("coding:export_download"), {"date_from": "2025-06-01", "date_to": "2025-06-30", "format": "csv"})
    assert set(out) == NURSE_WRITE | CODER_WRITE
    return out


def _snapshot():
    from charting.models import Amendment
    from coding.models import DocumentationQuery, ExportLog, FinalLine

    return (
        FinalLine.objects.count(),
        DocumentationQuery.objects.count(),
        ExportLog.objects.count(),
        Amendment.objects.count(),
        list(Administration.objects.values_list("pk", "started_at", "stopped_at", "dose_value", "route", "purpose", "entered_in_error_at")),
        Pause.objects.count(),
        TimeCorrection.objects.count(),
        list(AccessSite.objects.values_list("pk", "separate_site_medically_required", "reason")),
        list(OtherService.objects.values_list("pk", "significant_separately_identifiable", "detail")),
        list(Encounter.objects.values_list("pk", "status")),
        list(SuggestedLine.objects.values_list("pk", "accepted_at")),
    )


@pytest.mark.parametrize("name", sorted(NURSE_WRITE | CODER_WRITE))
def test_post_without_csrf_token_is_403_and_changes_nothing(nurse, coder, adm, line, name):
    target, data = _targets(adm, line)[name]
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(coder if name.startswith("coding:") else nurse)
    if name in ("charting:stop_administration", "charting:pause_administration"):
        services.start_administration(adm, actor=None)
    before = _snapshot()
    response = csrf_client.post(target, data)
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    response = csrf_client.post(target, data, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN="forged-token-0123456789")
    assert response.status_code == 403
    assert _snapshot() == before


def test_htmx_post_with_the_pages_token_works(nurse, adm):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(nurse)
    page = csrf_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter.pk})).content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    response = csrf_client.post(reverse("charting:start_administration", kwargs={"pk": adm.pk}), HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    adm.refresh_from_db()
    assert adm.started_at is not None
