"""TIM-1: time zones on, and a naive datetime reaching the ORM fails the run."""

import datetime as dt

import pytest
from django.conf import settings

from audit.models import AuditEvent


def test_tim1_use_tz_is_on():
    assert settings.USE_TZ is True


@pytest.mark.django_db
def test_tim1_a_naive_datetime_is_an_error_not_a_warning():
    with pytest.raises(RuntimeWarning, match="received a naive datetime"):
        AuditEvent.objects.filter(at__lt=dt.datetime(2026, 3, 8, 2, 30)).count()


@pytest.mark.django_db
def test_aud10_audit_times_are_utc(nurse):
    from audit.services import record

    event = record("charting.test.tz", actor=nurse)
    event.refresh_from_db()
    assert event.at.utcoffset() == dt.timedelta(0)
