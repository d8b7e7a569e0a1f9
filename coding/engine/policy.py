"""Payer policy: the settings where sources disagree ("Engine defaults" D1-D13).

Only the choices the engine actually branches on are fields here; the rest of
the defaults (D2, D4-D7, D10-D13) are fixed behaviour documented on the rules
that implement them.
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDARY_HYDRATION_59_CHOICES = ("always", "chemo_initial_only", "never")


@dataclass(frozen=True, slots=True)
class PayerPolicy:
    """Contested choices for one payer.

    secondary_hydration_59 -- D1 (R31): when 96361 after another initial
        carries 59: "always" | "chemo_initial_only" | "never".
    distinct_modifier -- D3 (R12, R13): modifier for a second initial at a
        medically required site ("59", "XU", "XS").
    separate_encounter_modifier -- D3 (R13): modifier for the initial of a
        second encounter the same day ("59", "XE").
    injection_repeat_modifier -- D11 (R9): modifier on a second injection line
        with the same code.
    """

    name: str = "medicare"
    secondary_hydration_59: str = "chemo_initial_only"
    distinct_modifier: str = "59"
    separate_encounter_modifier: str = "59"
    injection_repeat_modifier: str = "59"


MEDICARE = PayerPolicy()

POLICIES: dict[str, PayerPolicy] = {"medicare": MEDICARE}


def policy_for(payer: str) -> PayerPolicy | None:
    """The known policy for ``payer``, or None when the payer has none (the
    caller then applies MEDICARE and warns)."""
    return POLICIES.get(payer)
