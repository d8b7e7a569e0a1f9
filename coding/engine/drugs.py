"""Drug (HCPCS Level II) lines beside the administration lines (R46-R49, D6, D8).

Units = administered amount / billing unit, rounded up; a dose below one unit
is one unit (R46).  From single-dose containers the discarded amount goes on
its own JW line, rounded down; when it is less than one billing unit (so one
unit already covers dose + waste, or the waste is a fraction of a unit) there
is no JW line and the administered line takes JZ, as it does when nothing was
discarded (R47, R48, D8).  Multiple-dose containers take neither.  The NDC is
reported in 11-digit 5-4-2 form with qualifier N4, its quantity and unit (R49).
Fluids are billed only when their hydration was reported (D6).

Input the engine cannot use is never guessed at.  It is not an exception
either: a malformed NDC, a dose or discard in a unit the billing unit cannot
convert from (mL against mg needs a concentration the chart does not hold) or
a missing billing unit gives a ``blocking`` warning and no drug line for that
code, so the rest of the encounter is still coded and the coder sees why.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from .types import Administration, Container, Quantity

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
    """``q`` expressed in ``unit`` (mass units convert among themselves; mL and
    units only to themselves), or None when the units are incompatible."""
    if q.unit == unit:
        return q.value
    if q.unit in _MASS_IN_MG and unit in _MASS_IN_MG:
        return Decimal(q.value) * _MASS_IN_MG[q.unit] / _MASS_IN_MG[unit]
    return None


def billing_units(amount: Decimal, per: Decimal) -> int:
    """R46: HCPCS units for an administered ``amount``: amount / unit size,
    rounded up; any amount above zero is at least one unit."""
    if amount <= 0:
        return 0
    whole, rest = divmod(amount, per)
    return int(whole) + (1 if rest else 0) or 1


def discard_units(amount: Decimal, per: Decimal) -> int:
    """R47: JW units for a discarded ``amount``: rounded down (a discard of
    less than one billing unit gives none)."""
    if amount <= 0:
        return 0
    return int(amount // per)


_NDC_SHAPES = {(4, 4, 2): 0, (5, 3, 2): 1, (5, 4, 1): 2, (5, 4, 2): None}
_DIGITS = re.compile(r"\d+")


def parse_ndc(text: str) -> tuple[str | None, str | None]:
    """An NDC as printed to ``(11-digit 5-4-2 form, None)`` or ``(None, reason)`` (R49).

    The 10-digit shapes are padded with a leading zero in the short segment:
    4-4-2 (0002-7597-01 -> 00002759701), 5-3-2 (50242-040-62 -> 50242004062),
    5-4-1 (60575-4112-1 -> 60575411201).  An 11-digit NDC is accepted as
    5-4-2, hyphenated or not.  Ten digits without hyphens are ambiguous (the
    segment to pad is unknown); 6-digit labeler shapes (6-3-2, 6-4-1) do not fit
    the 11-digit claim format; anything else is malformed.
    """
    raw = text.strip()
    parts = raw.split("-")
    if len(parts) == 1:
        if _DIGITS.fullmatch(raw) and len(raw) == 11:
            return raw, None
        if _DIGITS.fullmatch(raw) and len(raw) == 10:
            return None, f"NDC {text!r} has 10 digits without hyphens: cannot tell which segment to pad; chart it as printed (4-4-2, 5-3-2 or 5-4-1)"
        return None, f"NDC {text!r} is not a 10-digit NDC as printed (4-4-2, 5-3-2, 5-4-1) or an 11-digit 5-4-2 NDC"
    if len(parts) != 3 or not all(_DIGITS.fullmatch(p) for p in parts):
        return None, f"NDC {text!r} is not three groups of digits separated by hyphens"
    shape = (len(parts[0]), len(parts[1]), len(parts[2]))
    if shape not in _NDC_SHAPES:
        if shape[0] == 6:
            return None, f"NDC {text!r} has a 6-digit labeler ({shape[0]}-{shape[1]}-{shape[2]}); the 11-digit 5-4-2 claim form cannot carry it"
        return None, f"NDC {text!r} has shape {shape[0]}-{shape[1]}-{shape[2]}; expected 4-4-2, 5-3-2, 5-4-1 or 5-4-2"
    pad = _NDC_SHAPES[shape]
    if pad is not None:
        parts[pad] = "0" + parts[pad]
    return "".join(parts), None


def ndc_11(ndc: str) -> str | None:
    """The 11-digit 5-4-2 form of an NDC as printed, or None when malformed (R49)."""
    return parse_ndc(ndc)[0]


# R49 unit qualifiers, by the unit the package is measured in.
NDC_UNIT_QUALIFIERS = {"mL": "ML", "g": "GR", "units": "F2", "mg": "ME", "mcg": "ME"}
NDC_QUALIFIER = "N4"


def ndc_quantity(amount: Quantity, containers: list[Container]) -> tuple[Decimal, str] | None:
    """R49: the NDC quantity and unit qualifier of ``amount`` (administered or
    discarded) in the package's unit -- not in HCPCS units.

    * a liquid dose in mL: ML, the millilitres;
    * international units: F2; grams: GR;
    * a mass dose from containers labelled by mass (a 100 mg vial): UN, the
      number of containers' worth (184 mg of 100 mg vials = UN 1.84), since
      several payers reject ME;
    * a mass dose with no container size charted: GR for grams, else ME in
      milligrams.
    None when the amount cannot be expressed in the package's unit (a mg dose
    from containers labelled in mL needs the concentration).
    """
    sizes = {c.size for c in containers if c.size is not None}
    size = next(iter(sizes)) if len(sizes) == 1 else None
    if amount.unit in _MASS_IN_MG:
        if size is not None and size.unit in _MASS_IN_MG and size.value > 0:
            worth = to_unit(amount, size.unit)
            assert worth is not None
            return (_round3(worth / Decimal(size.value)), "UN")
        if size is not None:
            return None  # mass dose, package measured in mL/units: no conversion
        if amount.unit == "g":
            return (_round3(Decimal(amount.value)), "GR")
        mg = to_unit(amount, "mg")
        assert mg is not None
        return (_round3(mg), "ME")
    if size is not None and size.unit != amount.unit:
        return None
    return (_round3(Decimal(amount.value)), NDC_UNIT_QUALIFIERS[amount.unit])


def _round3(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.001")).normalize() if d != d.to_integral() else d.quantize(Decimal(1))


def drug_lines(w: Work) -> None:
    """R46-R49, D6, D8: one drug line per HCPCS per date (doses summed), plus a
    JW line for a billable discard."""
    groups: dict[tuple[str, date], list[Administration]] = {}
    skip = w.bag_fluids
    for adm in w.administrations:
        if not adm.hcpcs or adm.purpose in _NOT_DRUG_PURPOSES or adm.id in skip:
            continue
        hcpcs = adm.hcpcs.strip().upper()
        if adm.admin_class == "hydration" and adm.id not in w.billed_hydration:
            w.skip(
                f"{hcpcs}: {adm.drug} (fluid)",
                (adm.id,),
                ("D6", "R29", "R41"),
                "A fluid bag is billed only when its hydration is reported; otherwise it is a supply of the service.",
            )
            continue  # D6: fluid is billed only with reportable hydration
        key = (hcpcs, w.date_of(w.runs[adm.id].start))
        if key in groups:
            groups[key].append(adm)
        else:
            groups[key] = [adm]
    for (hcpcs, when), members in groups.items():
        _drug_line(w, hcpcs, when, members)


_NOT_DRUG_PURPOSES = frozenset({"kvo", "flush", "drug_vehicle"})


def _drug_line(w: Work, hcpcs: str, when: date, members: list[Administration]) -> None:
    first = members[0]
    ids = (first.id,) if len(members) == 1 else tuple(a.id for a in members)
    who = f"{first.drug} (adm {', '.join(ids)})"
    unit = first.hcpcs_unit
    if unit is None:
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
            f"{hcpcs}: billing unit not known; no drug line until the catalog or the chart gives it.",
            ids,
            ("R46",),
            blocking=True,
        )
        return
    per, u = unit.value, unit.unit
    # One pass: administered total, containers, discarded total (None when a
    # single-dose container has no charted discard), NDCs as printed.
    total = _ZERO
    waste: Decimal | None = _ZERO
    waste_problem = ""
    containers: list[Container] = []
    printed: list[str] = []
    for a in members:
        if a.dose is not None:
            amount = a.dose.value if a.dose.unit == u else to_unit(a.dose, u)
            if amount is None:
                w.warn(
                    "dose_unit_mismatch",
                    f"{hcpcs}: {a.drug} dose charted in {a.dose.unit} cannot be converted to the billing unit "
                    f"({_fmt(per)} {u}) without a concentration; no drug line. Chart the dose in {u}.",
                    ids,
                    ("R46",),
                    blocking=True,
                )
                return
            total += amount
        if a.ndc and a.ndc.strip() and a.ndc.strip() not in printed:
            printed.append(a.ndc.strip())
        if a.container is not None:
            containers.append(a.container)
            if waste is not None and not waste_problem:
                if a.wasted is None:
                    waste = None
                else:
                    converted = a.wasted.value if a.wasted.unit == u else to_unit(a.wasted, u)
                    if converted is None:
                        waste_problem = a.wasted.unit
                    else:
                        waste += converted
    if total <= 0:
        w.warn("dose_missing", f"{hcpcs}: no administered amount charted; no drug line.", ids, ("R46",), blocking=True)
        return
    units = billing_units(total, per)
    ratio = total / per
    rounding = "a dose below one unit is 1 unit" if ratio < 1 else ("exact" if ratio == units else "rounded up")
    per_text = _fmt(per)
    base = f"{hcpcs} ×{units}: {who} {_fmt(total)} {u} ÷ {per_text} {u} per unit = {_ratio(ratio)} → {units} unit(s) ({rounding}, R46)"
    rules: tuple[str, ...] = ("R46",)

    # NDC (R49): one valid NDC per line; a malformed one blocks the line.
    ndc: str | None = None
    if printed:
        parsed = [parse_ndc(p) for p in printed]
        errors = [e for _, e in parsed if e]
        if errors:
            w.warn("ndc_malformed", f"{hcpcs}: {'; '.join(errors)}. No drug line until the NDC is corrected.", ids, ("R49",), blocking=True)
            return
        forms = tuple(dict.fromkeys(n for n, _ in parsed if n))
        if len(forms) > 1:
            w.warn(
                "ndc_several",
                f"{hcpcs}: several NDCs charted ({', '.join(printed)}); report one line per NDC. Line suggested without NDC.",
                ids,
                ("R49",),
                blocking=True,
            )
        else:
            ndc = forms[0]
            rules += ("R49",)
            base += f"; NDC {printed[0]} → {NDC_QUALIFIER} {ndc}"

    def emit(n: int, amount: Decimal, text: str, line_rules: tuple[str, ...], modifiers: tuple[str, ...] = ()) -> None:
        if ndc is None:
            w.line(hcpcs, n, admins=ids, rules=line_rules, modifiers=modifiers, when=when, explanation=text)
            return
        quantity = ndc_quantity(Quantity(amount, u), containers)
        if quantity is None:
            w.warn("ndc_quantity", f"{hcpcs}: NDC quantity cannot be expressed in the package's unit ({u} charted); enter it by hand.", ids, ("R49",))
            w.line(hcpcs, n, admins=ids, rules=line_rules, modifiers=modifiers, when=when, explanation=text, ndc=ndc, ndc_qualifier=NDC_QUALIFIER)
            return
        w.line(
            hcpcs,
            n,
            admins=ids,
            rules=line_rules,
            modifiers=modifiers,
            when=when,
            explanation=f"{text}; NDC quantity {quantity[1]} {_fmt(quantity[0])}",
            ndc=ndc,
            ndc_qualifier=NDC_QUALIFIER,
            ndc_quantity=quantity[0],
            ndc_unit=quantity[1],
        )

    if not containers:
        w.warn("container_not_documented", f"{hcpcs}: container type not charted; JW/JZ cannot be decided.", ids, ("R47", "R48"), blocking=True)
        emit(units, total, base + "; container not charted, no JW/JZ", rules)
        return
    if any(c.type == "multi_dose" for c in containers):
        emit(units, total, base + "; multiple-dose container: neither JW nor JZ (R47, R48)", rules + ("R47", "R48"))
        return
    if waste is None:
        w.warn(
            "waste_not_documented",
            f"{hcpcs}: single-dose container without a charted discarded amount (or 'none'); JW/JZ cannot be decided.",
            ids,
            ("R47", "R48"),
            blocking=True,
        )
        emit(units, total, base + "; discarded amount not charted, no JW/JZ", rules)
        return
    if waste_problem:
        w.warn(
            "waste_unit_mismatch",
            f"{hcpcs}: discarded amount charted in {waste_problem} cannot be converted to the billing unit ({per_text} {u}); no JW/JZ. Chart the waste in {u}.",
            ids,
            ("R47",),
            blocking=True,
        )
        emit(units, total, base + "; discarded amount in another unit, no JW/JZ", rules)
        return
    waste_units = discard_units(waste, per)
    if waste_units >= 1:
        emit(units, total, base + "; administered amount (discard on its own JW line, R47)", rules + ("R47",))
        emit(
            waste_units,
            waste,
            f"{hcpcs}-JW ×{waste_units}: {who} {_fmt(waste)} {u} discarded from single-dose container(s) ÷ {per_text} {u} = "
            f"{_ratio(waste / per)} → {waste_units} unit(s) (rounded down, R47)" + (f"; NDC {NDC_QUALIFIER} {ndc}" if ndc else ""),
            ("R47",) + rules,
            ("JW",),
        )
        return
    if not waste:
        jz = w.policy.report_jz
        text = base + ("; nothing discarded from single-dose container(s): JZ (R48)" if jz else "; nothing discarded; payer does not take JZ (R48)")
        emit(units, total, text, rules + ("R48",), ("JZ",) if jz else ())
        return
    covers = " (one billing unit covers dose + waste)" if units == 1 and total + waste <= per else ""
    jz = w.policy.report_jz and w.policy.jz_when_discard_below_unit
    text = base + f"; {_fmt(waste)} {u} discarded is less than one {per_text} {u} unit{covers}: no JW line, " + ("JZ (D8)" if jz else "neither JW nor JZ (payer setting, D8)")
    emit(units, total, text, rules + ("R47", "R48", "D8"), ("JZ",) if jz else ())


_ZERO = Decimal(0)


def _ratio(d: Decimal) -> str:
    """A quotient for explanations: at most three decimals."""
    text = _fmt(d)
    if "." in text and len(text) - text.index(".") > 4:
        return _fmt(d.quantize(Decimal("0.001")))
    return text


def _fmt(d: Decimal) -> str:
    """A Decimal without exponent or trailing zeros ("1000", "18.4")."""
    text = str(d)
    if "E" in text:
        return format(d.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
