"""The next billing threshold of a running drug, for the nurse's live timer.

Built from the engine's own code tables (codes.py) and time boundaries
(timing.py), so the chair-side hint and the coding agree by construction.
"""

from __future__ import annotations

from typing import NamedTuple

from . import codes as C
from .timing import ADDON_FIRST_MINUTES, ADDON_HOUR_MINUTES, HYDRATION_MIN_MINUTES, INFUSION_MIN_MINUTES

# Routes the timed infusion codes apply to; SC/IM injections and intra-arterial
# pushes are coded per injection, whatever their minutes (R9, R34).
TIMED_ROUTES = frozenset({"iv_infusion", "iv_push"})

INITIAL = "initial"
SEQUENTIAL = "sequential"


class Threshold(NamedTuple):
    """`code` becomes reportable once the drug has run `minute` running minutes."""

    code: str
    minute: int


def next_threshold(family: str, route: str, minutes: int, *, position: str = INITIAL) -> Threshold | None:
    """The next code boundary strictly after `minutes` running minutes (drip to
    drip, pauses excluded: R15, R17) of one administration.

    `family` is the administration family ("chemo_complex", "therapeutic",
    "hydration"), `route` the charted route ("iv_infusion", ...), `position`
    whether the drug is the encounter's INITIAL service or a SEQUENTIAL one
    (which depends on the whole encounter: R4-R8, R22).

    - chemo / therapeutic: the infusion code at 16 minutes (R18: 15 or less
      is a push), initial 96413 / 96365, sequential 96417 / 96367 (R22);
    - hydration: 96360 at 31 minutes (R19), or 96361 when sequential (R21);
    - then the family's "each additional hour" code (96415 / 96366 / 96361)
      at 91, 151, 211 ... minutes (R20, R21).

    Returns None for untimed routes (SC, IM, intra-arterial) and unknown
    families. Raises ValueError for a negative `minutes` or an unknown `position`.
    """
    if minutes < 0:
        raise ValueError("minutes must be >= 0")
    if position not in (INITIAL, SEQUENTIAL):
        raise ValueError(f"position must be {INITIAL!r} or {SEQUENTIAL!r}")
    if route not in TIMED_ROUTES or family not in C.ADDITIONAL_HOUR_CODE:
        return None
    first_minute = HYDRATION_MIN_MINUTES if family == "hydration" else INFUSION_MIN_MINUTES
    if minutes < first_minute:
        code = C.SEQUENTIAL_INFUSION_CODE[family] if position == SEQUENTIAL else C.INITIAL_CODE[(family, "infusion")]
        return Threshold(code, first_minute)
    if minutes < ADDON_FIRST_MINUTES:
        minute = ADDON_FIRST_MINUTES
    else:
        minute = ADDON_FIRST_MINUTES + ((minutes - ADDON_FIRST_MINUTES) // ADDON_HOUR_MINUTES + 1) * ADDON_HOUR_MINUTES
    return Threshold(C.ADDITIONAL_HOUR_CODE[family], minute)


def upcoming_thresholds(family: str, route: str, minutes: int, *, position: str = INITIAL, count: int = 6) -> list[Threshold]:
    """The next `count` thresholds after `minutes` (see `next_threshold`), so a
    live timer can move on to the next one without asking the server."""
    out: list[Threshold] = []
    while len(out) < count:
        nxt = next_threshold(family, route, minutes, position=position)
        if nxt is None:
            break
        out.append(nxt)
        minutes = nxt.minute
    return out
