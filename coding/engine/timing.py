"""Minutes and intervals on aware datetimes (R15, R17, R24).

An interval is a ``(start, end)`` pair of aware datetimes with start <= end.
All arithmetic is on absolute time, so a DST night has 23 or 25 hours: 01:10 EDT
to 01:50 EST is 100 minutes (R24).  Minutes are whole minutes, rounded down.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from .types import Administration

Interval = tuple[datetime, datetime]


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC.  Needed before any arithmetic or comparison: Python
    subtracts and compares two datetimes that share one tzinfo object (e.g. one
    ZoneInfo) on their wall clocks, which is wrong across a DST change (R24)."""
    return moment.astimezone(UTC)


def merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted union of ``intervals``; empty and touching pieces are joined."""
    items = sorted((s, e) for s, e in intervals if e > s)
    out: list[Interval] = []
    for s, e in items:
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return tuple(out)


def subtract(base: Iterable[Interval], cut: Iterable[Interval]) -> tuple[Interval, ...]:
    """``base`` minus ``cut`` (both merged first)."""
    result: list[Interval] = []
    cuts = merge(cut)
    for s, e in merge(base):
        pieces = [(s, e)]
        for cs, ce in cuts:
            nxt: list[Interval] = []
            for ps, pe in pieces:
                if ce <= ps or cs >= pe:
                    nxt.append((ps, pe))
                    continue
                if cs > ps:
                    nxt.append((ps, cs))
                if ce < pe:
                    nxt.append((ce, pe))
            pieces = nxt
        result.extend(pieces)
    return merge(result)


def total_minutes(intervals: Iterable[Interval]) -> int:
    """Whole minutes covered by the union of ``intervals`` (UTC intervals)."""
    seconds = sum((e - s).total_seconds() for s, e in merge(intervals))
    return int(seconds // 60)


def running_intervals(adm: Administration) -> tuple[Interval, ...]:
    """When ``adm`` was actually running: [start, stop] minus its pauses (R15, R17).

    Empty when the start or stop time is missing (R16).  A pause without an end
    runs to ``stop``; pauses are clipped to the run.
    """
    if adm.start is None or adm.stop is None:
        return ()
    start, stop = utc(adm.start), utc(adm.stop)
    if stop < start:
        return ()
    pauses = [(utc(ps), utc(pe) if pe is not None else stop) for ps, pe in adm.pauses]
    return subtract([(start, stop)], pauses)


def running_minutes(adm: Administration) -> int | None:
    """Drip-to-drip minutes of one administration, or None without start/stop."""
    if adm.start is None or adm.stop is None:
        return None
    return total_minutes(running_intervals(adm))


def addon_hours(minutes: int) -> int:
    """Units of an "each additional hour" code after a first-hour code (R20):
    thresholds at 91, 151, 211 ... minutes, i.e. floor((T - 31) / 60) for T >= 91."""
    if minutes < 91:
        return 0
    return (minutes - 31) // 60


def secondary_hydration_units(minutes: int) -> int:
    """96361 units when hydration is secondary (R21): floor((T - 31) / 60) + 1
    for T >= 31, else 0 (30 minutes or less is not reportable, R19)."""
    if minutes < 31:
        return 0
    return (minutes - 31) // 60 + 1


def local_date(moment: datetime, tz_name: str) -> date:
    """The calendar date of ``moment`` in the clinic's zone (R14)."""
    try:
        zone: timezone | ZoneInfo = ZoneInfo(tz_name)
    except Exception:  # unknown zone: fall back to the timestamp's own offset
        return moment.date()
    return moment.astimezone(zone).date()


def minutes_between(earlier: datetime, later: datetime) -> float:
    """Signed minutes from ``earlier`` to ``later`` on absolute time."""
    return (utc(later) - utc(earlier)) / timedelta(minutes=1)
