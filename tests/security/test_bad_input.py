"""Attack 3: bad input at the service and the view level.

Each refusal must be a clear message (200/400 with the text, or a redirect with
a message), never a 500, never lost typed data and never a silent second event.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting import services
from charting.models import AccessSite, Administration, Encounter, Pause, TimeCorrection
from charting.services import ChartingError
from coding import services as coding_services
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, amending, chart_vials

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def url(name, obj):
    return reverse(f"charting:{name}", kwargs={"pk": obj.pk})


def events(action):
    return AuditEvent.objects.filter(action=f"charting.administration.{action}").count()


def local_input(value: dt.datetime, clinic) -> str:
    return value.astimezone(clinic.tz).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def nurse_client(client, nurse):
    client.force_login(nurse)
    return client


@pytest.fixture
def ran(adm, nurse):
    """infliximab started 90 minutes ago and stopped 30 minutes ago (corrected into place)."""
    services.start_administration(adm, actor=nurse)
    services.stop_administration(adm, actor=nurse)
    now = timezone.now()
    Administration.objects.filter(pk=adm.pk).update(started_at=now - dt.timedelta(minutes=90), stopped_at=now - dt.timedelta(minutes=30))
    # Dated by the earliest time typed below (3 hours ago): just after
    # midnight that is the day before, which is not this encounter's date of
    # service otherwise, and would be refused as such.
    Encounter.objects.filter(pk=adm.encounter_id).update(date_of_service=timezone.localdate(now - dt.timedelta(hours=3), adm.encounter.clinic.tz))
    adm.refresh_from_db()
    return adm


def body(response) -> str:
    return response.content.decode()


# --- service level -------------------------------------------------------------------------------


def test_service_stop_before_start(adm, nurse):
    with pytest.raises(ChartingError, match="has not started yet"):
        services.stop_administration(adm, actor=nurse)
    adm.refresh_from_db()
    assert adm.stopped_at is None and events("stopped") == 0


def test_service_start_and_stop_twice_are_quiet_no_ops(adm, nurse):
    first = services.start_administration(adm, actor=nurse)
    again = services.start_administration(adm, actor=nurse)
    assert again.started_at == first.started_at and "already started" in again.notice
    stopped = services.stop_administration(adm, actor=nurse)
    again = services.stop_administration(adm, actor=nurse)
    assert again.stopped_at == stopped.stopped_at and "already stopped" in again.notice
    assert events("started") == 1 and events("stopped") == 1


def test_service_pause_and_resume_in_the_wrong_state(adm, nurse):
    with pytest.raises(ChartingError, match="not running"):
        services.pause_administration(adm, reason="Pump alarm", actor=nurse)
    services.start_administration(adm, actor=nurse)
    with pytest.raises(ChartingError, match="not paused"):
        services.resume_administration(adm, actor=nurse)
    for reason in ("", "   ", None):
        with pytest.raises(ChartingError, match="Say why"):
            services.pause_administration(adm, reason=reason, actor=nurse)
    services.pause_administration(adm, reason="Pump alarm", actor=nurse)
    with pytest.raises(ChartingError, match="already paused"):
        services.pause_administration(adm, reason="again", actor=nurse)
    services.stop_administration(adm, actor=nurse)
    with pytest.raises(ChartingError, match="not running"):
        services.pause_administration(adm, reason="Pump alarm", actor=nurse)
    with pytest.raises(ChartingError, match="not paused"):
        services.resume_administration(adm, actor=nurse)
    assert Pause.objects.filter(administration=adm).count() == 1


@pytest.mark.parametrize(
    "field, delta, reason, message",
    [
        ("started_at", dt.timedelta(hours=1), "late tap", "is in the future"),
        ("stopped_at", dt.timedelta(hours=1), "late tap", "is in the future"),
        ("stopped_at", -dt.timedelta(hours=3), "late tap", "is before start time"),
        ("started_at", -dt.timedelta(minutes=10), "", "A reason is required"),
        ("started_at", -dt.timedelta(minutes=10), "   ", "A reason is required"),
    ],
)
def test_service_bad_corrections_change_nothing(ran, nurse, field, delta, reason, message):
    before = (ran.started_at, ran.stopped_at)
    with pytest.raises(ChartingError, match=message):
        services.correct_time(ran, field=field, new_value=timezone.now() + delta, reason=reason, actor=nurse)
    ran.refresh_from_db()
    assert (ran.started_at, ran.stopped_at) == before and not TimeCorrection.objects.exists()


def test_service_correction_needs_an_aware_time(ran, nurse):
    with pytest.raises(ChartingError, match="time zone"):
        services.correct_time(ran, field="started_at", new_value=dt.datetime(2026, 1, 1, 9, 0), reason="x", actor=nurse)


@pytest.mark.parametrize("dose", [Decimal("0"), Decimal("-5"), Decimal("1e12"), Decimal("0.0001")])
def test_service_refuses_a_bad_dose_with_a_message(encounter, site, nurse, dose):
    """Not an IntegrityError/DataError from the database: a ChartingError naming the dose."""
    with pytest.raises(ChartingError) as info:
        services.add_administration(encounter, drug=DrugFactory(name="rituximab"), route="iv_infusion", access_site=site, dose_value=dose, dose_unit="mg", purpose="treatment", actor=nurse)
    assert info.value.field == "dose_value"
    assert not Administration.objects.filter(encounter=encounter).exists()


def test_service_iv_needs_a_site_of_this_encounter(encounter, nurse, clinic):
    drug = DrugFactory(name="rituximab")
    with pytest.raises(ChartingError, match="needs an access site"):
        services.add_administration(encounter, drug=drug, route="iv_push", access_site=None, dose_value=None, dose_unit="", purpose="treatment", actor=nurse)
    other_site = AccessSiteFactory(label="A")  # another encounter
    with pytest.raises(ChartingError, match="another encounter"):
        services.add_administration(encounter, drug=drug, route="iv_infusion", access_site=other_site, dose_value=None, dose_unit="", purpose="treatment", actor=nurse)
    assert not Administration.objects.filter(encounter=encounter).exists()


def test_service_sign_with_a_running_drug_then_twice(adm, nurse):
    services.start_administration(adm, actor=nurse)
    with pytest.raises(ChartingError, match="still running or paused: infliximab"):
        services.sign_encounter(adm.encounter, actor=nurse)
    services.stop_administration(adm, actor=nurse)
    chart_vials(adm)
    signed = services.sign_encounter(adm.encounter, actor=nurse)
    again = services.sign_encounter(adm.encounter, actor=nurse)
    assert "already signed" in again.notice and again.signed_at == signed.signed_at
    assert AuditEvent.objects.filter(action="charting.encounter.signed").count() == 1


def test_service_accept_twice_and_superseded(line, coder, signed_encounter):
    coding_services.accept_line(line, actor=coder)
    again = coding_services.accept_line(line, actor=coder)
    assert again.accepted_at is not None
    assert AuditEvent.objects.filter(action="coding.line.accepted").count() == 1
    # the documentation changes and is re-coded: the old suggestion is superseded
    with amending():  # the documentation was amended after signing
        Administration.objects.filter(encounter=signed_encounter).update(stopped_at=dt.datetime(2025, 6, 10, 15, 30, tzinfo=dt.UTC))
    new = coding_services.suggest_for_encounter(signed_encounter.pk)
    assert new.pk != line.suggestion_id
    stale = line.suggestion.lines.filter(accepted_at__isnull=True).first()
    if stale is not None:
        with pytest.raises(coding_services.CodingError, match="replaced"):
            coding_services.accept_line(stale, actor=coder)
    with pytest.raises(coding_services.CodingError, match="replaced"):
        coding_services.accept_all_lines(line.suggestion, actor=coder)


# --- view level: one-tap actions --------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_stop_before_start(nurse_client, adm, htmx):
    if htmx:
        response = nurse_client.post(url("stop_administration", adm), **HTMX)
        assert response.status_code == 200 and "has not started yet" in body(response)
    else:
        response = nurse_client.post(url("stop_administration", adm), follow=True)
        assert response.status_code == 200 and "has not started yet" in body(response)
    adm.refresh_from_db()
    assert adm.stopped_at is None


@pytest.mark.parametrize("action", ["start", "stop"])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_double_tap_makes_one_event(nurse_client, adm, action, htmx):
    if action == "stop":
        services.start_administration(adm, actor=None)
    headers = HTMX if htmx else {}
    first = nurse_client.post(url(f"{action}_administration", adm), **headers)
    adm.refresh_from_db()
    stamp = adm.started_at if action == "start" else adm.stopped_at
    second = nurse_client.post(url(f"{action}_administration", adm), follow=not htmx, **headers)
    assert first.status_code in (200, 302) and second.status_code == 200
    assert {"start": "already started at", "stop": "already stopped at"}[action] in body(second)
    adm.refresh_from_db()
    assert (adm.started_at if action == "start" else adm.stopped_at) == stamp
    assert events(f"{action}ed" if action == "start" else "stopped") == 1


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_pause_and_resume_in_the_wrong_state(nurse_client, adm, htmx):
    headers = HTMX if htmx else {"follow": True}
    response = nurse_client.post(url("pause_administration", adm), {"reason": "Pump alarm"}, **headers)
    assert response.status_code == 200 and "is not running, so it cannot be paused" in body(response)
    response = nurse_client.post(url("resume_administration", adm), **headers)
    assert response.status_code == 200 and "is not paused, so it cannot be resumed" in body(response)
    assert not Pause.objects.exists()


@pytest.mark.parametrize("reason", ["", "    "])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_pause_with_an_empty_reason_says_what_is_missing(nurse_client, adm, htmx, reason):
    services.start_administration(adm, actor=None)
    headers = HTMX if htmx else {"follow": True}
    response = nurse_client.post(url("pause_administration", adm), {"reason": reason}, **headers)
    assert response.status_code == 200
    assert "Say why the drug is paused." in body(response)
    assert not Pause.objects.exists()


# --- view level: corrections ------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    "case",
    ["future", "stop_before_start", "no_reason", "ambiguous_dst", "nonexistent_dst", "garbage", "foreign_target"],
)
def test_view_bad_corrections_keep_the_typed_form(nurse_client, ran, clinic, case, htmx):
    data = {"target": "started_at", "new_value": local_input(ran.started_at - dt.timedelta(minutes=5), clinic), "reason": "Tapped late at chair 7"}
    expected = {
        "future": "is in the future",
        "stop_before_start": "is before start time",
        "no_reason": "A reason is required.",
        # TIM-2: the message names what happened to the clock (charting/clock.py).
        "ambiguous_dst": "01:30 happened twice on Sun 1 Nov 2026 in America/New_York (the clocks went back an hour)",
        "nonexistent_dst": "02:30 did not exist on Sun 8 Mar 2026 in America/New_York: the clocks went forward from 02:00 to 03:00.",
        "garbage": "Enter a valid date/time.",
        "foreign_target": "Select a valid choice.",
    }[case]
    if case == "future":
        data["new_value"] = local_input(timezone.now() + dt.timedelta(hours=2), clinic)
    elif case == "stop_before_start":
        data |= {"target": "stopped_at", "new_value": local_input(ran.started_at - dt.timedelta(hours=1), clinic)}
    elif case == "no_reason":
        data["reason"] = "  "
    elif case == "ambiguous_dst":
        data["new_value"] = "2026-11-01T01:30"
    elif case == "nonexistent_dst":
        data["new_value"] = "2026-03-08T02:30"
    elif case == "garbage":
        data["new_value"] = "yesterday-ish"
    elif case == "foreign_target":
        other = AdministrationFactory(encounter=ran.encounter, label="other", drug=DrugFactory(name="other"), started_at=ran.started_at)
        pause = Pause.objects.create(administration=other, paused_at=ran.started_at, resumed_at=ran.started_at)
        data["target"] = f"paused_at:{pause.pk}"
    before = (ran.started_at, ran.stopped_at)
    response = nurse_client.post(url("correct_time", ran), data, **(HTMX if htmx else {}))
    assert response.status_code == (200 if htmx else 400)
    text = body(response).replace("&#x27;", "'").replace("’", "'")
    assert expected in text
    # what was typed comes back
    if case != "no_reason":
        assert "Tapped late at chair 7" in text
    if case in ("ambiguous_dst", "nonexistent_dst", "garbage"):
        assert f'value="{data["new_value"]}"' in text
    ran.refresh_from_db()
    assert (ran.started_at, ran.stopped_at) == before and not TimeCorrection.objects.exists()


# --- view level: adding sites and drugs --------------------------------------------------------------


def adm_post(the_drug, site=None, **overrides):
    data = {"adm-drug": the_drug.pk, "adm-route": "iv_infusion", "adm-access_site": site.pk if site else "", "adm-dose_value": "500", "adm-dose_unit": "mg", "adm-purpose": "adverse_reaction_treatment", "adm-admin_class": "therapeutic"}
    data.update({f"adm-{k}": v for k, v in overrides.items()})
    return data


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dose_value": "0"}, "Ensure this value is greater than or equal to 0.001."),
        ({"dose_value": "-5"}, "Ensure this value is greater than or equal to 0.001."),
        ({"dose_value": "five hundred"}, "Enter a number."),
        ({"dose_value": "NaN"}, "Enter a number."),
        ({"dose_value": "Infinity"}, "Enter a number."),
        ({"dose_value": "1e400"}, "Ensure that there are no more than 12 digits in total."),
        ({"dose_value": "99999999999999999999"}, "Ensure that there are no more than 12 digits in total."),
        ({"dose_value": "500", "dose_unit": ""}, "Give the unit of the dose."),
        ({"access_site": ""}, "This route needs an access site"),
        ({"drug": "987654321"}, "Select a valid choice."),
        ({"drug": "not-an-id"}, "Select a valid choice."),
        ({"route": "intrathecal"}, "Select a valid choice."),
    ],
)
def test_view_bad_drug_entries_keep_the_typed_form(nurse_client, encounter, site, overrides, message, htmx):
    drug = DrugFactory(name="rituximab")
    response = nurse_client.post(url("add_administration", encounter), adm_post(drug, site, **overrides), **(HTMX if htmx else {}))
    assert response.status_code == (200 if htmx else 400)
    text = body(response)
    assert message in text
    # the rest of what was typed is still selected
    assert re.search(r'<option value="adverse_reaction_treatment" selected>', text)
    assert re.search(r'<option value="therapeutic" selected>', text)
    if "drug" not in overrides:
        assert re.search(rf'<option value="{drug.pk}" selected>', text)
    assert not Administration.objects.filter(encounter=encounter).exists()


def test_view_access_site_of_another_encounter_is_refused(nurse_client, encounter, site, clinic):
    from tests.factories import EncounterFactory, PatientFactory

    sibling = AccessSiteFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), label="A")
    response = nurse_client.post(url("add_administration", encounter), adm_post(DrugFactory(name="rituximab"), sibling))
    assert response.status_code == 400 and "Select a valid choice." in body(response)
    assert not Administration.objects.filter(encounter=encounter).exists()


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    "data, message",
    [
        ({"site-placed_at": "2026-11-01T01:30"}, "01:30 happened twice on Sun 1 Nov 2026 in America/New_York"),
        ({"site-placed_at": "2026-03-08T02:30"}, "02:30 did not exist on Sun 8 Mar 2026 in America/New_York"),
        ({"site-placed_at": "2099-01-01T10:00"}, "The placement time is in the future."),
        ({"site-gauge": "40"}, "Gauge must be between 14 and 26."),
        ({"site-separate_site_medically_required": "on", "site-reason": "  "}, "Say why a separate site was medically required."),
    ],
)
def test_view_bad_access_site_keeps_the_typed_form(nurse_client, encounter, data, message, htmx):
    post = {"site-kind": "port", "site-location": "right chest wall", "site-gauge": "20"} | data
    response = nurse_client.post(url("add_access_site", encounter), post, **(HTMX if htmx else {}))
    assert response.status_code == (200 if htmx else 400)
    text = body(response).replace("&#x27;", "'").replace("’", "'")
    assert message in text
    assert "right chest wall" in text and re.search(r'<option value="port" selected>', text)
    assert not AccessSite.objects.filter(encounter=encounter).exists()


# --- view level: after signing ----------------------------------------------------------------------


@pytest.fixture
def signed(adm, nurse):
    """The nurse's own encounter, run and signed while the page was still open in another tab."""
    services.start_administration(adm, actor=nurse)
    services.stop_administration(adm, actor=nurse)
    chart_vials(adm)
    services.sign_encounter(adm.encounter, actor=nurse)
    adm.refresh_from_db()
    return adm


def _snapshot():
    return (
        list(Administration.objects.values_list("pk", "started_at", "stopped_at")),
        Pause.objects.count(),
        TimeCorrection.objects.count(),
        AccessSite.objects.count(),
    )


SIGNED_MESSAGE = "signed documentation can only be changed by an amendment"


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("change", ["start", "stop", "pause", "resume", "correct", "add_site", "add_drug"])
def test_view_changes_after_signing_are_refused_with_a_message(nurse_client, signed, clinic, change, htmx):
    fresh = AdministrationFactory(encounter=signed.encounter, label="fresh", drug=DrugFactory(name="fresh"), access_site=signed.access_site)
    requests = {
        "start": (url("start_administration", fresh), {}),
        "stop": (url("stop_administration", signed), {}),
        "pause": (url("pause_administration", signed), {"reason": "Pump alarm"}),
        "resume": (url("resume_administration", signed), {}),
        "correct": (url("correct_time", signed), {"target": "started_at", "new_value": local_input(signed.started_at - dt.timedelta(minutes=5), clinic), "reason": "late tap"}),
        "add_site": (url("add_access_site", signed.encounter), {"site-kind": "port", "site-location": "chest"}),
        "add_drug": (url("add_administration", signed.encounter), adm_post(DrugFactory(name="rituximab"), signed.access_site)),
    }
    target, data = requests[change]
    before = _snapshot()
    response = nurse_client.post(target, data, **(HTMX if htmx else {}))
    # REC-1: 409 Conflict, the message saying to amend (htmx is sent to the chart, which shows it).
    assert response.status_code == 409, change
    text = body(response)
    if htmx:
        assert SIGNED_MESSAGE in text
        text = body(nurse_client.get(response["HX-Redirect"]))
    assert SIGNED_MESSAGE in text, change
    assert _snapshot() == before


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_sign_with_a_running_drug_then_twice(nurse_client, adm, htmx):
    headers = HTMX if htmx else {}
    services.start_administration(adm, actor=None)
    response = nurse_client.post(url("sign_encounter", adm.encounter), **headers)
    assert response.status_code == 200 if htmx else response.status_code == 302
    page = nurse_client.get(url("encounter", adm.encounter))
    assert "still running or paused: infliximab" in body(page)
    services.stop_administration(adm, actor=None)
    chart_vials(adm)
    nurse_client.post(url("sign_encounter", adm.encounter), **headers)
    nurse_client.get(url("encounter", adm.encounter))  # consume the success message
    nurse_client.post(url("sign_encounter", adm.encounter), **headers)
    page = nurse_client.get(url("encounter", adm.encounter))
    assert "This encounter was already signed at" in body(page)
    assert AuditEvent.objects.filter(action="charting.encounter.signed").count() == 1
    assert Encounter.objects.get(pk=adm.encounter.pk).status == "signed"


# --- view level: coder -------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_accept_twice_is_one_acceptance(client, coder, line, htmx):
    client.force_login(coder)
    target = reverse("coding:accept_line", kwargs={"line_id": line.pk})
    first = client.post(target, **(HTMX if htmx else {}))
    second = client.post(target, **(HTMX if htmx else {}))
    assert first.status_code == second.status_code == (200 if htmx else 302)
    if htmx:
        assert 'data-testid="line-accepted"' in body(second)
    line.refresh_from_db()
    assert line.is_accepted
    assert AuditEvent.objects.filter(action="coding.line.accepted").count() == 1


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_view_accept_a_superseded_line_says_reload(client, coder, line, signed_encounter, htmx):
    with amending():  # the documentation was amended after signing
        Administration.objects.filter(encounter=signed_encounter).update(stopped_at=dt.datetime(2025, 6, 10, 15, 30, tzinfo=dt.UTC))
    coding_services.suggest_for_encounter(signed_encounter.pk)
    client.force_login(coder)
    response = client.post(reverse("coding:accept_line", kwargs={"line_id": line.pk}), **(HTMX if htmx else {}))
    review = reverse("coding:review", kwargs={"encounter_id": signed_encounter.pk})
    if htmx:
        assert response.status_code == 200 and response["HX-Redirect"] == review
    else:
        assert response.status_code == 302 and response["Location"] == review
    page = client.get(review)
    assert "This suggestion has been replaced since the page was loaded" in body(page)
    line.refresh_from_db()
    assert not line.is_accepted


def test_view_accept_all_before_coding_ran_is_a_message_not_a_404(client, coder, signed_encounter):
    client.force_login(coder)
    response = client.post(reverse("coding:accept_all", kwargs={"encounter_id": signed_encounter.pk}), follow=True)
    assert response.status_code == 200
    assert "There is no suggestion to accept: reload the encounter." in body(response)
    assert 'data-testid="coding-pending"' in body(response)


def test_view_accept_all_from_a_stale_page_does_not_accept_unseen_lines(client, coder, line, signed_encounter):
    """The coder's page shows suggestion 1; the encounter is re-coded (suggestion 2)
    before they press Accept all: nothing of suggestion 2 may be accepted unseen."""
    client.force_login(coder)
    review = reverse("coding:review", kwargs={"encounter_id": signed_encounter.pk})
    page = body(client.get(review))
    shown = re.search(r'name="suggestion" value="(\d+)"', page)
    assert shown and int(shown.group(1)) == line.suggestion_id
    with amending():  # the documentation was amended after signing
        Administration.objects.filter(encounter=signed_encounter).update(stopped_at=dt.datetime(2025, 6, 10, 15, 30, tzinfo=dt.UTC))
    new = coding_services.suggest_for_encounter(signed_encounter.pk)
    assert new.pk != line.suggestion_id

    response = client.post(reverse("coding:accept_all", kwargs={"encounter_id": signed_encounter.pk}), {"suggestion": shown.group(1)}, follow=True)

    assert response.status_code == 200
    assert "This suggestion has been replaced since the page was loaded" in body(response)
    assert not new.lines.filter(accepted_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="coding.line.accepted").exists()


@pytest.mark.parametrize("posted", ["", "abc", "999999"])
def test_view_accept_all_with_a_bogus_suggestion_id_is_a_message(client, coder, line, signed_encounter, posted):
    client.force_login(coder)
    response = client.post(reverse("coding:accept_all", kwargs={"encounter_id": signed_encounter.pk}), {"suggestion": posted}, follow=True)
    assert response.status_code == 200 and "There is no suggestion to accept: reload the encounter." in body(response)
    assert not line.suggestion.lines.filter(accepted_at__isnull=False).exists()
