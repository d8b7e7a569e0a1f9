"""The rule pipeline: ``RULES`` is the explicit, ordered tuple ``evaluate`` runs.

Each rule is a small named function taking the working state (``Work``, see
``state.py``); it classifies administrations into IV services or writes lines,
not-billed entries and warnings, each citing the coding-rules.md ids that
decided it (R1..., D1...).  No registries, no discovery: to add a rule, write
the function in its domain module and put it in this tuple.
"""

from __future__ import annotations

from collections.abc import Callable

from .classify import (
    catheter_declotting,
    concurrent_infusions,
    fluids_that_are_not_therapy,
    hydration,
    iv_services,
    mixed_bags,
    no_stop_time,
)
from .hierarchy import code_iv_services
from .injections import injections
from .state import Work
from .visits import addons_need_primary, other_services

RULES: tuple[Callable[[Work], None], ...] = (
    fluids_that_are_not_therapy,
    catheter_declotting,
    mixed_bags,
    no_stop_time,
    iv_services,
    hydration,
    concurrent_infusions,
    code_iv_services,
    injections,
    other_services,
    addons_need_primary,
)
"""The administration rules in the order ``evaluate`` runs them."""


def record_billed_hydration(w: Work) -> None:
    """Remember which hydration administrations produced a line (for D6)."""
    for l in w.lines:
        if l.code in ("96360", "96361"):
            w.billed_hydration.update(l.administrations)
