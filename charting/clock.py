"""Wall-clock times typed by a nurse, read in the clinic's zone (TIM-2).

On the spring-forward day a local time between 02:00 and 03:00 never
happened; on the fall-back day one between 01:00 and 02:00 happened twice.
Python (zoneinfo) quietly gives both an offset, which would chart an
instant the nurse did not mean, so a typed time in either window is refused
with a message that says which it is. Times stamped by the Start/Stop
buttons are server instants and never go through here.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def _shift(naive: dt.datetime, tz: ZoneInfo) -> dt.timedelta:
    """Offset after minus offset before a transition `naive` falls in: > 0 in
    a gap (clocks forward), < 0 in a repeated hour (clocks back), 0 otherwise
    (PEP 495: fold=0 reads a gap or a repeat with the offset before it)."""
    return naive.replace(tzinfo=tz, fold=1).utcoffset() - naive.replace(tzinfo=tz, fold=0).utcoffset()


def _day(value: dt.datetime) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}"


def wall_clock_problem(naive: dt.datetime, tz: ZoneInfo) -> str | None:
    """Why `naive` (a local wall-clock time in `tz`) names no single instant,
    or None when it names exactly one."""
    shift = _shift(naive, tz)
    if not shift:
        return None
    hhmm = f"{naive:%H:%M}"
    if shift > dt.timedelta(0):
        start = naive.replace(second=0, microsecond=0)
        while _shift(start - dt.timedelta(minutes=1), tz) > dt.timedelta(0):
            start -= dt.timedelta(minutes=1)
        return f"{hhmm} did not exist on {_day(naive)} in {tz.key}: the clocks went forward from {start:%H:%M} to {start + shift:%H:%M}. Check the time."
    return f"{hhmm} happened twice on {_day(naive)} in {tz.key} (the clocks went back an hour), so it does not say which one was meant."
