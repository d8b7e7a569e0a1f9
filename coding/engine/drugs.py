"""Drug (HCPCS Level II) lines beside the administration lines (R46-R49, D6, D8).

Units = administered amount / billing unit, rounded up (R46).  From single-dose
containers the discarded amount goes on its own JW line, rounded down; when it
is less than one billing unit the administered line takes JZ (R47, R48, D8).
Multiple-dose containers take neither.  The NDC is reported in 11-digit 5-4-2
form (R49).  Fluids are billed only when their hydration was reported (D6).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import TYPE_CHECKING

from .types import Administration, Quantity

if TYPE_CHECKING:
    from .state import Work

_MASS_IN_MG = {"mg": Decimal(1), "g": Decimal(1000), "mcg": Decimal("0.001")}


def to_unit(q: Quantity, unit: str) -> Decimal | None:
    """``q`` expressed in ``unit`` (mass units convert; mL and units only to
    themselves), or None when the units are incompatible."""
    if q.unit == unit:
        return Decimal(q.value)
    if q.unit in _MASS_IN_MG and unit in _MASS_IN_MG:
        return Decimal(q.value) * _MASS_IN_MG[q.unit] / _MASS_IN_MG[unit]
    return None


def ndc_11(ndc: str) -> str | None:
    """10-digit NDC as printed (4-4-2, 5-3-2, 5-4-1) to the 11-digit 5-4-2 form
    without hyphens (R49); an 11-digit 5-4-2 NDC is returned unhyphenated;
    anything else gives None."""
    parts = ndc.strip().split("-")
    if len(parts) != 3 or not all(re.fullmatch(r"\d+", p) for p in parts):
        digits = re.sub(r"\D", "", ndc)
        return digits if len(digits) == 11 else None
    a, b, c = parts
    shape = (len(a), len(b), len(c))
    if shape == (4, 4, 2):
        a = "0" + a
    elif shape == (5, 3, 2):
        b = "0" + b
    elif shape == (5, 4, 1):
        c = "0" + c
    elif shape != (5, 4, 2):
        return None
    return a + b + c


def drug_lines(w: "Work") -> None:
    """R46-R49, D6, D8: one drug line per HCPCS per date (doses summed)."""
    groups: dict[tuple[str, object], list[Administration]] = {}
    for adm in w.administrations:
        if not adm.hcpcs or adm.purpose in ("kvo", "flush", "drug_vehicle") or adm.id in w.bag_fluids:
            continue
        if adm.admin_class == "hydration" and adm.id not in w.billed_hydration:
            continue  # D6: fluid is billed only with reportable hydration
        groups.setdefault((adm.hcpcs.strip().upper(), w.date_of(adm.start)), []).append(adm)
    for (hcpcs, when), members in groups.items():
        ids = tuple(a.id for a in members)
        unit = next((a.hcpcs_unit for a in members if a.hcpcs_unit is not None), None)
        if unit is None or unit.value <= 0:
            w.warn(
                "billing_unit_unknown",
                f"{hcpcs}: billing unit not given; drug line left to the catalog/coder.",
                ids,
                ("R46",),
            )
            continue
        total = Decimal(0)
        ok = True
        for a in members:
            if a.dose is None:
                continue
            amount = to_unit(a.dose, unit.unit)
            if amount is None:
                ok = False
                break
            total += amount
        if not ok:
            w.warn(
                "dose_unit_mismatch",
                f"{hcpcs}: dose unit does not convert to the billing unit {unit.unit}.",
                ids,
                ("R46",),
            )
            continue
        if total <= 0:
            w.warn("dose_missing", f"{hcpcs}: no administered amount charted.", ids, ("R46",))
            continue
        per = Decimal(unit.value)
        units = max(1, math.ceil(total / per))
        ndc = next((n for n in (ndc_11(a.ndc) for a in members if a.ndc) if n), None)
        if any(a.ndc for a in members) and ndc is None:
            w.warn("ndc_format", f"{hcpcs}: NDC is not a 10- or 11-digit NDC.", ids, ("R49",))
        rules: tuple[str, ...] = ("R46",) + (("R49",) if ndc else ())
        containers = [a.container for a in members if a.container is not None]
        label = members[0].drug
        base = f"{label}: {_fmt(total)} {unit.unit} at {_fmt(per)} {unit.unit} per unit = {units} unit(s)"
        if not containers:
            w.warn(
                "container_not_documented",
                f"{hcpcs}: container type not charted; JW/JZ cannot be decided.",
                ids,
                ("R47", "R48"),
            )
            w.line(hcpcs, units, admins=ids, rules=rules, explanation=base, when=when, ndc=ndc)
            continue
        if any(c.type == "multi_dose" for c in containers):
            w.line(
                hcpcs,
                units,
                admins=ids,
                rules=rules + ("R47", "R48"),
                when=when,
                ndc=ndc,
                explanation=base + "; multiple-dose container, no JW/JZ",
            )
            continue
        wasted = [a.wasted for a in members if a.container is not None]
        if any(q is None for q in wasted):
            w.warn(
                "waste_not_documented",
                f"{hcpcs}: single-dose container without a charted discarded amount.",
                ids,
                ("R47", "R48"),
            )
            w.line(hcpcs, units, admins=ids, rules=rules, explanation=base, when=when, ndc=ndc)
            continue
        waste_amount = Decimal(0)
        for q in wasted:
            assert q is not None
            converted = to_unit(q, unit.unit)
            waste_amount += converted if converted is not None else Decimal(0)
        waste_units = math.floor(waste_amount / per)
        if waste_units >= 1:
            w.line(
                hcpcs,
                units,
                admins=ids,
                rules=rules + ("R47",),
                when=when,
                ndc=ndc,
                explanation=base + "; administered amount, discard billed on its own JW line",
            )
            w.line(
                hcpcs,
                waste_units,
                admins=ids,
                rules=("R47",) + rules[1:],
                modifiers=("JW",),
                when=when,
                ndc=ndc,
                explanation=f"{label}: {_fmt(waste_amount)} {unit.unit} discarded from single-dose container(s) = {waste_units} unit(s), rounded down",
            )
        else:
            extra = (
                "nothing discarded"
                if waste_amount == 0
                else f"{_fmt(waste_amount)} {unit.unit} discarded is less than one unit"
            )
            w.line(
                hcpcs,
                units,
                admins=ids,
                rules=rules + ("R48",) + (("D8", "R47") if waste_amount else ()),
                modifiers=("JZ",),
                when=when,
                ndc=ndc,
                explanation=base + f"; {extra}, JZ",
            )


def _fmt(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text
