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


def _q(value: str, unit: str = "mg") -> Quantity:
    return Quantity(Decimal(value), unit)


# Billing unit per HCPCS code, used when an administration does not carry its
# own ``hcpcs_unit`` (scenarios/README.md: "when absent, the engine takes it
# from the drug catalog").  Values are those of shared/drug-catalog.csv (a copy
# in charting/data; tests/engine check the two agree), of the R38/R51 table,
# and the HCPCS long descriptors ("up to X" codes have unit X, R46).  A code
# not listed here leaves the drug line to the coder with a warning.
CATALOG_UNITS: dict[str, Quantity] = {
    # R38 rheumatology / infusion-centre biologics (drug-catalog.csv)
    "J1745": _q("10"), "Q5103": _q("10"), "Q5104": _q("10"), "Q5109": _q("10"), "Q5121": _q("10"),
    "J1748": _q("10"), "J9312": _q("10"), "Q5115": _q("10"), "Q5119": _q("10"), "Q5123": _q("10"),
    "J3262": _q("1"), "Q5133": _q("1"), "Q5135": _q("1"), "J0129": _q("10"), "J0490": _q("10"),
    "J1602": _q("1"), "J3358": _q("1"), "J3380": _q("1"), "J2350": _q("1"), "J2323": _q("1"),
    "J2507": _q("1"), "J0491": _q("1"), "J3489": _q("1"), "J0897": _q("1"), "J3111": _q("1"),
    "J0717": _q("1"), "J1300": _q("10"), "J3241": _q("10"), "J3247": _q("1"),
    "J1459": _q("500"), "J1569": _q("500"), "J1561": _q("500"), "J1556": _q("500"),
    # steroids, pre-medications, antiemetics, analgesics
    "J2920": _q("40"), "J2930": _q("125"), "J1010": _q("1"), "J1100": _q("1"), "J1200": _q("50"),
    "J0131": _q("10"), "J2405": _q("1"), "J2550": _q("50"), "J2060": _q("2"), "J1885": _q("15"),
    # chemotherapy / complex and hormonal antineoplastics
    "J9070": _q("100"), "J9250": _q("5"), "J9260": _q("50"), "J9190": _q("500"), "J9209": _q("200"),
    "J9217": _q("7.5"), "J9218": _q("1"), "J1950": _q("3.75"), "J9202": _q("3.6"), "J3315": _q("3.75"),
    "J9155": _q("1"), "J9395": _q("25"), "J9225": _q("50"), "J9226": _q("50"),
    # iron, anti-infectives, vitamins, catheter care
    "J1756": _q("1"), "J1439": _q("1"), "Q0138": _q("1"), "Q0139": _q("1"),
    "J0696": _q("250"), "J3370": _q("500"), "J0456": _q("500"), "J1956": _q("250"), "J0133": _q("5"),
    "J3420": _q("1000", "mcg"), "J1642": _q("10", "units"), "J2997": _q("1"),
    # hydration fluids, by bag (J7040: 500 mL = 1 unit)
    "J7030": _q("1000", "mL"), "J7040": _q("500", "mL"), "J7050": _q("250", "mL"),
}


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


def drug_lines(w: Work) -> None:
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
        if unit is None and hcpcs in CATALOG_UNITS:
            unit = CATALOG_UNITS[hcpcs]
            w.warn(
                "billing_unit_from_catalog",
                f"{hcpcs}: billing unit not charted; catalog unit {_fmt(unit.value)} {unit.unit} used.",
                ids,
                ("R46",),
            )
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
