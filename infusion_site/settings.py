"""Chairside settings, read from environment variables.

Secure by default: DEBUG is off and SECRET_KEY is required unless
CHAIRSIDE_DEMO=1 (set by `make run`). The demo default is SQLite and kombu's
filesystem broker, which need no server; tests and production set
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis).
"""

from pathlib import Path

import environ
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
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
            ],
        },
    },
]

WSGI_APPLICATION = "infusion_site.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

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

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not (DEBUG or DEMO))
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not (DEBUG or DEMO))
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

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
