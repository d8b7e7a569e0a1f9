"""Test-run defaults: real PostgreSQL and Redis on this machine.

Set before Django loads its settings; `make test` sets the same values, and
any of them can be overridden from the environment.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chairside")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# The test client and the live server speak plain http: production's redirect to
# https would answer every request with a 301 (tests/security/test_deploy_settings.py
# checks the production values in a subprocess without this).
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
