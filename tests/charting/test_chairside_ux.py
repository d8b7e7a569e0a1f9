"""Issue #8, the touch-first encounter page: the live timer's data and next
threshold, Undo inside/outside its window, access site checks, idempotent
taps, forms that keep what was typed."""

import datetime as dt
import re
import uuid

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from charting import services
from charting.models import AccessSite, AccessSiteCheck, Administration, Encounter, Pause, TapKey
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
T0 = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic, given_name="Ada", family_name="Zed", mrn="ZZ-UX-1"))


@pytest.fixture
def adm(encounter):
    return AdministrationFactory(encounter=encounter, label="infliximab", drug=DrugFactory(name="infliximab", admin_family="chemo_complex"))


def url(name, obj):
    return reverse(f"charting:{name}", kwargs={"pk": obj.pk})


def key():
    return str(uuid.uuid4())


# --- 2. live timer and next threshold ------------------------------------------------------


def test_a_running_drug_carries_its_timer_data_and_next_threshold(nurse_client, adm):
    with time_machine.travel(T0, tick=False):
        nurse_client.post(url("start_administration", adm), **HTMX)
    with time_machine.travel(T0 + dt.timedelta(minutes=10), tick=False):
        nurse_client.post(url("pause_administration", adm), {"reason": "Pump alarm"}, **HTMX)
    with time_machine.travel(T0 + dt.timedelta(minutes=15), tick=False):
        nurse_client.post(url("resume_administration", adm), **HTMX)
    with time_machine.travel(T0 + dt.timedelta(minutes=94), tick=False):
        html = nurse_client.get(url("encounter", adm.encounter)).content.decode()
    # 94 - 5 paused = 89 running minutes: the first add-on hour at 91 (R20).
    assert f'data-started="{int(T0.timestamp() * 1000)}"' in html
    assert 'data-paused-ms="300000"' in html
    assert 'data-thresholds="96415:91 96415:151' in html
    assert "96415 at 91 min — 2 min to go" in html
    assert "if this drug is the initial service" in html
    assert re.search(r'data-testid="minutes-infliximab"[^>]*>89<', html)


def test_a_paused_drug_sends_when_its_pause_began(nurse_client, adm):
    with time_machine.travel(T0, tick=False):
        services.start_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        services.pause_administration(adm, reason="Pump alarm", actor=None)
        html = nurse_client.get(url("encounter", adm.encounter)).content.decode()
    assert f'data-paused-since="{int((T0 + dt.timedelta(minutes=5)).timestamp() * 1000)}"' in html
    assert "96413 at 16 min — 11 min to go" in html


def test_a_stopped_drug_shows_no_threshold(nurse_client, adm):
    with time_machine.travel(T0, tick=False):
        services.start_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=30), tick=False):
        services.stop_administration(adm, actor=None)
        html = nurse_client.get(url("encounter", adm.encounter)).content.decode()
    assert 'data-testid="next-threshold-infliximab"' not in html
    assert 'data-thresholds=""' in html


def test_hydration_outranked_by_a_chemo_drug_shows_the_sequential_threshold(nurse_client, adm):
    """R6: chemo outranks hydration, so the hydration's hint is 96361 at 31 (R21), not 96360."""
    fluids = AdministrationFactory(encounter=adm.encounter, access_site=adm.access_site, label="saline", drug=DrugFactory(name="saline", admin_family="hydration"), purpose="hydration_medically_necessary")
    with time_machine.travel(T0, tick=False):
        services.start_administration(fluids, actor=None)
        services.start_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=20), tick=False):
        html = nurse_client.get(url("encounter", adm.encounter)).content.decode()
    assert "96361 at 31 min — 11 min to go" in html
    assert "as a sequential service" in html
    assert "96413 at 16 min" not in html and "96415 at 91 min — 71 min to go" in html  # the chemo: initial


# --- 3. undo ------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["start", "pause", "resume", "stop"])
def test_undo_inside_the_window_reverts_the_tap_and_is_audited(nurse_client, adm, event, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 10
    steps = ["start", "pause", "resume", "stop"][: ["start", "pause", "resume", "stop"].index(event) + 1]
    moment = T0
    for step in steps:
        with time_machine.travel(moment, tick=False):
            data = {"reason": "Pump alarm"} if step == "pause" else {}
            response = nurse_client.post(url(f"{step}_administration", adm), data, **HTMX)
            assert response.status_code == 200
        moment += dt.timedelta(minutes=5)
    tapped = moment - dt.timedelta(minutes=5)
    with time_machine.travel(tapped + dt.timedelta(seconds=10), tick=False):
        html = nurse_client.get(url("encounter", adm.encounter)).content.decode()
        assert f'data-testid="undo-infliximab">Undo {event}<' in html
        response = nurse_client.post(url("undo_administration", adm), {"event": event, "idempotency_key": key()}, **HTMX)
    assert response.status_code == 200
    assert f"{event.capitalize()} undone." in response.content.decode()
    assert 'data-testid="undo-infliximab"' not in response.content.decode()  # no second undo under the same finger
    adm.refresh_from_db()
    expected_state = {"start": "not_started", "pause": "running", "resume": "paused", "stop": "running"}[event]
    assert adm.state == expected_state
    if event == "pause":
        assert not Pause.objects.filter(administration=adm).exists()
    assert AuditEvent.objects.filter(action="charting.administration.undone", object_id=str(adm.pk)).count() == 1


def test_undo_of_a_stop_that_closed_a_pause_reopens_the_pause(nurse_client, adm):
    with time_machine.travel(T0, tick=False):
        services.start_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        services.pause_administration(adm, reason="Pump alarm", actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=6), tick=False):
        services.stop_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=6, seconds=3), tick=False):
        nurse_client.post(url("undo_administration", adm), {"event": "stop"}, **HTMX)
    adm.refresh_from_db()
    assert adm.state == "paused"


def test_undo_after_the_window_is_refused_and_points_at_correct_a_time(nurse_client, adm, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 10
    with time_machine.travel(T0, tick=False):
        nurse_client.post(url("start_administration", adm), **HTMX)
    with time_machine.travel(T0 + dt.timedelta(seconds=11), tick=False):
        html = nurse_client.get(url("encounter", adm.encounter)).content.decode()
        assert 'data-testid="undo-infliximab"' not in html
        response = nurse_client.post(url("undo_administration", adm), {"event": "start"}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Too late to undo the start" in body and "Correct a time" in body
    adm.refresh_from_db()
    assert adm.started_at == T0
    assert not AuditEvent.objects.filter(action="charting.administration.undone").exists()


def test_the_window_is_the_servers_not_the_clients(nurse_client, adm, settings):
    """Whatever the tablet sends, the server's clock decides (a client time is not read)."""
    settings.CHAIRSIDE_UNDO_SECONDS = 10
    with time_machine.travel(T0, tick=False):
        nurse_client.post(url("start_administration", adm), **HTMX)
    with time_machine.travel(T0 + dt.timedelta(minutes=2), tick=False):
        response = nurse_client.post(url("undo_administration", adm), {"event": "start", "client_time": T0.isoformat()}, HTTP_DATE="Tue, 10 Mar 2026 14:00:01 GMT", **HTMX)
    assert "Too late" in response.content.decode()


def test_undo_of_a_tap_that_is_not_the_last_is_refused(nurse_client, adm):
    with time_machine.travel(T0, tick=False):
        services.start_administration(adm, actor=None)
        services.pause_administration(adm, reason="Pump alarm", actor=None)
        response = nurse_client.post(url("undo_administration", adm), {"event": "start"}, **HTMX)
    assert "nothing to undo" in response.content.decode()
    adm.refresh_from_db()
    assert adm.started_at == T0


def test_undo_without_js_redirects_back_with_the_message(nurse_client, adm):
    with time_machine.travel(T0, tick=False):
        services.start_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(minutes=1), tick=False):
        response = nurse_client.post(url("undo_administration", adm), {"event": "start"}, follow=True)
    assert "Too late to undo" in response.content.decode()


def test_undo_setting_is_the_window(nurse_client, adm, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 30
    with time_machine.travel(T0, tick=False):
        services.start_administration(adm, actor=None)
    with time_machine.travel(T0 + dt.timedelta(seconds=25), tick=False):
        nurse_client.post(url("undo_administration", adm), {"event": "start"}, **HTMX)
    adm.refresh_from_db()
    assert adm.started_at is None


# --- 4. access site checks --------------------------------------------------------------


def test_a_site_check_is_stamped_with_server_time_and_shown(nurse_client, nurse, encounter):
    site = AccessSiteFactory(encounter=encounter, label="A")
    with time_machine.travel(T0, tick=False):
        response = nurse_client.post(url("check_access_site", encounter), {"site": site.pk, "finding": "patent", "note": "", "idempotency_key": key()}, **HTMX)
    assert response.status_code == 200
    check = AccessSiteCheck.objects.get()
    assert (check.site, check.checked_at, check.checked_by, check.finding) == (site, T0, nurse, "patent")
    assert response["HX-Trigger"] == "chart-changed"
    assert "checked 0 min ago" in response.content.decode()
    assert AuditEvent.objects.filter(action="charting.access_site.checked").count() == 1
    with time_machine.travel(T0 + dt.timedelta(minutes=42), tick=False):
        html = nurse_client.get(url("encounter", encounter)).content.decode()
    assert "checked 42 min ago" in html
    assert re.search(r'class="badge text-bg-danger d-none"[^>]*data-testid="site-check-due-A"', html)


def test_check_due_after_the_clinics_interval(nurse_client, encounter, clinic):
    clinic.site_check_minutes = 30
    clinic.save()
    with time_machine.travel(T0, tick=False):
        AccessSiteFactory(encounter=encounter, label="A")
    with time_machine.travel(T0 + dt.timedelta(minutes=31), tick=False):
        html = nurse_client.get(url("encounter", encounter)).content.decode()
    assert "not checked yet" in html
    assert re.search(r'class="badge text-bg-danger"[^>]*data-testid="site-check-due-A"', html)
    assert 'data-check-every="30"' in html


def test_other_finding_needs_a_note_and_keeps_what_was_typed(nurse_client, encounter):
    site = AccessSiteFactory(encounter=encounter, label="A")
    response = nurse_client.post(url("check_access_site", encounter), {"site": site.pk, "finding": "other", "note": "  "}, **HTMX)
    html = response.content.decode()
    assert "Say what was found in the note." in html
    assert '<option value="other" selected>' in html
    assert not AccessSiteCheck.objects.exists()
    response = nurse_client.post(url("check_access_site", encounter), {"site": site.pk, "finding": "bogus", "note": "warm"})
    assert response.status_code == 400
    assert 'value="warm"' in response.content.decode()


def test_site_checks_are_frozen_after_signing(nurse, encounter):
    site = AccessSiteFactory(encounter=encounter, label="A")
    check = services.record_site_check(site, finding="patent", actor=nurse)
    Encounter.objects.filter(pk=encounter.pk).update(status="signed", signed_by=nurse, signed_at=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessSiteCheck.objects.filter(pk=check.pk).update(finding="infiltration_suspected")
    with pytest.raises(services.SignedEncounterError):
        services.record_site_check(site, finding="patent", actor=nurse)
    assert check.pgh_event_model.objects.filter(pgh_obj_id=check.pk).count() == 1


def test_another_clinics_site_check_is_404_and_a_coder_403(client, other_clinic_nurse, coder, encounter):
    site = AccessSiteFactory(encounter=encounter, label="A")
    client.force_login(other_clinic_nurse)
    assert client.post(url("check_access_site", encounter), {"site": site.pk, "finding": "patent"}).status_code == 404
    client.force_login(coder)
    assert client.post(url("check_access_site", encounter), {"site": site.pk, "finding": "patent"}).status_code == 403
    assert not AccessSiteCheck.objects.exists()


# --- 5. idempotent taps -----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["start", "stop", "pause", "resume"])
def test_a_retried_tap_same_idempotency_key_creates_one_event(nurse_client, adm, action):
    if action in ("stop", "pause"):
        services.start_administration(adm, actor=None)
    if action == "resume":
        services.start_administration(adm, actor=None)
        services.pause_administration(adm, reason="x", actor=None)
    tap = key()
    data = {"idempotency_key": tap, "reason": "Pump alarm"}
    first = nurse_client.post(url(f"{action}_administration", adm), data, **HTMX)
    second = nurse_client.post(url(f"{action}_administration", adm), data, **HTMX)
    assert first.status_code == second.status_code == 200
    assert f'id="adm-{adm.pk}"' in second.content.decode()
    event = {"start": "started", "stop": "stopped", "pause": "paused", "resume": "resumed"}[action]
    assert AuditEvent.objects.filter(action=f"charting.administration.{event}", object_id=str(adm.pk)).count() == 1
    assert "already" not in second.content.decode()  # the replay answers the same outcome, not an error
    assert TapKey.objects.filter(key=tap).count() == 1
    if action == "pause":
        assert Pause.objects.filter(administration=adm).count() == 1


def test_a_retried_tap_with_the_key_in_the_header_creates_one_event(nurse_client, adm):
    tap = key()
    for _ in range(2):
        assert nurse_client.post(url("start_administration", adm), HTTP_IDEMPOTENCY_KEY=tap, **HTMX).status_code == 200
    assert AuditEvent.objects.filter(action="charting.administration.started").count() == 1


def test_a_double_submitted_add_drug_without_js_creates_one_row(nurse_client, encounter):
    site = AccessSiteFactory(encounter=encounter, label="A")
    drug = DrugFactory(name="rituximab")
    data = {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-access_site": site.pk, "adm-dose_value": "500", "adm-dose_unit": "mg", "adm-purpose": "treatment", "idempotency_key": key()}
    first = nurse_client.post(url("add_administration", encounter), data)
    second = nurse_client.post(url("add_administration", encounter), data)
    assert first.status_code == second.status_code == 302
    assert Administration.objects.filter(encounter=encounter).count() == 1


def test_a_double_submitted_add_site_without_js_creates_one_row(nurse_client, encounter):
    data = {"site-kind": "port", "site-location": "chest", "idempotency_key": key()}
    first = nurse_client.post(url("add_access_site", encounter), data)
    second = nurse_client.post(url("add_access_site", encounter), data, **HTMX)
    assert first.status_code == 302 and second.status_code == 200
    assert AccessSite.objects.filter(encounter=encounter).count() == 1


def test_each_rendered_form_carries_its_own_server_key(nurse_client, encounter, adm):
    html = nurse_client.get(url("encounter", encounter)).content.decode()
    keys = re.findall(r'name="idempotency_key" value="([0-9a-f-]{36})"', html)
    assert len(keys) >= 3 and len(set(keys)) == len(keys)


def test_a_failed_tap_frees_its_key_for_the_retry(nurse_client, adm):
    tap = key()
    response = nurse_client.post(url("stop_administration", adm), {"idempotency_key": tap}, **HTMX)
    assert "has not started yet" in response.content.decode()
    assert not TapKey.objects.filter(key=tap).exists()


def test_a_key_used_for_another_action_is_refused(nurse_client, adm):
    tap = key()
    nurse_client.post(url("start_administration", adm), {"idempotency_key": tap}, **HTMX)
    response = nurse_client.post(url("stop_administration", adm), {"idempotency_key": tap}, **HTMX)
    assert "already used for something else" in response.content.decode()
    adm.refresh_from_db()
    assert adm.stopped_at is None


def test_a_site_check_retried_with_its_key_is_one_check(nurse_client, encounter):
    site = AccessSiteFactory(encounter=encounter, label="A")
    data = {"site": site.pk, "finding": "patent", "idempotency_key": key()}
    for _ in range(2):
        nurse_client.post(url("check_access_site", encounter), data, **HTMX)
    assert AccessSiteCheck.objects.count() == 1


# --- 6. nothing typed is lost ----------------------------------------------------------------


def test_pause_form_comes_back_with_the_reason(nurse_client, adm):
    services.start_administration(adm, actor=None)
    long = "x" * 250
    html = nurse_client.post(url("pause_administration", adm), {"reason": long}, **HTMX).content.decode()
    assert f'value="{long}"' in html


def test_vial_and_waste_forms_come_back_filled(nurse_client, adm):
    html = nurse_client.post(url("record_vials", adm), {"ndc": "bad-ndc", "lot": "L123", "count": "2", "size_value": "100", "size_unit": "mg", "container_type": "single_dose"}, **HTMX).content.decode()
    assert 'value="bad-ndc"' in html and 'value="L123"' in html and 'value="2"' in html
    Administration.objects.filter(pk=adm.pk).update(container_type="single_dose")
    html = nurse_client.post(url("confirm_waste", adm), {"wasted_value": "-5", "wasted_unit": "mg"}, **HTMX).content.decode()
    assert 'value="-5"' in html


def test_add_drug_and_edit_forms_come_back_filled(nurse_client, encounter, adm):
    drug = DrugFactory(name="rituximab")
    html = nurse_client.post(url("add_administration", encounter), {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-dose_value": "-3", "adm-dose_unit": "mg", "adm-purpose": "treatment"}, **HTMX).content.decode()
    assert 'value="-3"' in html
    html = nurse_client.post(url("edit_administration", adm), {"dose_value": "abc", "dose_unit": "mg", "purpose": "treatment", "route": "iv_infusion"}, **HTMX).content.decode()
    assert 'value="abc"' in html


# --- query budget: the site checks are one query whatever the number of sites -----------------


def test_the_page_reads_site_checks_in_one_query(nurse_client, encounter, nurse):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert nurse_client.get(url("encounter", encounter)).status_code == 200
        return len(ctx)

    site = AccessSiteFactory(encounter=encounter, label="A")
    services.record_site_check(site, finding="patent", actor=nurse)
    one = count()
    for label in "BCD":
        other = AccessSiteFactory(encounter=encounter, label=label)
        services.record_site_check(other, finding="patent", actor=nurse)
        services.record_site_check(other, finding="patent", actor=nurse)
    assert count() == one
