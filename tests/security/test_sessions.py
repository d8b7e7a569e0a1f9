"""Sessions: idle time-out that polling does not extend, absolute lifetime,
id rotation, log-out, cookies, no-store, and disabling a user (SES-1..SES-6, AC-11)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client

from audit.models import AuditEvent
from infusion_site.middleware import BACKGROUND_HEADER
from tests.factories import PASSWORD, EncounterFactory, PatientFactory, confirmed_device, next_totp

from .test_urls import URLS, WRITE

pytestmark = pytest.mark.django_db

WORKLIST = "/nurse/"
LOGIN = "/accounts/login/"
POLL = {"HTTP_HX_REQUEST": "true", f"HTTP_{BACKGROUND_HEADER.upper().replace('-', '_')}": "1"}


@pytest.fixture
def frozen():
    with time_machine.travel(dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC), tick=False) as traveller:
        yield traveller


def session_key(client) -> str | None:
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie.value if cookie else None


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


# --- SES-1: idle time-out -----------------------------------------------------------------------


def test_ses1_default_idle_timeout_is_15_minutes():
    assert settings.CHAIRSIDE_SESSION_IDLE_MINUTES == 15


def test_ses1_idle_14_59_is_kept_15_01_is_logged_out(client, nurse, frozen):
    client.force_login(nurse)
    assert client.get(WORKLIST).status_code == 200
    frozen.shift(dt.timedelta(minutes=14, seconds=59))
    assert client.get(WORKLIST).status_code == 200  # activity: the clock starts again
    frozen.shift(dt.timedelta(minutes=14, seconds=59))
    assert client.get(WORKLIST).status_code == 200
    key = session_key(client)
    frozen.shift(dt.timedelta(minutes=15, seconds=1))
    response = client.get(WORKLIST)
    assert is_login_redirect(response) and "next=%2Fnurse%2F" in response["Location"]
    assert not Session.objects.filter(session_key=key).exists()  # gone on the server
    event = AuditEvent.objects.get(action="auth.session.expired")
    assert event.actor == nurse and event.detail["reason"] == "idle" and event.detail["idle_seconds"] == 901
    page = client.get(response["Location"]).content.decode()
    assert "You were logged out after 15 minutes without activity" in page
    # Logging in again is needed: the old session is not revived by anything.
    assert is_login_redirect(client.get(WORKLIST))


def test_ses1_an_expired_htmx_request_sends_the_whole_page_to_log_in(client, nurse, frozen):
    client.force_login(nurse)
    client.get(WORKLIST)
    frozen.shift(dt.timedelta(minutes=16))
    response = client.get(WORKLIST, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == LOGIN
    assert response.content == b""  # no fragment of a chart


def test_ses1_an_expired_write_changes_nothing(client, nurse, frozen):
    from tests.factories import AdministrationFactory

    adm = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=nurse.clinics.first())))
    client.force_login(nurse)
    client.get(WORKLIST)
    frozen.shift(dt.timedelta(minutes=20))
    response = client.post(f"/nurse/administrations/{adm.pk}/start/")
    assert is_login_redirect(response)
    adm.refresh_from_db()
    assert adm.started_at is None


def test_ses1_the_idle_limit_is_a_setting(client, nurse, frozen, settings):
    settings.CHAIRSIDE_SESSION_IDLE_MINUTES = 5
    client.force_login(nurse)
    client.get(WORKLIST)
    frozen.shift(dt.timedelta(minutes=5, seconds=1))
    assert is_login_redirect(client.get(WORKLIST))


# --- SES-2: polling does not extend the session ---------------------------------------------------


def test_ses2_twenty_polls_over_16_minutes_do_not_keep_the_session(client, nurse, clinic, frozen):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic))
    panel = f"/nurse/encounters/{encounter.pk}/"
    client.force_login(nurse)
    assert client.get(panel).status_code == 200  # the nurse's last real request
    answers = []
    for _ in range(20):
        frozen.shift(dt.timedelta(seconds=48))  # 20 × 48 s = 16 min
        answers.append(client.get(panel, **POLL))
    served = [r for r in answers if r.status_code == 200 and "HX-Redirect" not in r]
    assert len(served) == 18  # up to 14 min 24 s the polls are answered ...
    assert answers[18]["HX-Redirect"] == LOGIN  # ... at 15 min 12 s the session is over
    assert is_login_redirect(client.get(WORKLIST))
    assert AuditEvent.objects.filter(action="auth.session.expired", detail__background=True).count() == 1


def test_ses2_a_persons_requests_do_keep_the_session(client, nurse, frozen):
    client.force_login(nurse)
    for _ in range(20):
        frozen.shift(dt.timedelta(seconds=48))
        assert client.get(WORKLIST).status_code == 200
    frozen.shift(dt.timedelta(minutes=14))
    assert client.get(WORKLIST).status_code == 200


def test_ses2_the_ready_to_bill_panel_marks_its_refresh_as_background(client, nurse, clinic):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic))
    client.force_login(nurse)
    page = client.get(f"/nurse/encounters/{encounter.pk}/").content.decode()
    assert f"""hx-headers='{{"{BACKGROUND_HEADER}": "1"}}'""" in page


# --- SES-3: absolute lifetime ---------------------------------------------------------------------


def test_ses3_a_session_ends_after_12_hours_whatever_the_activity(client, nurse, frozen):
    client.force_login(nurse)
    client.get(WORKLIST)
    for _ in range(51):  # 51 × 14 min = 11 h 54 min
        frozen.shift(dt.timedelta(minutes=14))
        assert client.get(WORKLIST).status_code == 200
    frozen.shift(dt.timedelta(minutes=7))
    assert is_login_redirect(client.get(WORKLIST))
    assert AuditEvent.objects.get(action="auth.session.expired").detail["reason"] == "max_age"


# --- SES-4: id rotation, log-out, replay ---------------------------------------------------------


def test_ses4_log_in_rotates_the_session_id_and_log_out_destroys_it(nurse):
    client = Client()
    client.get(LOGIN)
    session = client.session
    session["pre_login"] = "x"  # an anonymous session an attacker may have planted
    session.save()
    before = session_key(client)
    response = client.post(LOGIN, {"username": "nurse", "password": PASSWORD})
    assert response.status_code == 302
    after = session_key(client)
    assert after and after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert client.get(WORKLIST).status_code == 200
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert not Session.objects.filter(session_key=after).exists()
    # Replaying the old cookie gets the log-in page.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = after
    assert is_login_redirect(replay.get(WORKLIST))


def test_ses4_the_two_factor_step_rotates_the_session_id_again(coder):
    device = confirmed_device(coder)
    client = Client()
    client.post(LOGIN, {"username": "coder", "password": PASSWORD})
    half = session_key(client)
    assert client.post("/accounts/two-factor/", {"token": next_totp(device)}).status_code == 302
    assert session_key(client) != half
    assert not Session.objects.filter(session_key=half).exists()
    assert client.get("/coder/").status_code == 200


# --- SES-5: cookies -------------------------------------------------------------------------------


def test_ses5_log_in_cookies_are_secure_httponly_samesite_lax(nurse):
    client = Client()
    page = client.get(LOGIN)
    csrf = page.cookies[settings.CSRF_COOKIE_NAME]
    response = client.post(LOGIN, {"username": "nurse", "password": PASSWORD})
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert settings.SESSION_COOKIE_NAME == "__Host-sessionid"
    assert cookie["secure"] is True and cookie["httponly"] is True and cookie["samesite"] == "Lax"
    assert cookie["path"] == "/" and not cookie["domain"]  # what __Host- requires
    assert settings.CSRF_COOKIE_NAME == "__Host-csrftoken"
    assert csrf["secure"] is True and csrf["httponly"] is True and csrf["samesite"] == "Lax"


# --- SES-6: no-store everywhere, Clear-Site-Data at log-out ---------------------------------------


@pytest.mark.parametrize("who", ["nurse", "coder", "admin", None])
def test_ses6_every_page_is_no_store(client, request, who):
    """URL walker: every GET URL of the project (the admin's too), as each role
    and anonymous; whatever the answer (page, redirect, 403, 404), no-store."""
    if who:
        client.force_login(request.getfixturevalue(who))
    missing = {}
    for name in sorted(n for n in URLS if n not in WRITE and n != "logout"):
        response = client.get(URLS[name])
        if "no-store" not in response.get("Cache-Control", "") or "private" not in response["Cache-Control"]:
            missing[name] = (response.status_code, response.get("Cache-Control"))
    assert missing == {}


def test_ses6_patient_pages_and_fragments_are_no_store(client, nurse, clinic):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic, family_name="ZZCANARY-4711"))
    client.force_login(nurse)
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.get(f"/nurse/encounters/{encounter.pk}/", **headers)
        assert "ZZCANARY-4711" in response.content.decode()
        assert "no-store" in response["Cache-Control"]


def test_ses6_log_out_clears_the_browsers_site_data(client, nurse):
    client.force_login(nurse)
    response = client.post("/accounts/logout/")
    assert response["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    assert "no-store" in response["Cache-Control"]


# --- AC-11: disabling a user, changing privileges ---------------------------------------------------


def test_ac11_disabling_a_user_ends_every_session_at_the_next_request(nurse):
    tablet, desk = Client(), Client()
    tablet.force_login(nurse)
    desk.force_login(nurse)
    assert tablet.get(WORKLIST).status_code == 200 and desk.get(WORKLIST).status_code == 200
    nurse.is_active = False
    nurse.save(update_fields=["is_active"])
    assert is_login_redirect(tablet.get(WORKLIST))
    assert is_login_redirect(desk.get(WORKLIST))
    # and the password no longer logs in
    assert Client().post(LOGIN, {"username": "nurse", "password": PASSWORD}).status_code == 200


def test_ac11_a_password_change_ends_the_other_sessions(nurse):
    tablet, desk = Client(), Client()
    tablet.force_login(nurse)
    desk.force_login(nurse)
    nurse.set_password("a-new-long-password-4711")
    nurse.save()
    assert is_login_redirect(tablet.get(WORKLIST)) and is_login_redirect(desk.get(WORKLIST))


def test_ac11_losing_a_role_takes_effect_on_the_next_request(client, nurse):
    client.force_login(nurse)
    assert client.get(WORKLIST).status_code == 200
    nurse.groups.remove(Group.objects.get(name="nurse"))
    assert client.get(WORKLIST).status_code == 403


def test_ac11_gaining_the_coder_role_asks_for_two_factor_at_the_next_request(client, nurse):
    client.force_login(nurse)
    nurse.groups.add(Group.objects.get_or_create(name="coder")[0])
    response = client.get("/coder/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/two-factor/")
