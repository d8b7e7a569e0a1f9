"""Session and response hygiene every page gets, whatever its view does.

- `NoStoreMiddleware` (SES-6): no response of the app may be kept by the
  browser's or a proxy's cache; Back after log-out asks the server again and
  gets the log-in page, not a chart.
- `SessionTimeoutMiddleware` (SES-1, SES-2, SES-3): a session idle for
  CHAIRSIDE_SESSION_IDLE_MINUTES, or older than CHAIRSIDE_SESSION_MAX_HOURS,
  ends on the server; background requests (polls, panel refreshes; header
  `X-Chairside-Background: 1`) are served but never count as activity.
- `OTPRequiredMiddleware` (AC-9): a user who needs two-factor log-in
  (`roles.needs_two_factor`) reaches nothing but the two-factor pages and
  log-out until the session is OTP-verified.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from audit.services import record

from .roles import needs_two_factor

# Session keys (seconds since the epoch, server clock).
LAST_ACTIVITY = "chairside_last_activity"
LOGGED_IN_AT = "chairside_logged_in_at"
# Set on the fresh anonymous session after a time-out, so the log-in page says why.
EXPIRED_NOTICE = "chairside_session_expired"

BACKGROUND_HEADER = "X-Chairside-Background"
# Activity is written to the session at most once a minute: a session write per
# request would cost three queries (savepoint, update, release) on every page.
# The idle limit is therefore measured from the last stored minute.
ACTIVITY_GRANULARITY_SECONDS = 60


def start_session_clock(sender, request, user, **kwargs) -> None:
    """`user_logged_in` receiver: the session's age and idle clocks start at log-in."""
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[LOGGED_IN_AT] = now
        request.session[LAST_ACTIVITY] = now


def is_background(request: HttpRequest) -> bool:
    """A request the page made by itself (a poll or an automatic refresh), not a person's action."""
    return request.headers.get(BACKGROUND_HEADER) == "1"


def _to_login(request: HttpRequest) -> HttpResponse:
    """Redirect to the log-in page; htmx gets HX-Redirect so the whole page goes, not a fragment."""
    url = reverse(settings.LOGIN_URL)
    if request.method == "GET" and not request.headers.get("HX-Request"):
        url += "?" + urlencode({"next": request.get_full_path()})
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


class NoStoreMiddleware:
    """`Cache-Control: no-store` (and private, max-age=0) on every response the
    app renders. Static files never get here: WhiteNoise answers them first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response


class SessionTimeoutMiddleware:
    """End idle and over-age sessions on the server (audited as
    `auth.session.expired`), before any view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            last = session.get(LAST_ACTIVITY)
            started = session.get(LOGGED_IN_AT)
            idle_limit = settings.CHAIRSIDE_SESSION_IDLE_MINUTES * 60
            age_limit = settings.CHAIRSIDE_SESSION_MAX_HOURS * 3600
            reason = None
            if last is not None and now - last > idle_limit:
                reason = "idle"
            elif started is not None and now - started > age_limit:
                reason = "max_age"
            if reason is not None:
                record(
                    "auth.session.expired",
                    actor=user,
                    detail={"reason": reason, "idle_seconds": int(now - last) if last is not None else None, "background": is_background(request)},
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
                logout(request)  # flushes the server-side session row
                request.session[EXPIRED_NOTICE] = reason
                return _to_login(request)
            if started is None:
                session[LOGGED_IN_AT] = now
            if last is None or (not is_background(request) and now - last >= ACTIVITY_GRANULARITY_SECONDS):
                session[LAST_ACTIVITY] = now
        return self.get_response(request)


# URL names an unverified user may reach (the log-in, the two-factor steps, log-out).
OTP_EXEMPT_URLS = {"login", "logout", "two_factor", "two_factor_setup"}


class OTPRequiredMiddleware:
    """Send a logged-in user who needs two-factor log-in and has not passed it
    this session to the TOTP step (or to enrolment when no device is set up)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated or user.is_verified():
            return None
        match = request.resolver_match
        if match is not None and match.view_name in OTP_EXEMPT_URLS:
            return None
        if not needs_two_factor(user):
            return None
        url = reverse("two_factor")
        if request.method == "GET" and not request.headers.get("HX-Request"):
            url += "?" + urlencode({"next": request.get_full_path()})
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=200)
            response["HX-Redirect"] = url
            return response
        return redirect(url)
