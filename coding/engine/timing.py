"""Minutes and intervals on absolute time (R15, R17, R20, R21, R24).

An interval is a ``(start, end)`` pair of POSIX timestamps (seconds, floats)
with start <= end, taken from aware datetimes with ``datetime.timestamp()``.
All arithmetic is on absolute time, so a DST night has 23 or 25 hours: 01:10 EDT
to 01:50 EST is 100 minutes (R24).  Minutes are whole minutes, rounded down.
Timestamps are also much cheaper to compare and subtract than datetimes, which
matters because the engine recodes every encounter on every change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .types import Administration

Interval = tuple[float, float]

# The time boundaries of the administration codes, in running minutes (R15, R17).
PUSH_MAX_MINUTES = 15  # R18: an infusion of 15 minutes or less is a push
INFUSION_MIN_MINUTES = PUSH_MAX_MINUTES + 1  # R18: infusion codes need 16+ minutes
HYDRATION_MIN_MINUTES = 31  # R19, R21: hydration of 30 minutes or less is not reportable
ADDON_HOUR_MINUTES = 60  # R20: "each additional hour"
ADDON_FIRST_MINUTES = 91  # R20: the first add-on hour needs 31+ minutes past the first 60 (91, 151, 211 ...)


def ts(moment: datetime) -> float:
    """``moment`` as a POSIX timestamp (absolute time; R24).  Never compare or
    subtract aware datetimes that share one tzinfo object: Python does that on
    their wall clocks, which is wrong across a DST change."""
    return moment.timestamp()


def merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted union of ``intervals``; empty and touching pieces are joined."""
    items = sorted(i for i in intervals if i[1] > i[0])
    if len(items) < 2:
        return tuple(items)
    out: list[Interval] = [items[0]]
    for s, e in items[1:]:
        ls, le = out[-1]
        if s <= le:
            if e > le:
                out[-1] = (ls, e)
        else:
            out.append((s, e))
    return tuple(out)


def subtract(base: Iterable[Interval], cut: Iterable[Interval]) -> tuple[Interval, ...]:
    """``base`` minus ``cut`` (both merged first); the result is merged."""
    cuts = merge(cut)
    bases = merge(base)
    if not cuts or not bases:
        return bases
    result: list[Interval] = []
    for s, e in bases:
        pieces = [(s, e)]
        for cs, ce in cuts:
            if ce <= s or cs >= e:
                continue
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
    return tuple(result)  # pieces of disjoint bases stay disjoint and sorted


def minutes_of(merged: tuple[Interval, ...]) -> int:
    """Whole minutes covered by already-merged intervals."""
    return int(sum(e - s for s, e in merged) // 60)


def total_minutes(intervals: Iterable[Interval]) -> int:
    """Whole minutes covered by the union of ``intervals``."""
    return minutes_of(merge(intervals))


def run_intervals(start: float | None, stop: float | None, pauses: Iterable[tuple[float, float | None]]) -> tuple[Interval, ...]:
    """[start, stop] minus pauses (R15, R17); empty without start or stop (R16)
    or when stop precedes start.  A pause without an end runs to ``stop``;
    pauses are clipped to the run."""
    if start is None or stop is None or stop < start:
        return ()
    cuts = [(ps, pe if pe is not None else stop) for ps, pe in pauses]
    if not cuts:
        return ((start, stop),) if stop > start else ()
    return subtract(((start, stop),), cuts)


def running_intervals(adm: Administration) -> tuple[Interval, ...]:
    """When ``adm`` was actually running, as timestamp intervals (R15, R17)."""
    if adm.start is None or adm.stop is None:
        return ()
    return run_intervals(ts(adm.start), ts(adm.stop), ((ts(p), ts(q) if q is not None else None) for p, q in adm.pauses))


def running_minutes(adm: Administration) -> int | None:
    """Drip-to-drip minutes of one administration, or None without start/stop."""
    if adm.start is None or adm.stop is None:
        return None
    return minutes_of(running_intervals(adm))


def moment_at(intervals: tuple[Interval, ...], minute: int) -> float | None:
    """The timestamp at which ``minute`` minutes of running time had elapsed
    within merged ``intervals`` (pauses skipped); None past the end."""
    left = minute * 60.0
    for s, e in intervals:
        if left < e - s or (left == 0 and e >= s):
            return s + left
        left -= e - s
    return None


def addon_hours(minutes: int) -> int:
    """Units of an "each additional hour" code after a first-hour code (R20):
    thresholds at 91, 151, 211 ... minutes, i.e. floor((T - 31) / 60) for T >= 91."""
    if minutes < ADDON_FIRST_MINUTES:
        return 0
    return (minutes - ADDON_FIRST_MINUTES) // ADDON_HOUR_MINUTES + 1


def secondary_hydration_units(minutes: int) -> int:
    """96361 units when hydration is secondary (R21): floor((T - 31) / 60) + 1
    for T >= 31, else 0 (30 minutes or less is not reportable, R19)."""
    if minutes < HYDRATION_MIN_MINUTES:
        return 0
    return (minutes - HYDRATION_MIN_MINUTES) // ADDON_HOUR_MINUTES + 1


@lru_cache(maxsize=64)
def zone(tz_name: str) -> ZoneInfo | None:
    """The clinic's zone, or None when the name is unknown."""
    try:
        return ZoneInfo(tz_name)
    except Exception:
        return None


def local_date(moment: datetime, tz_name: str) -> date:
    """The calendar date of ``moment`` in the clinic's zone (R14)."""
    z = zone(tz_name)
    if z is None:  # unknown zone: fall back to the timestamp's own offset
        return moment.date()
    return moment.astimezone(z).date()


def local_datetime(stamp: float, tz_name: str) -> datetime:
    """A timestamp as a wall-clock datetime in the clinic's zone (UTC when unknown)."""
    return datetime.fromtimestamp(stamp, zone(tz_name) or UTC)


def minutes_between(earlier: datetime, later: datetime) -> float:
    """Signed minutes from ``earlier`` to ``later`` on absolute time."""
    return (ts(later) - ts(earlier)) / timedelta(minutes=1).total_seconds()
