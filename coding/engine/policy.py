"""Payer policy: the settings where sources disagree ("Engine defaults" D1-D13
and the "Points where sources disagree" of coding-rules.md).

``MEDICARE`` holds the defaults every scenario follows.  A policy is a frozen
value; the Django side stores it as ``to_dict()`` (JSON) and passes
``PayerPolicy.from_dict(stored)`` to ``evaluate(doc, policy=...)``.  Defaults
that are not a payer's choice (D6 fluid lines, D7 office primary reason, D10 no
stop time, D12/D13 injection codes) stay fixed behaviour documented on the
rules that implement them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# Every choice below is a tuple whose first item is the Medicare default.
DISTINCT_MODIFIERS = ("59", "XU", "XS", "XE", "XP")
SECONDARY_HYDRATION_59_CHOICES = ("chemo_initial_only", "always", "never")
SAME_DRUG_RUNS_CHOICES = ("sum", "additional_hour", "sequential")
MIXED_BAG_CHOICES = ("one_infusion", "sequential", "concurrent")
SPLIT_DOSE_CHOICES = ("one_injection", "per_syringe")
LINE_DATES_CHOICES = ("start_date", "service_day")
# A payer moves a drug between the two drug families; never to or from
# hydration (a bag carrying a drug is never hydration, R3).
OVERRIDE_FAMILIES = ("chemo_complex", "therapeutic")
_HCPCS_LEN = 5


class PolicyError(ValueError):
    """A policy value the engine cannot apply (``field``: which one)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"payer policy {field}: {message}")


@dataclass(frozen=True, slots=True)
class PayerPolicy:
    """Contested choices for one payer.  Every field has the Medicare default.

    distinct_modifier -- D3 (R10, R12): modifier on the second initial at a
        medically required separate site: "59" | "XU" | "XS" | "XE" | "XP".
    separate_encounter_modifier -- D3 (R13): modifier on the initial of a
        second encounter the same day (same choices; "XE" is the CMS subset).
    secondary_hydration_59 -- D1 (R31, dispute 3): when 96361 after another
        initial carries 59: "chemo_initial_only" | "always" | "never".
    family_overrides -- D9 (R36-R38, dispute 7): ((HCPCS, family), ...): the
        administration family this payer applies to a drug, replacing the one
        charted (e.g. ("J0717", "therapeutic") for certolizumab -> 96372).
    report_jz -- R48: JZ on single-dose drug lines with nothing discarded
        (False for payers/settings that do not take JZ, e.g. packaged OPPS).
    jz_when_discard_below_unit -- D8 (R47, dispute 14): a discard smaller than
        one billing unit takes JZ (True) or neither JW nor JZ (False).
    same_drug_runs -- D2 (R17, dispute 8): separate runs of one drug in an
        encounter are "sum"med before units; or each later run is reported on
        its own as "additional_hour" (96366/96415, HCPro) or "sequential"
        (96367/96417, CPT Assistant Dec 2007).
    combine_hydration_segments -- D5 (R17, R21): non-contiguous hydration
        segments are summed (True) or each judged alone (False).
    split_dose_injection -- D11 (R9, dispute 10): one dose split over syringes
        is "one_injection" or one line "per_syringe" (the second with 59).
    injection_repeat_modifier -- D11 (R9): modifier on a second injection line
        with the same code.
    injections_on_one_line -- R9: several injections with one code go on one
        line with units instead of one line each (some payers).
    mixed_bag -- R26 (dispute 1): drugs mixed in one bag are "one_infusion",
        or coded "sequential" (96367, AAPC) or "concurrent" (96368, MedLearn).
    port_flush_with_em -- R42 (dispute 11): 96523 is also reported beside a
        significant, separately identifiable E/M (with 25 on the E/M).
    hydration_volume_floor_ml -- R33 (dispute 5): hydration of this many mL or
        less is not reasonable and necessary (None: no floor, CPT).
    line_dates -- D4 (R14, dispute 9): every unit of one continuous service is
        dated on the day it started ("start_date"), or each hour-unit on the
        local day that hour of running time began ("service_day").
    """

    name: str = "medicare"
    distinct_modifier: str = "59"
    separate_encounter_modifier: str = "59"
    secondary_hydration_59: str = "chemo_initial_only"
    family_overrides: tuple[tuple[str, str], ...] = ()
    report_jz: bool = True
    jz_when_discard_below_unit: bool = True
    same_drug_runs: str = "sum"
    combine_hydration_segments: bool = True
    split_dose_injection: str = "one_injection"
    injection_repeat_modifier: str = "59"
    injections_on_one_line: bool = False
    mixed_bag: str = "one_infusion"
    port_flush_with_em: bool = False
    hydration_volume_floor_ml: int | None = None
    line_dates: str = "start_date"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise PolicyError("name", "expected a non-empty string")
        for field, choices in _CHOICES.items():
            value = getattr(self, field)
            if value not in choices:
                raise PolicyError(field, f"{value!r} is not one of {', '.join(choices)}")
        for field in _BOOLEANS:
            if not isinstance(getattr(self, field), bool):
                raise PolicyError(field, f"expected true or false, got {getattr(self, field)!r}")
        floor = self.hydration_volume_floor_ml
        if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int) or floor < 0):
            raise PolicyError("hydration_volume_floor_ml", f"expected a non-negative whole number of mL or null, got {floor!r}")
        if not isinstance(self.family_overrides, tuple):
            raise PolicyError("family_overrides", "expected a tuple of (HCPCS, family) pairs")
        seen: set[str] = set()
        for pair in self.family_overrides:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise PolicyError("family_overrides", f"expected (HCPCS, family) pairs, got {pair!r}")
            code, family = pair
            if not isinstance(code, str) or len(code) != _HCPCS_LEN or code != code.strip().upper() or not code[1:].isdigit():
                raise PolicyError("family_overrides", f"{code!r} is not an upper-case HCPCS Level II code such as J0717")
            if family not in OVERRIDE_FAMILIES:
                raise PolicyError("family_overrides", f"{family!r} is not one of {', '.join(OVERRIDE_FAMILIES)}")
            if code in seen:
                raise PolicyError("family_overrides", f"{code} is listed twice")
            seen.add(code)

    def family_for(self, hcpcs: str | None) -> str | None:
        """The family this payer applies to ``hcpcs`` (D9), or None to keep the charted one."""
        if not hcpcs or not self.family_overrides:
            return None
        code = hcpcs.strip().upper()
        for c, family in self.family_overrides:
            if c == code:
                return family
        return None

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-safe data (family_overrides as [[HCPCS, family], ...])."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["family_overrides"] = [list(p) for p in self.family_overrides]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PayerPolicy:
        """A policy from ``to_dict()`` data; a missing key takes the Medicare
        default.  Raises ``PolicyError`` for an unknown key or a bad value, so
        a typo in a stored policy never silently falls back to a default."""
        if not isinstance(data, dict):
            raise PolicyError("<root>", f"expected an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PolicyError(unknown[0], f"unknown setting (known: {', '.join(sorted(known))})")
        values = dict(data)
        if "family_overrides" in values:
            raw = values["family_overrides"]
            if not isinstance(raw, (list, tuple)):
                raise PolicyError("family_overrides", "expected a list of [HCPCS, family] pairs")
            pairs = []
            for item in raw:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise PolicyError("family_overrides", f"expected [HCPCS, family], got {item!r}")
                code, family = item
                pairs.append((code.strip().upper() if isinstance(code, str) else code, family))
            values["family_overrides"] = tuple(pairs)
        return cls(**values)


_CHOICES: dict[str, tuple[str, ...]] = {
    "distinct_modifier": DISTINCT_MODIFIERS,
    "separate_encounter_modifier": DISTINCT_MODIFIERS,
    "injection_repeat_modifier": DISTINCT_MODIFIERS,
    "secondary_hydration_59": SECONDARY_HYDRATION_59_CHOICES,
    "same_drug_runs": SAME_DRUG_RUNS_CHOICES,
    "mixed_bag": MIXED_BAG_CHOICES,
    "split_dose_injection": SPLIT_DOSE_CHOICES,
    "line_dates": LINE_DATES_CHOICES,
}
_BOOLEANS = (
    "report_jz",
    "jz_when_discard_below_unit",
    "combine_hydration_segments",
    "injections_on_one_line",
    "port_flush_with_em",
)

MEDICARE = PayerPolicy()
"""Traditional Medicare Part B: the "Engine defaults" of coding-rules.md."""

INDEPENDENCE_BLUE_CROSS = PayerPolicy(
    name="independence_blue_cross",
    # R37: IBX (eff. 4/26/2022) bars 96401-96459 for a list of SC/IM drugs
    # including certolizumab, denosumab and leuprolide; they take 96372.
    family_overrides=(("J0717", "therapeutic"), ("J0897", "therapeutic"), ("J1950", "therapeutic")),
)
"""Independence Blue Cross: Medicare defaults except R37's drug list (only the
codes coding-rules.md names; the rest of the payer's list is not verified)."""

POLICIES: dict[str, PayerPolicy] = {p.name: p for p in (MEDICARE, INDEPENDENCE_BLUE_CROSS)}


def policy_for(payer: str) -> PayerPolicy | None:
    """The built-in policy for ``payer``, or None when the payer has none (the
    caller then applies MEDICARE and warns)."""
    return POLICIES.get(payer)
