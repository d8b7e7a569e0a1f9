from django.conf import settings
from django.db import connection


def test_tests_run_on_postgresql_and_redis(db):
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
