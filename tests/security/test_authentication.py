"""The real log-in path: password through django-axes (AC-8), then the TOTP
step of django-otp (AC-9), and what an account holder sees at each step.

Other tests use `client.force_login`, which tests/conftest.py makes pass the
TOTP step; none of that shortcut is used here.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory, confirmed_device, next_totp, totp_for_key

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
TWO_FACTOR = "/accounts/two-factor/"
SETUP = "/accounts/two-factor/setup/"


def post_password(client, username, password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def audit_count(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


@pytest.fixture
def frozen():
    """A clock that moves only when the test says (time-machine)."""
    with time_machine.travel(dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC), tick=False) as traveller:
        yield traveller


# --- AC-8: lock-out after 5 failures on one account in 15 minutes --------------------------------


def test_ac8_five_wrong_passwords_lock_the_account_even_for_the_right_password(client, nurse, frozen):
    for _ in range(4):
        response = post_password(client, "nurse", "wrong-password")
        assert response.status_code == 200  # the log-in form again, "Please enter a correct username and password"
    assert post_password(client, "nurse", "wrong-password").status_code == 429  # the 5th failure locks
    response = post_password(client, "nurse")  # the right password, 6th attempt
    assert response.status_code == 429
    text = response.content.decode().replace("&#x27;", "'")
    assert "locked for 15 minutes" in text
    assert "Ask your clinic's Chairside admin to unlock your account" in text
    assert "_auth_user_id" not in client.session
    assert audit_count("auth.login.locked_out") >= 1
    event = AuditEvent.objects.filter(action="auth.login.locked_out").first()
    assert event.detail["username"] == "nurse"
    # The password is stored nowhere: not in the audit row, not in axes' record.
    assert PASSWORD not in str(list(AuditEvent.objects.values_list("detail", flat=True)))
    assert not AccessAttempt.objects.filter(post_data__contains=PASSWORD).exists()
    assert not AccessAttempt.objects.filter(post_data__contains="wrong-password").exists()


def test_ac8_four_failures_then_the_right_password_logs_in_and_resets_the_count(client, nurse, frozen):
    for _ in range(4):
        post_password(client, "nurse", "wrong-password")
    assert post_password(client, "nurse").status_code == 302
    client.post("/accounts/logout/")
    for _ in range(4):
        post_password(client, "nurse", "wrong-password")
    assert post_password(client, "nurse").status_code == 302


def test_ac8_the_lock_ends_after_15_minutes(client, nurse, frozen):
    for _ in range(5):
        post_password(client, "nurse", "wrong-password")
    frozen.shift(dt.timedelta(minutes=14, seconds=59))
    assert post_password(client, "nurse").status_code == 429
    frozen.shift(dt.timedelta(minutes=15, seconds=1))
    response = post_password(client, "nurse")
    assert response.status_code == 302 and response["Location"] == "/"


def test_ac8_failures_more_than_15_minutes_apart_do_not_add_up(client, nurse, frozen):
    for _ in range(4):
        post_password(client, "nurse", "wrong-password")
    frozen.shift(dt.timedelta(minutes=16))
    for _ in range(4):
        post_password(client, "nurse", "wrong-password")
    assert post_password(client, "nurse").status_code == 302


def test_ac8_an_admin_unlocks_the_account(client, nurse, frozen):
    for _ in range(5):
        post_password(client, "nurse", "wrong-password")
    assert post_password(client, "nurse").status_code == 429
    # In the Django admin (Axes › Access attempts: delete) ...
    superuser = UserFactory(username="security_admin", is_staff=True, is_superuser=True)
    admin_client = Client()
    admin_client.force_login(superuser)
    attempt = AccessAttempt.objects.get(username="nurse")
    response = admin_client.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert post_password(client, "nurse").status_code == 302


def test_ac8_unlock_from_the_command_line(client, nurse, frozen):
    for _ in range(6):
        post_password(client, "nurse", "wrong-password")
    call_command("axes_reset_username", "nurse")
    assert post_password(client, "nurse").status_code == 302


def test_ac8_the_lock_is_per_account_not_per_clinic(client, nurse, coder, frozen):
    """Another nurse at the same tablet (same address) still logs in."""
    for _ in range(6):
        post_password(client, "nurse", "wrong-password")
    response = post_password(Client(), "coder")
    assert response.status_code == 302 and response["Location"].startswith(SETUP)


def test_ac8_per_address_throttle_across_accounts(client, nurse, settings, frozen):
    """Guessing across many accounts from one address is throttled too (each
    account stays under its own limit)."""
    settings.CHAIRSIDE_LOGIN_IP_FAILURE_LIMIT = 12
    for i in range(12):
        post_password(client, f"someone{i // 3}", "guess")
    response = post_password(client, "nurse")
    assert response.status_code == 429
    assert "Log-ins from it are paused for 15 minutes" in response.content.decode()
    assert audit_count("auth.login.throttled") == 1
    # From another address the nurse is not affected.
    assert post_password(client, "nurse", REMOTE_ADDR="10.1.2.3").status_code == 302


def test_ac8_a_locked_account_costs_no_password_hashing(client, nurse, monkeypatch, frozen):
    """1,000 rapid attempts cannot burn 1,000 PBKDF2 runs: once locked, axes
    refuses before any password is checked."""
    from django.contrib.auth import hashers

    calls = []
    real = hashers.check_password
    monkeypatch.setattr("django.contrib.auth.base_user.check_password", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(60):
        post_password(client, "nurse", "wrong-password")
    assert len(calls) <= 5


# --- AC-9: TOTP two-factor log-in --------------------------------------------------------------


def secret_from(page: str) -> bytes:
    secret = re.search(r'data-testid="two-factor-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def test_ac9_a_coder_without_a_device_must_enrol_before_any_page(client, coder):
    response = post_password(client, "coder")
    assert response.status_code == 302 and response["Location"].startswith(SETUP)
    # Logged in by password only: every other page sends back to the TOTP step.
    for url in ("/coder/", "/", "/nurse/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(TWO_FACTOR), url
    response = client.get("/coder/", HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == TWO_FACTOR
    page = client.get(SETUP).content.decode()
    assert "<svg" in page and 'data-testid="two-factor-qr"' in page  # rendered here, no third-party QR service
    key = secret_from(page)
    response = client.post(SETUP, {"token": "000000" if totp_for_key(key) != "000000" else "111111"})
    assert response.status_code == 400 and "not right" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=coder).exists()  # nothing stored until a code confirms it
    assert secret_from(client.get(SETUP).content.decode()) == key  # the same key until then
    code = totp_for_key(key)
    response = client.post(SETUP, {"token": code, "next": "/coder/"})
    assert response.status_code == 302 and response["Location"] == "/coder/"
    assert client.get("/coder/").status_code == 200
    device = TOTPDevice.objects.get(user=coder)
    assert device.confirmed and device.bin_key == key
    # The enrolment code is spent: it does not log in a second session.
    other = Client()
    post_password(other, "coder")
    assert other.post(TWO_FACTOR, {"token": code}).status_code == 400
    assert audit_count("auth.mfa.enrolled") == 1 and audit_count("auth.mfa.enrolment_failed") == 1


def test_ac9_a_coder_with_a_device_enters_a_code_after_the_password(client, coder):
    device = confirmed_device(coder)
    response = client.post(LOGIN + "?next=/coder/", {"username": "coder", "password": PASSWORD, "next": "/coder/"})
    assert response.status_code == 302 and response["Location"] == TWO_FACTOR + "?next=%2Fcoder%2F"
    assert client.get("/coder/").status_code == 302
    response = client.post(TWO_FACTOR, {"token": "12345x", "next": "/coder/"})
    assert response.status_code == 400 and "6-digit code" in response.content.decode()
    response = client.post(TWO_FACTOR, {"token": next_totp(device)[:3] + " " + next_totp(device)[3:], "next": "/coder/"})
    assert response.status_code == 302 and response["Location"] == "/coder/"
    assert client.get("/coder/").status_code == 200


def test_ac9_a_wrong_code_is_refused_and_audited(client, coder):
    device = confirmed_device(coder)
    post_password(client, "coder")
    good = next_totp(device)
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    response = client.post(TWO_FACTOR, {"token": bad})
    assert response.status_code == 400
    assert "That code is not right, or it was already used" in response.content.decode()
    assert client.get("/coder/").status_code == 302
    assert audit_count("auth.mfa.failed") == 1


def test_ac9_a_replayed_code_is_refused(coder):
    """A code read over a shoulder and typed again in the same 30 s is refused."""
    device = confirmed_device(coder)
    first = Client()
    post_password(first, "coder")
    code = next_totp(device)
    assert first.post(TWO_FACTOR, {"token": code}).status_code == 302
    second = Client()
    post_password(second, "coder")
    response = second.post(TWO_FACTOR, {"token": code})
    assert response.status_code == 400 and "already used" in response.content.decode()
    assert second.get("/coder/").status_code == 302
    assert audit_count("auth.mfa.failed") == 1


def test_ac9_the_admin_needs_the_code_too(client, admin):
    confirmed_device(admin)
    post_password(client, "admin")
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(TWO_FACTOR)
    response = client.post(TWO_FACTOR, {"token": next_totp(confirmed_device(admin))})
    assert client.get("/admin/").status_code == 200


def test_ac9_the_django_admin_login_page_does_not_skip_the_code(client, admin):
    confirmed_device(admin)
    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(TWO_FACTOR)


def test_ac9_a_nurse_is_offered_two_factor_and_then_needs_it(client, nurse):
    response = post_password(client, "nurse")
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/nurse/").content.decode()
    assert 'data-testid="offer-two-factor"' in page
    setup = client.get(SETUP).content.decode()
    assert "Optional for nurses" in setup
    client.post(SETUP, {"token": totp_for_key(secret_from(setup))})
    assert 'data-testid="offer-two-factor"' not in client.get("/nurse/").content.decode()
    client.post("/accounts/logout/")
    response = post_password(client, "nurse")
    assert response["Location"].startswith(TWO_FACTOR)
    assert client.get("/nurse/").status_code == 302


def test_ac9_enrolment_cannot_replace_a_confirmed_device(client, coder):
    """Moving the second factor to another phone is an admin's job: a session
    that knows only the password cannot enrol a new device."""
    confirmed_device(coder)
    post_password(client, "coder")
    response = client.get(SETUP)
    assert response.status_code == 302 and response["Location"].startswith(TWO_FACTOR)
    assert TOTPDevice.objects.filter(user=coder).count() == 1


def test_ac9_next_never_leaves_the_site(client, coder):
    device = confirmed_device(coder)
    post_password(client, "coder")
    response = client.post(TWO_FACTOR, {"token": next_totp(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and "evil.example" not in response["Location"]


def test_ac9_force_login_in_tests_marks_the_session_verified(client, coder):
    """The shared test mechanism (tests/conftest.py): force_login of a coder
    reaches the coder's pages without the TOTP step."""
    client.force_login(coder)
    assert client.get("/coder/").status_code == 200
    assert TOTPDevice.objects.filter(user=coder, confirmed=True).count() == 1


def test_ac9_removing_the_device_unverifies_the_session(client, coder):
    """An admin resets a lost phone: sessions verified with it must pass a new code."""
    client.force_login(coder)
    TOTPDevice.objects.filter(user=coder).delete()
    response = client.get("/coder/")
    assert response.status_code == 302 and response["Location"].startswith(TWO_FACTOR)
