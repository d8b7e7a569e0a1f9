"""Drug lines (R46-R49, D6, D8) as tables: every example in the text of R46-R49
(and D8's Noridian example) is a row, plus the boundaries around them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from enginekit import adm, doc

from coding.engine import Container, PayerPolicy, Quantity, evaluate
from coding.engine.drugs import billing_units, discard_units, ndc_11, ndc_quantity, parse_ndc


def q(value: str | int, unit: str = "mg") -> Quantity:
    return Quantity(Decimal(str(value)), unit)


def drug(
    dose: str | int,
    unit: str | int,
    *,
    dose_unit: str = "mg",
    unit_unit: str = "mg",
    container: str | None = "single_dose",
    size: Quantity | None = None,
    count: int = 1,
    wasted: str | int | None = 0,
    waste_unit: str | None = None,
    ndc: str | None = None,
    hcpcs: str = "J9999",
    route: str = "iv_push",
    id: str = "1",
):
    a = adm(id, route=route, start=0, stop=0)
    return replace(
        a,
        hcpcs=hcpcs,
        dose=q(dose, dose_unit),
        hcpcs_unit=q(unit, unit_unit),
        container=Container(container, size, count) if container else None,
        wasted=q(wasted, waste_unit or dose_unit) if wasted is not None and container else None,
        ndc=ndc,
    )


def drug_lines(*admins, policy: PayerPolicy | None = None):
    result = evaluate(doc(*admins), policy=policy)
    return sorted((l.code, l.units, l.modifiers) for l in result.lines if l.code.startswith("J")), result


# (name, administration, expected drug lines)
ROWS = [
    # R46: units = dose / unit, rounded up; below one unit = 1.
    ("R46 diphenhydramine 25 mg of 'up to 50 mg' = 1", drug(25, 50), [("J9999", 1, ("JZ",))]),
    ("R46 50 mg of 'up to 50 mg' = 1", drug(50, 50), [("J9999", 1, ("JZ",))]),
    ("R46 51 mg of 'up to 50 mg' = 2", drug(51, 50), [("J9999", 2, ("JZ",))]),
    ("R46 infliximab 400 mg of 10 mg = 40", drug(400, 10, size=q(100), count=4), [("J9999", 40, ("JZ",))]),
    ("R46 401 mg of 10 mg rounds up to 41", drug(401, 10, wasted=0), [("J9999", 41, ("JZ",))]),
    ("R46 0.5 mg of 1 mg = 1", drug("0.5", 1), [("J9999", 1, ("JZ",))]),
    ("R46 mcg dose, mg unit: 500 mcg of 1 mg = 1", drug(500, 1, dose_unit="mcg", wasted=None, container=None), [("J9999", 1, ())]),
    ("R46 g dose, mg unit: 1 g of 250 mg = 4", drug(1, 250, dose_unit="g", container=None), [("J9999", 4, ())]),
    # R47: JW for the discard from single-dose containers, rounded down.
    ("R47 7 mg given of a 10 mg unit, 3 wasted: 1 unit, no JW (D8: JZ)", drug(7, 10, size=q(10), wasted=3), [("J9999", 1, ("JZ",))]),
    ("R47 184 mg given, 16 wasted of 10 mg: 19 + JW 1", drug(184, 10, size=q(100), count=2, wasted=16), [("J9999", 1, ("JW",)), ("J9999", 19, ())]),
    ("R47 discard rounded down: 25 wasted of 10 mg = JW 2", drug(175, 10, size=q(100), count=2, wasted=25), [("J9999", 2, ("JW",)), ("J9999", 18, ())]),
    ("R47 exactly one unit wasted = JW 1", drug(90, 10, size=q(100), wasted=10), [("J9999", 1, ("JW",)), ("J9999", 9, ())]),
    ("R47 tocilizumab 568 mg, 32 wasted of 1 mg", drug(568, 1, wasted=32, count=2), [("J9999", 32, ("JW",)), ("J9999", 568, ())]),
    ("R47 never JW on a multiple-dose vial", drug(7, 10, container="multi_dose", wasted=13), [("J9999", 1, ())]),
    # D8 (R47/R48, dispute 14): Noridian's 70 mg of a 100 mg unit = 1 unit with JZ.
    ("D8 70 mg of a 100 mg unit, 30 discarded: 1 unit JZ", drug(70, 100, size=q(100), wasted=30), [("J9999", 1, ("JZ",))]),
    ("D8 discard 9.99 of 10 mg: JZ, no JW", drug(90, 10, size=q(100), wasted="9.99"), [("J9999", 9, ("JZ",))]),
    # R48: JZ when nothing was discarded, single-dose only.
    ("R48 nothing discarded: JZ", drug(200, 10, size=q(100), count=2, wasted=0), [("J9999", 20, ("JZ",))]),
    ("R48 multi-dose: no JZ", drug(200, 10, container="multi_dose", wasted=0), [("J9999", 20, ())]),
    ("R48 no container charted: neither (warned)", drug(200, 10, container=None), [("J9999", 20, ())]),
    ("R48 waste not charted: neither (warned)", drug(200, 10, wasted=None), [("J9999", 20, ())]),
]


@pytest.mark.parametrize(("a", "want"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_drug_units_jw_jz(a, want):
    assert drug_lines(a)[0] == sorted(want)


@pytest.mark.parametrize(
    ("amount", "per", "units"),
    [("25", "50", 1), ("50", "50", 1), ("50.001", "50", 2), ("7", "10", 1), ("184", "10", 19), ("0", "10", 0), ("0.01", "1000", 1)],
)
def test_billing_units_round_up(amount, per, units):
    assert billing_units(Decimal(amount), Decimal(per)) == units


@pytest.mark.parametrize(("amount", "per", "units"), [("3", "10", 0), ("9.99", "10", 0), ("10", "10", 1), ("16", "10", 1), ("25", "10", 2), ("32", "1", 32), ("0", "1", 0)])
def test_discard_units_round_down(amount, per, units):
    assert discard_units(Decimal(amount), Decimal(per)) == units


def test_explanation_shows_the_unit_arithmetic():
    (_, result) = drug_lines(drug(184, 10, size=q(100), count=2, wasted=16))
    given, jw = sorted((l for l in result.lines if l.code == "J9999"), key=lambda l: l.modifiers)
    assert "184 mg ÷ 10 mg per unit = 18.4 → 19 unit(s) (rounded up, R46)" in given.explanation
    assert "16 mg discarded" in jw.explanation and "rounded down, R47" in jw.explanation
    (_, result) = drug_lines(drug(25, 50))
    assert "a dose below one unit is 1 unit" in result.lines[-1].explanation


# R49: NDC as printed -> 11-digit 5-4-2.
NDC_ROWS = [
    ("0002-7597-01", "00002759701"),  # 4-4-2: pad the labeler
    ("50242-040-62", "50242004062"),  # 5-3-2: pad the product
    ("60575-4112-1", "60575411201"),  # 5-4-1: pad the package
    ("57894-030-01", "57894003001"),  # infliximab (pc-03)
    ("57894-0030-01", "57894003001"),  # already 5-4-2
    ("57894003001", "57894003001"),  # 11 digits, no hyphens
    (" 0002-7597-01 ", "00002759701"),
]


@pytest.mark.parametrize(("printed", "eleven"), NDC_ROWS)
def test_ndc_to_11_digits(printed, eleven):
    assert ndc_11(printed) == eleven
    assert parse_ndc(printed) == (eleven, None)


@pytest.mark.parametrize(
    ("printed", "why"),
    [
        ("0002759701", "10 digits without hyphens"),
        ("123456-789-01", "6-digit labeler"),
        ("123456-7890-1", "6-digit labeler"),
        ("0002-7597", "three groups"),
        ("00a2-7597-01", "three groups"),
        ("002-7597-01", "shape 3-4-2"),
        ("12345-6789-012", "shape 5-4-3"),
        ("", "not a 10-digit"),
        ("NDC 0002-7597-01", "three groups"),
    ],
)
def test_malformed_ndc_is_refused_with_a_reason(printed, why):
    eleven, reason = parse_ndc(printed)
    assert eleven is None and why in reason


def test_drug_line_carries_n4_ndc_quantity_and_unit():
    (_, result) = drug_lines(drug(184, 10, size=q(100), count=2, wasted=16, ndc="57894-030-01"))
    given, jw = sorted((l for l in result.lines if l.code == "J9999"), key=lambda l: l.modifiers)
    assert (given.ndc, given.ndc_qualifier, given.ndc_quantity, given.ndc_unit) == ("57894003001", "N4", Decimal("1.84"), "UN")
    assert (jw.ndc, jw.ndc_qualifier, jw.ndc_quantity, jw.ndc_unit) == ("57894003001", "N4", Decimal("0.16"), "UN")
    assert "NDC 57894-030-01 → N4 57894003001" in given.explanation
    assert "R49" in given.rules


@pytest.mark.parametrize(
    ("amount", "containers", "want"),
    [
        (q(10, "mL"), [], (Decimal(10), "ML")),  # liquid: millilitres
        (q("2.5", "mL"), [Container("single_dose", q(10, "mL"), 1)], (Decimal("2.5"), "ML")),
        (q(5000, "units"), [], (Decimal(5000), "F2")),  # international units
        (q(20, "g"), [], (Decimal(20), "GR")),  # grams
        (q(20, "g"), [Container("single_dose", q(10, "g"), 2)], (Decimal(2), "UN")),  # two 10 g vials
        (q(250, "mg"), [Container("single_dose", q(250), 1)], (Decimal(1), "UN")),  # one vial
        (q(184), [Container("single_dose", q(100), 2)], (Decimal("1.84"), "UN")),
        (q(60), [], (Decimal(60), "ME")),  # milligrams, no package size
        (q(500, "mcg"), [], (Decimal("0.5"), "ME")),
        (q(400), [Container("single_dose", q(20, "mL"), 1)], None),  # mg dose, mL package: needs a concentration
        (q(2, "mL"), [Container("single_dose", q(4), 1)], None),
    ],
)
def test_ndc_quantity_in_the_package_unit(amount, containers, want):
    assert ndc_quantity(amount, containers) == want


def test_ndc_on_an_ml_dose():
    a = drug(8, 1, dose_unit="mL", unit_unit="mL", size=q(10, "mL"), wasted=2, ndc="0002-7597-01")
    (_, result) = drug_lines(a)
    line = next(l for l in result.lines if l.code == "J9999")
    assert (line.units, line.modifiers, line.ndc, line.ndc_quantity, line.ndc_unit) == (8, (), "00002759701", Decimal(8), "ML")
    jw = next(l for l in result.lines if l.modifiers == ("JW",))
    assert (jw.units, jw.ndc_quantity, jw.ndc_unit) == (2, Decimal(2), "ML")


def test_malformed_ndc_blocks_only_its_drug_line():
    a = drug(184, 10, size=q(100), count=2, wasted=16, ndc="57894-30-01")
    b = drug(4, 1, id="2", hcpcs="J2405")
    lines, result = drug_lines(a, b)
    assert [l[0] for l in lines] == ["J2405"]  # the other drug line is still coded
    assert any(l.code == "96374" for l in result.lines)  # and the administration lines
    (warning,) = [w for w in result.warnings if w.kind == "ndc_malformed"]
    assert warning.blocking and "57894-30-01" in warning.message and warning.administrations == ("1",)


def test_dose_in_ml_against_a_mg_unit_blocks_the_drug_line():
    a = drug(20, 1, dose_unit="mL")
    lines, result = drug_lines(a)
    assert lines == []
    (warning,) = [w for w in result.warnings if w.kind == "dose_unit_mismatch"]
    assert warning.blocking and "mL" in warning.message and "1 mg" in warning.message
    assert any(l.code == "96374" for l in result.lines)


def test_waste_in_another_unit_gives_no_jw_jz_and_blocks():
    a = drug(7, 10, size=q(10), wasted=1, waste_unit="mL")
    lines, result = drug_lines(a)
    assert lines == [("J9999", 1, ())]
    assert [w.blocking for w in result.warnings if w.kind == "waste_unit_mismatch"] == [True]


def test_several_ndcs_give_a_line_without_ndc_and_a_warning():
    a = drug(100, 10, size=q(100), ndc="57894-030-01")
    b = replace(drug(100, 10, size=q(100), id="2", ndc="0002-7597-01"), start=a.start, stop=a.stop)
    lines, result = drug_lines(a, b)
    assert lines == [("J9999", 20, ("JZ",))]
    assert all(l.ndc is None for l in result.lines)
    assert "ndc_several" in [w.kind for w in result.warnings]


def test_same_ndc_on_two_runs_is_one_ndc():
    a = drug(100, 10, size=q(100), ndc="57894-030-01")
    b = drug(100, 10, size=q(100), id="2", ndc="57894-0030-01")
    (_, result) = drug_lines(a, b)
    (line,) = [l for l in result.lines if l.code == "J9999"]
    assert (line.units, line.ndc, line.ndc_quantity, line.ndc_unit) == (20, "57894003001", Decimal(2), "UN")


def test_missing_billing_unit_and_missing_dose_block():
    a = replace(drug(100, 10), hcpcs_unit=None, hcpcs="J3490")
    lines, result = drug_lines(a)
    assert lines == [] and [w.blocking for w in result.warnings if w.kind == "billing_unit_unknown"] == [True]
    b = replace(drug(100, 10), dose=None)
    lines, result = drug_lines(b)
    assert lines == [] and [w.blocking for w in result.warnings if w.kind == "dose_missing"] == [True]


def test_policy_jz_settings():
    nothing = drug(200, 10, size=q(100), count=2, wasted=0)
    small = drug(70, 100, size=q(100), wasted=30)
    assert drug_lines(nothing, policy=PayerPolicy(report_jz=False))[0] == [("J9999", 20, ())]
    assert drug_lines(small, policy=PayerPolicy(jz_when_discard_below_unit=False))[0] == [("J9999", 1, ())]
    assert drug_lines(small, policy=PayerPolicy(report_jz=False))[0] == [("J9999", 1, ())]
    big = drug(184, 10, size=q(100), count=2, wasted=16)
    assert drug_lines(big, policy=PayerPolicy(report_jz=False))[0] == [("J9999", 1, ("JW",)), ("J9999", 19, ())]


def test_fluid_without_reportable_hydration_is_listed_not_billed():
    """D6: a 30-min saline bag is not hydration, so its J7050 goes to not_billed."""
    fluid = replace(adm("1", "hydration", stop=30), hcpcs="J7050", dose=q(250, "mL"))
    result = evaluate(doc(fluid))
    assert not [l for l in result.lines if l.code == "J7050"]
    assert any("D6" in n.rules and "J7050" in n.description for n in result.not_billed)
