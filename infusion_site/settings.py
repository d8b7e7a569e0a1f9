"""Chairside settings, read from environment variables.

Secure by default: DEBUG is off and SECRET_KEY is required unless
CHAIRSIDE_DEMO=1 (set by `make run`). The demo default is SQLite and kombu's
filesystem broker, which need no server; tests and production set
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis).
"""

import datetime as dt
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEMO = env.bool("CHAIRSIDE_DEMO", default=False)
DEBUG = env.bool("DEBUG", default=False)

# Required outside the demo. Left empty, Django refuses every use of it
# ("The SECRET_KEY setting must not be empty") and the system check
# infusion_site.E001 stops runserver, migrate and the worker's start-up; commands
# that sign nothing (code_scenarios) still run.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY and (DEMO or DEBUG):
    SECRET_KEY = "demo-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    # History of clinical rows by PostgreSQL triggers (charting/models.py, REC-1/REC-2).
    "pgtrigger",
    "pghistory",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "infusion_site.apps.SiteConfig",
    "charting",
    "coding",
    "audit",
    "reports",
]

MIDDLEWARE = [
    # First: the request id is on every audit row, log record and error page of the request.
    "audit.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every response the app renders (not static files) is Cache-Control: no-store.
    "infusion_site.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before LoginRequiredMiddleware: an expired session is logged out here, so
    # the request goes on as anonymous and is sent to the log-in page.
    "infusion_site.middleware.SessionTimeoutMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After OTPMiddleware (reads user.is_verified()) and messages; see infusion_site/middleware.py.
    "infusion_site.middleware.OTPRequiredMiddleware",
    # Last: turns axes' lockout flag on the request into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "infusion_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

WSGI_APPLICATION = "infusion_site.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections (seconds; 0 = one connection per request): a new
# PostgreSQL connection costs more than most of our requests' queries. Health
# checks drop a connection the server closed (restart, fail-over) before use.
# SQLite (the demo) gains nothing and keeps the default.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo: every transaction takes SQLite's write lock when it begins
    # (BEGIN IMMEDIATE) and waits up to 20 s for it, instead of failing with
    # "database is locked" when a read inside it turns into a write (each
    # request appends its audit row) while another request writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# axes first: it refuses a locked-out account before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Log-in throttling (django-axes) ----------------------------------------
# CHAIRSIDE_LOGIN_FAILURE_LIMIT failures on one account within
# CHAIRSIDE_LOGIN_COOLOFF_MINUTES lock it for that long (even the right password
# is refused); an admin unlocks it earlier (Django admin › Axes › Access attempts,
# or `manage.py axes_reset_username USERNAME`). Failures from one IP address
# across all accounts are throttled at CHAIRSIDE_LOGIN_IP_FAILURE_LIMIT, higher
# because a clinic's tablets share one address.
CHAIRSIDE_LOGIN_FAILURE_LIMIT = env.int("CHAIRSIDE_LOGIN_FAILURE_LIMIT", default=5)
CHAIRSIDE_LOGIN_COOLOFF_MINUTES = env.int("CHAIRSIDE_LOGIN_COOLOFF_MINUTES", default=15)
CHAIRSIDE_LOGIN_IP_FAILURE_LIMIT = env.int("CHAIRSIDE_LOGIN_IP_FAILURE_LIMIT", default=50)
AXES_FAILURE_LIMIT = CHAIRSIDE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = dt.timedelta(minutes=CHAIRSIDE_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes.W006 asks for "ip_address" in the lock-out parameters: with one limit for
# both, five typos across a clinic's shared address would lock every nurse out.
# The per-address throttle is infusion_site.accounts.LoginView (its own, higher
# limit); failures per account are counted over every address and browser.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_LOCKOUT_CALLABLE = "infusion_site.accounts.locked_out"
AXES_RESET_ON_SUCCESS = True
# A failure during the lock-out does not push its end further out: the nurse is
# told "try again in 15 minutes", and that stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Behind a reverse proxy set AXES_IPWARE_PROXY_COUNT (e.g. 1) so the client's
# address, not the proxy's, is counted.
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=None)
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]

# --- Two-factor log-in (django-otp, TOTP) -------------------------------------
# Required for the coder and admin roles (and staff); offered to nurses, and
# required of any user who has enrolled a device.
OTP_TOTP_ISSUER = "Chairside"
# An admin resets a lost phone (deletes the device) but never sees anyone's
# secret or QR code in the Django admin.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# Stored times are UTC; each clinic renders in its own IANA zone (Clinic.time_zone).
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Third-party assets are installed by npm (package.json) at set-up, never copied
# into the repo and never loaded from a CDN: clinics run on closed networks.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
]

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Sessions (SES-1..SES-5) ---------------------------------------------------
# Idle time-out: a session without a person's request for this long ends on the
# server (background polls don't count); 15 by default, never more than 30.
CHAIRSIDE_SESSION_IDLE_MINUTES = env.int("CHAIRSIDE_SESSION_IDLE_MINUTES", default=15)
# Absolute lifetime, whatever the activity (a shift).
CHAIRSIDE_SESSION_MAX_HOURS = env.int("CHAIRSIDE_SESSION_MAX_HOURS", default=12)
if not 1 <= CHAIRSIDE_SESSION_IDLE_MINUTES <= 30 or not 1 <= CHAIRSIDE_SESSION_MAX_HOURS <= 12:
    raise ImproperlyConfigured("CHAIRSIDE_SESSION_IDLE_MINUTES must be 1-30 and CHAIRSIDE_SESSION_MAX_HOURS 1-12.")
SESSION_COOKIE_AGE = CHAIRSIDE_SESSION_MAX_HOURS * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# htmx reads the token from the page (hx-headers), never from the cookie.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not (DEBUG or DEMO))
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not (DEBUG or DEMO))
# The __Host- prefix makes the browser refuse these cookies unless they are
# Secure, for this host only and for every path (no sub-domain can plant one).
SESSION_COOKIE_NAME = "__Host-sessionid" if SESSION_COOKIE_SECURE else "sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken" if CSRF_COOKIE_SECURE else "csrftoken"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Transport and headers (CFG-1): production defaults, off for the demo ----------
# `DEBUG=false SECRET_KEY=... ALLOWED_HOSTS=... manage.py check --deploy
# --fail-level WARNING` passes with these (tests/security/test_deploy_settings.py).
# The demo (`make run`, plain http on 127.0.0.1) and the test run (tests/testenv.py
# sets SECURE_SSL_REDIRECT=false: the test client speaks http) turn parts off.
_PRODUCTION = not (DEBUG or DEMO)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _PRODUCTION else 0)  # one year
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_PRODUCTION)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO
# (only if the proxy always sets it: a client could otherwise claim https).
if env.str("SECURE_PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = (env.str("SECURE_PROXY_SSL_HEADER"), "https")

# Content-Security-Policy (CFG-2, django-csp 4): our own origin only, scripts and
# styles from files (or with the per-response nonce), no plugins, no <base>, no
# framing. htmx is configured not to inject its indicator <style> (base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    },
}

# --- Celery -----------------------------------------------------------------
# The demo uses kombu's filesystem transport (no broker server); tests and
# production use Redis.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_broker_dir = Path(env.str("CELERY_FILESYSTEM_DIR", default=str(BASE_DIR / "var" / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
        # kombu writes its broadcast (pidbox) exchange files here; the default
        # is ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
    }
# No task result is read by the app (tasks write their outcome to the
# database). A result store can be named for tools that wait on results, e.g.
# the Celery benchmark: CELERY_RESULT_BACKEND=redis://... CELERY_TASK_IGNORE_RESULT=0.
CELERY_TASK_IGNORE_RESULT = env.bool("CELERY_TASK_IGNORE_RESULT", default=True)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Schedules live in one place. django-celery-beat's DatabaseScheduler copies
# these entries into its tables at start-up, where an admin can edit them.
# Incomplete-record flags (charting/checks.py). A drug still "running" after
# CHAIRSIDE_RUNNING_FLAG_HOURS, a pause open longer than
# CHAIRSIDE_PAUSE_FLAG_MINUTES, and a start charted more than
# CHAIRSIDE_LATE_ENTRY_MINUTES after it happened (without a correction giving
# the reason) are flagged. The sweep runs every CHAIRSIDE_SWEEP_SECONDS, which
# is also the period it claims (one sweep per period).
CHAIRSIDE_RUNNING_FLAG_HOURS = env.float("CHAIRSIDE_RUNNING_FLAG_HOURS", default=6.0)
CHAIRSIDE_PAUSE_FLAG_MINUTES = env.int("CHAIRSIDE_PAUSE_FLAG_MINUTES", default=120)
CHAIRSIDE_LATE_ENTRY_MINUTES = env.int("CHAIRSIDE_LATE_ENTRY_MINUTES", default=60)
CHAIRSIDE_SWEEP_SECONDS = env.int("CHAIRSIDE_SWEEP_SECONDS", default=300)
# After a Start / Pause / Resume / Stop tap the drug card offers "Undo" for
# this many seconds (server time decides); later, "Correct a time" keeps the original.
CHAIRSIDE_UNDO_SECONDS = env.int("CHAIRSIDE_UNDO_SECONDS", default=10)
if not 1 <= CHAIRSIDE_UNDO_SECONDS <= 120:
    raise ImproperlyConfigured("CHAIRSIDE_UNDO_SECONDS must be 1-120.")
if min(CHAIRSIDE_RUNNING_FLAG_HOURS, CHAIRSIDE_PAUSE_FLAG_MINUTES, CHAIRSIDE_LATE_ENTRY_MINUTES, CHAIRSIDE_SWEEP_SECONDS) <= 0:
    raise ImproperlyConfigured("CHAIRSIDE_RUNNING_FLAG_HOURS, _PAUSE_FLAG_MINUTES, _LATE_ENTRY_MINUTES and _SWEEP_SECONDS must be positive.")

# Schedules live in one place. django-celery-beat's DatabaseScheduler copies
# these entries into its tables at start-up, where an admin can edit them.
CELERY_BEAT_SCHEDULE = {
    # Nurses forget to tap "stop", to chart a lot, to sign: flag every
    # incomplete record while the nurse still remembers, before a coder sees it.
    # (Replaces "flag-long-running-administrations"; that task name still runs
    # the same sweep, and the period claim keeps both to one sweep a period.)
    "sweep-documentation-flags": {
        "task": "charting.tasks.sweep_flags_task",
        "schedule": float(CHAIRSIDE_SWEEP_SECONDS),
    },
}

# PHI-2: no patient data in logs. The scrub filter withholds the messages of
# exceptions logged during a PHI request or a Celery task (audit/logging.py).
# Django's own "django" logger gets no handler of its own: its records reach
# the console through the root, scrubbed, and no error e-mail is sent (Django's
# AdminEmailHandler would mail the POST body and the exception message).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "audit.logging.RequestIdFilter"},
        "phi_scrub": {"()": "audit.logging.PhiScrubFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id", "phi_scrub"], "formatter": "plain"}},
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
