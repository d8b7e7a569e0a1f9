"""A settable server clock for the charting tests (services stamp timezone.now())."""

import datetime as dt

import pytest
from django.utils import timezone


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs) -> dt.datetime:
        self.now += dt.timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """Frozen at 2026-03-10 14:00 UTC (10:00 in New York); `clock.advance(minutes=5)`."""
    c = Clock(dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", c)
    return c
