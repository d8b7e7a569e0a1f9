"""Production settings, checked in a fresh interpreter with production's
environment (no DEBUG, no demo, a random key): CFG-1, SES-5, CFG-2."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def production_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_", "CHAIRSIDE_", "DEBUG", "DJANGO_ALLOW"))}
    env |= {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "example.org", "DJANGO_SETTINGS_MODULE": "infusion_site.settings"}
    return env | overrides


def run(args, env):
    return subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_cfg1_check_deploy_passes_with_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    "overrides, warning",
    [
        ({"SECRET_KEY": "short-key"}, "security.W009"),
        ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
    ],
)
def test_cfg1_the_check_fails_when_a_production_setting_is_weakened(overrides, warning):
    """The deploy check is not a formality: each weakened setting makes it fail."""
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(**overrides))
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


PRINT_SETTINGS = """
import django, json
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k) for k in [
    "DEBUG", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "SESSION_COOKIE_NAME",
    "CSRF_COOKIE_SECURE", "CSRF_COOKIE_HTTPONLY", "CSRF_COOKIE_SAMESITE", "CSRF_COOKIE_NAME",
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF", "CHAIRSIDE_SESSION_IDLE_MINUTES", "PASSWORD_HASHERS"]}, default=str))
"""


def test_ses5_cfg1_production_values():
    result = run(["-c", PRINT_SETTINGS], production_env())
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["SESSION_COOKIE_HTTPONLY"] is True and values["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert values["SESSION_COOKIE_NAME"].startswith("__Host-") and values["CSRF_COOKIE_NAME"].startswith("__Host-")
    assert values["CSRF_COOKIE_SECURE"] is True and values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_REFERRER_POLICY"] == "same-origin" and values["X_FRAME_OPTIONS"] == "DENY"
    assert values["CHAIRSIDE_SESSION_IDLE_MINUTES"] == 15
    # AC-6: the first hasher (new hashes) is PBKDF2-SHA256 or Argon2.
    assert values["PASSWORD_HASHERS"][0].endswith(("PBKDF2PasswordHasher", "Argon2PasswordHasher"))


def test_demo_settings_keep_plain_http_working():
    """`make run` serves http://127.0.0.1:8000: no https redirect, no Secure cookies there."""
    env = production_env(DEBUG="1", CHAIRSIDE_DEMO="1")
    env.pop("SECRET_KEY")
    result = run(["-c", PRINT_SETTINGS], env)
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["SECURE_SSL_REDIRECT"] is False and values["SESSION_COOKIE_SECURE"] is False and values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_NAME"] == "sessionid"


@pytest.mark.django_db
def test_cfg2_csp_header_on_pages(client, nurse):
    client.force_login(nurse)
    for url in ("/accounts/login/", "/nurse/"):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in policy.split(";") if d.strip())
        assert directives["default-src"] == "'self'"
        assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert directives["script-src"].startswith("'self'") and directives["style-src"].startswith("'self'")


def test_cfg2_scripts_and_styles_may_carry_the_nonce(settings):
    """django-csp adds 'nonce-...' to the header of a response whose template used
    {{ csp_nonce }}; nothing else inline is allowed."""
    from csp.constants import NONCE

    assert NONCE in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["script-src"]
    assert NONCE in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["style-src"]


@pytest.mark.django_db
def test_cfg2_templates_have_no_inline_script_or_style():
    """Inline code would be blocked by the CSP: scripts and styles come from files
    (or carry the nonce). Checked over every template of ours."""
    import re

    offenders = []
    for path in (BASE_DIR / "templates").rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>|<style[^>]*>|\sstyle=\"|\son[a-z]+=\"", text):
            if "csp_nonce" not in match.group(0):
                offenders.append(f"{path.relative_to(BASE_DIR)}: {match.group(0)}")
    assert offenders == []
