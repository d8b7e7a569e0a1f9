"""Log-in, two-factor step, two-factor enrolment and log-out.

The log-in is Django's (the password goes through django-axes, which refuses a
locked-out account before the password is checked: AC-8), followed for coders,
admins and enrolled nurses by a TOTP code (django-otp: AC-9). A code is
accepted once: the device remembers the last time step it accepted
(`TOTPDevice.last_t`), and the device row is locked while a code is checked, so
two requests racing with the same code cannot both pass.
"""

from __future__ import annotations

import base64
import time

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import record

from .middleware import EXPIRED_NOTICE
from .roles import needs_two_factor


def _next_url(request: HttpRequest) -> str:
    """The `next` of the query or form if it is a path on this site, else the home page."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _with_next(url_name: str, next_url: str) -> str:
    from urllib.parse import urlencode

    return reverse(url_name) + "?" + urlencode({"next": next_url})


def ip_failures(ip_address: str | None) -> int:
    """Failed log-ins from `ip_address`, all accounts, within the cool-off window
    (django-axes' AccessAttempt rows)."""
    from axes.models import AccessAttempt

    if not ip_address:
        return 0
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    total = AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gte=since).aggregate(n=Sum("failures_since_start"))["n"]
    return total or 0


class LoginForm(AuthenticationForm):
    """Django's log-in form, with the username's length checked BEFORE
    authenticate(): Django sets the field's max_length after its validators
    are built, so a 1,000-character username reached authenticate() and
    django-axes' failure row (255 characters): a 500 (fuzzing, VAL-1)."""

    def clean_username(self):
        username = self.cleaned_data.get("username") or ""
        if len(username) > (self.fields["username"].max_length or 150):
            raise ValidationError("Please enter a correct username and password.", code="invalid_login")
        return username


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    """Django's log-in page, plus: a per-address throttle (AC-8), the reason a
    session ended (SES-1), and the hand-over to the two-factor step (AC-9)."""

    authentication_form = LoginForm

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST" and ip_failures(request.META.get("REMOTE_ADDR")) >= settings.CHAIRSIDE_LOGIN_IP_FAILURE_LIMIT:
            record("auth.login.throttled", actor=None, detail={"scope": "ip_address"}, remote_addr=request.META.get("REMOTE_ADDR"))
            return render(request, "registration/locked_out.html", {"scope": "address", "minutes": settings.CHAIRSIDE_LOGIN_COOLOFF_MINUTES}, status=429)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["expired"] = self.request.session.pop(EXPIRED_NOTICE, None)
        context["idle_minutes"] = settings.CHAIRSIDE_SESSION_IDLE_MINUTES
        return context

    def form_valid(self, form):
        # auth.login(): a new session id (SES-4); its clocks start (middleware.start_session_clock).
        response = super().form_valid(form)
        user = form.get_user()
        if needs_two_factor(user):
            has_device = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
            return redirect(_with_next("two_factor" if has_device else "two_factor_setup", self.get_success_url()))
        return response


class LogoutView(auth_views.LogoutView):
    """POST only. The server-side session is deleted (SES-4) and the browser is
    told to drop its cache, cookies and storage for the site (SES-6)."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        response["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response


class TokenField(forms.CharField):
    """Authenticator apps show "123 456": the code is accepted as typed, spaces dropped."""

    def to_python(self, value):
        return "".join(super().to_python(value).split())


class TokenForm(forms.Form):
    token = TokenField(
        label="6-digit code from your authenticator app",
        max_length=12,
        validators=[RegexValidator(r"^\d{6}$", "Enter the 6-digit code your authenticator app shows (digits only).")],
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def _check_token(request: HttpRequest, device_id: int, token: str, *, action: str) -> tuple[TOTPDevice | None, str]:
    """Verify `token` on the device under a row lock (no two requests can spend
    one code). Returns (device, "") or (None, message for the form)."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device_id)
        allowed, info = device.verify_is_allowed()
        if not allowed:
            ok, message = False, "Too many wrong codes. Wait a minute, then enter the code your app shows now."
        else:
            ok = device.verify_token(token)
            message = "" if ok else "That code is not right, or it was already used. Enter the code your app shows now."
        if not ok:
            record(
                action,
                actor=request.user,
                obj=device,
                detail={"reason": "throttled" if not allowed else "wrong_or_reused_code"},
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
            return None, message
    return device, ""


def _verified(request: HttpRequest, device: TOTPDevice) -> HttpResponse:
    otp_login(request, device)
    # A new session id once the second factor is in, like after the password.
    request.session.cycle_key()
    return redirect(_next_url(request))


@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    """The TOTP step after the password. No confirmed device yet → enrolment."""
    if request.user.is_verified():
        return redirect(_next_url(request))
    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).order_by("pk").first()
    if device is None:
        return redirect(_with_next("two_factor_setup", _next_url(request)))
    form = TokenForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        verified, message = _check_token(request, device.pk, form.cleaned_data["token"], action="auth.mfa.failed")
        if verified is not None:
            return _verified(request, verified)
        form.add_error("token", message)
    return render(
        request, "registration/two_factor.html", {"form": form, "next": _next_url(request)}, status=200 if request.method == "GET" or form.is_valid() else 400
    )


def _qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10)
    return image.to_string(encoding="unicode")


def _secret_text(device: TOTPDevice) -> str:
    """The key as authenticator apps take it by hand: base32, in groups of four."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


PENDING_KEY = "chairside_pending_totp_key"


def _confirm_new_device(user, key: str, token: str) -> TOTPDevice | None:
    """Create the confirmed device when `token` is the code for `key` now (±1
    step); its `last_t` is that step, so the same code cannot be used again."""
    from django_otp.oath import TOTP

    device = TOTPDevice(user=user, key=key, name="Authenticator app", confirmed=True)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if not totp.verify(int(token), tolerance=device.tolerance):
        return None
    device.last_t = totp.t()
    device.save()
    return device


@require_http_methods(["GET", "POST"])
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: QR code (SVG made here, no third party) and
    the secret as text; the first code creates the confirmed device and
    verifies the session. Until then the key lives only in the session (a GET
    writes no row: VAL-4).

    Replacing a confirmed device is an admin's job (Django admin › TOTP
    devices): a stolen password alone must not be able to move the second factor.
    """
    from django_otp.util import random_hex

    if TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        messages.info(request, "Two-factor log-in is already set up for your account. To move it to a new phone, ask your clinic's admin to reset it.")
        return redirect(_with_next("two_factor", _next_url(request)) if not request.user.is_verified() else _next_url(request))
    key = request.session.get(PENDING_KEY) or random_hex(20)
    request.session[PENDING_KEY] = key
    form = TokenForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        with transaction.atomic():
            device = _confirm_new_device(request.user, key, form.cleaned_data["token"])
            if device is not None:
                del request.session[PENDING_KEY]
                record("auth.mfa.enrolled", actor=request.user, obj=device, remote_addr=request.META.get("REMOTE_ADDR"))
                messages.success(request, "Two-factor log-in is set up. From now on you enter a code from your app after your password.")
                return _verified(request, device)
            record("auth.mfa.enrolment_failed", actor=request.user, remote_addr=request.META.get("REMOTE_ADDR"))
        form.add_error("token", "That code is not right. Check the app shows Chairside, then enter the code it shows now.")
    pending = TOTPDevice(user=request.user, key=key, name="Authenticator app")
    context = {
        "form": form,
        "next": _next_url(request),
        "qr_svg": mark_safe(_qr_svg(pending)),  # noqa: S308 - made by qrcode from our own otpauth URL, no user input
        "secret": _secret_text(pending),
        "required": needs_two_factor(request.user),
    }
    return render(request, "registration/two_factor_setup.html", context, status=200 if request.method == "GET" else 400)


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' lock-out answer (AXES_LOCKOUT_CALLABLE): 429 and a page that
    says for how long and how to get help (AC-8)."""
    return render(request, "registration/locked_out.html", {"scope": "account", "minutes": settings.CHAIRSIDE_LOGIN_COOLOFF_MINUTES}, status=429)


def audit_lockout(sender, request, username, ip_address, **kwargs) -> None:
    """django-axes' `user_locked_out` signal: the lock-out, and every attempt
    refused during it, is an audit row (AUD-3). Never the password."""
    record("auth.login.locked_out", actor=None, detail={"username": (username or "")[:150]}, remote_addr=ip_address)
