"""Table-driven boundary tests: one row per rule boundary (coding-rules.md ids
in the row name).  Each row is a small document and the administration/E-M
lines it must produce, compared as a multiset of (code, units, modifiers)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from enginekit import adm, admin_lines, as_set, at, doc

from coding.engine import (
    MEDICARE,
    AccessSite,
    OtherService,
    PayerPolicy,
    Quantity,
    evaluate,
)
from coding.engine.timing import addon_hours, secondary_hydration_units

NY = ZoneInfo("America/New_York")
REQUIRED_B = (AccessSite("A", "peripheral_iv"), AccessSite("B", "peripheral_iv", separate_site_medically_required=True))

ROWS = [
    # R18: push vs infusion at 15/16 minutes.
    ("R18 therapeutic 15 min is a push", doc(adm("1", stop=15)), [("96374", 1)]),
    ("R18 therapeutic 16 min is an infusion", doc(adm("1", stop=16)), [("96365", 1)]),
    ("R18 chemo 15 min is a push", doc(adm("1", "chemo_complex", stop=15)), [("96409", 1)]),
    ("R18 chemo 16 min is an infusion", doc(adm("1", "chemo_complex", stop=16)), [("96413", 1)]),
    ("R18 push 20 min without nurse present is an infusion", doc(adm("1", route="iv_push", stop=20)), [("96365", 1)]),
    (
        "R18 push 20 min with nurse present stays a push",
        doc(adm("1", route="iv_push", stop=20, continuously_present=True)),
        [("96374", 1)],
    ),
    # R19/R20: hydration 30/31, 90/91, 150/151.
    ("R19 hydration 30 min not reportable", doc(adm("1", "hydration", stop=30)), []),
    ("R19 hydration 31 min", doc(adm("1", "hydration", stop=31)), [("96360", 1)]),
    ("R20 hydration 90 min", doc(adm("1", "hydration", stop=90)), [("96360", 1)]),
    ("R20 hydration 91 min", doc(adm("1", "hydration", stop=91)), [("96360", 1), ("96361", 1)]),
    ("R20 hydration 150 min", doc(adm("1", "hydration", stop=150)), [("96360", 1), ("96361", 1)]),
    ("R20 hydration 151 min", doc(adm("1", "hydration", stop=151)), [("96360", 1), ("96361", 2)]),
    ("R20 chemo 90 min", doc(adm("1", "chemo_complex", stop=90)), [("96413", 1)]),
    ("R20 chemo 91 min", doc(adm("1", "chemo_complex", stop=91)), [("96413", 1), ("96415", 1)]),
    ("R20 chemo 270 min", doc(adm("1", "chemo_complex", stop=270)), [("96413", 1), ("96415", 3)]),
    ("R20 chemo 271 min", doc(adm("1", "chemo_complex", stop=271)), [("96413", 1), ("96415", 4)]),
    ("R20 therapeutic 151 min", doc(adm("1", stop=151)), [("96365", 1), ("96366", 2)]),
    # R17: pauses subtracted; same drug summed (D2).
    (
        "R17 pause drops 120 to 90 min",
        doc(adm("1", "chemo_complex", stop=120, pauses=((at(60), at(90)),))),
        [("96413", 1)],
    ),
    (
        "R17 pause leaves 91 min",
        doc(adm("1", "chemo_complex", stop=121, pauses=((at(60), at(90)),))),
        [("96413", 1), ("96415", 1)],
    ),
    ("R17 open pause runs to stop", doc(adm("1", stop=120, pauses=((at(100), None),))), [("96365", 1), ("96366", 1)]),
    (
        "R17 D2 same drug two bags summed 50+45",
        doc(adm("1", stop=50, drug="ivig"), adm("2", start=90, stop=135, drug="ivig")),
        [("96365", 1), ("96366", 1)],
    ),
    (
        "R17 same drug 10+10 min summed is an infusion",
        doc(adm("1", stop=10, drug="x"), adm("2", start=30, stop=40, drug="x")),
        [("96365", 1)],
    ),
    (
        "R15 R11 same drug in two bags at once (two lines for rate) counts actual time once",
        doc(adm("1", stop=80, drug="ivig"), adm("2", stop=80, drug="ivig", site="B")),
        [("96365", 1)],
    ),
    (
        "R15 R17 same drug runs overlapping 60 min: union 0-120 is 120 min, not 90+90",
        doc(adm("1", "chemo_complex", stop=90, drug="x"), adm("2", "chemo_complex", start=30, stop=120, drug="x")),
        [("96413", 1), ("96415", 1)],
    ),
    (
        "R17 D2 resumed run charted without HCPCS is the same drug as the coded run",
        doc(
            replace(adm("1", "chemo_complex", stop=60, drug="infliximab"), hcpcs="J1745"),
            adm("2", "chemo_complex", start=80, stop=140, drug="infliximab"),
        ),
        [("96413", 1), ("96415", 1)],
    ),
    (
        "R28 repeat push charted without HCPCS is the same drug (facility 96376)",
        doc(
            replace(adm("1", route="iv_push", stop=0, drug="ondansetron"), hcpcs="J2405"),
            adm("2", route="iv_push", start=45, stop=45, drug="ondansetron"),
            setting="facility",
        ),
        [("96374", 1), ("96376", 1)],
    ),
    (
        "R27 same name, two HCPCS codes: two drugs; an uncoded run cannot be matched to either",
        doc(
            replace(adm("1", route="iv_push", stop=0, drug="x"), hcpcs="J0001"),
            replace(adm("2", route="iv_push", start=45, stop=45, drug="x"), hcpcs="J0002"),
            adm("3", route="iv_push", start=50, stop=50, drug="x"),
        ),
        [("96374", 1), ("96375", 2)],
    ),
    # R4/R6/R7/R8: one initial, hierarchy, order irrelevant.
    (
        "R7 push before chemo is 96375",
        doc(adm("1", route="iv_push", stop=2), adm("2", "chemo_complex", start=10, stop=70)),
        [("96413", 1), ("96375", 1)],
    ),
    (
        "R6 chemo push outranks therapeutic infusion",
        doc(adm("1", stop=60), adm("2", "chemo_complex", "iv_push", start=70, stop=72)),
        [("96409", 1), ("96367", 1)],
    ),
    (
        "R6 push outranks hydration",
        doc(adm("1", route="iv_push", stop=2), adm("2", "hydration", start=5, stop=65)),
        [("96374", 1), ("96361", 1)],
    ),
    (
        "R22 sequential chemo 120+120",
        doc(adm("1", "chemo_complex", stop=120), adm("2", "chemo_complex", start=125, stop=245)),
        [("96413", 1), ("96417", 1), ("96415", 2)],
    ),
    (
        "R22 sequential non-chemo 100 min after chemo",
        doc(adm("1", "chemo_complex", stop=60), adm("2", start=65, stop=165)),
        [("96413", 1), ("96367", 1), ("96366", 1)],
    ),
    (
        "R22 second chemo 15 min is 96411",
        doc(adm("1", "chemo_complex", stop=60), adm("2", "chemo_complex", start=65, stop=80)),
        [("96413", 1), ("96411", 1)],
    ),
    # R21: secondary hydration units and push minutes deducted.
    (
        "R21 secondary hydration 30 min not billed",
        doc(adm("1", "chemo_complex", stop=90), adm("2", "hydration", start=95, stop=125)),
        [("96413", 1)],
    ),
    (
        "R21 secondary hydration 31 min, 59 after chemo (D1)",
        doc(adm("1", "chemo_complex", stop=90), adm("2", "hydration", start=95, stop=126)),
        [("96413", 1), ("96361", 1, ("59",))],
    ),
    (
        "R21 push minutes deducted from hydration 33-2=31",
        doc(adm("1", "hydration", stop=33), adm("2", route="iv_push", start=10, stop=12)),
        [("96374", 1), ("96361", 1)],
    ),
    (
        "R21 push minutes deducted from hydration 32-2=30",
        doc(adm("1", "hydration", stop=32), adm("2", route="iv_push", start=10, stop=12)),
        [("96374", 1)],
    ),
    # R25/R30: concurrent infusion once per encounter; concurrent hydration never.
    (
        "R25 two concurrent drugs give one 96368",
        doc(
            adm("1", "chemo_complex", stop=180),
            adm("2", stop=30, concurrent_with="1"),
            adm("3", start=60, stop=90, concurrent_with="1"),
        ),
        [("96413", 1), ("96415", 2), ("96368", 1)],
    ),
    (
        "R30 hydration fully concurrent not billed",
        doc(adm("1", "chemo_complex", stop=180), adm("2", "hydration", stop=180, concurrent_with="1")),
        [("96413", 1), ("96415", 2)],
    ),
    (
        "R30 only non-overlapping hydration minutes count",
        doc(adm("1", stop=60, drug="x"), adm("2", "hydration", start=-60, stop=120)),
        [("96365", 1), ("96361", 2)],
    ),
    (
        "R25 overlap of 16+ min without concurrent_with is inferred concurrent",
        doc(adm("1", "chemo_complex", stop=120), adm("2", start=60, stop=90)),
        [("96413", 1), ("96415", 1), ("96368", 1)],
    ),
    (
        "R25 a few minutes of charting overlap stays sequential",
        doc(adm("1", "chemo_complex", stop=120), adm("2", start=115, stop=175)),
        [("96413", 1), ("96415", 1), ("96367", 1)],
    ),
    (
        "R25 marked concurrent ther beside ther: one initial, one 96368",
        doc(adm("1", stop=60), adm("2", start=10, stop=50, concurrent_with="1")),
        [("96365", 1), ("96368", 1)],
    ),
    # R23: chemo started on a pump, no stop time.
    (
        "R23 chemo pump start is 96416",
        doc(adm("1", "chemo_complex", stop=None), other=(OtherService("supplies", "portable infusion pump"),)),
        [("96416", 1)],
    ),
    (
        "R23 pump start beside a chemo push",
        doc(
            adm("1", "chemo_complex", "iv_push", stop=3),
            adm("2", "chemo_complex", start=5, stop=None, pump=True, drug="y"),
        ),
        [("96409", 1), ("96416", 1)],
    ),
    # R51: declotting.
    (
        "R51 alteplase into a port is 36593, not the initial",
        doc(
            adm("1", route="iv_push", stop=2, drug="alteplase", site="P"),
            adm("2", "chemo_complex", start=30, stop=150, site="P"),
            sites=(AccessSite("P", "port"),),
        ),
        [("36593", 1), ("96413", 1), ("96415", 1)],
    ),
    # R26: same bag is one infusion.
    (
        "R26 two drugs in one bag",
        doc(adm("1", "chemo_complex", stop=60, bag="b"), adm("2", stop=60, bag="b")),
        [("96413", 1)],
    ),
    # R29: kvo, flush, vehicle.
    ("R29 kvo not billed", doc(adm("1", "hydration", stop=120, purpose="kvo")), []),
    (
        "R29 vehicle not billed",
        doc(adm("1", stop=60, bag="b"), adm("2", "hydration", stop=60, bag="b", purpose="drug_vehicle")),
        [("96365", 1)],
    ),
    ("R31 hydration without necessity not billed", doc(adm("1", "hydration", stop=60, purpose="treatment")), []),
    # R10-R12: two sites.
    (
        "R10 required second site: second initial with 59",
        doc(adm("1", "chemo_complex", stop=60), adm("2", start=10, stop=100, site="B"), sites=REQUIRED_B),
        [("96413", 1), ("96365", 1, ("59",))],
    ),
    (
        "R11 convenience second site: sequential",
        doc(adm("1", "chemo_complex", stop=60), adm("2", start=70, stop=100, site="B")),
        [("96413", 1), ("96367", 1)],
    ),
    (
        "R11 restart at another site sums the same drug",
        doc(
            adm("1", "chemo_complex", stop=60, drug="x"),
            adm("2", "chemo_complex", start=80, stop=140, site="B", drug="x"),
        ),
        [("96413", 1), ("96415", 1)],
    ),
    # R13: second encounter the same day.
    (
        "R13 second encounter gets its own initial with 59",
        doc(adm("1", "chemo_complex", stop=60), adm("2", route="iv_push", start=300, stop=302, encounter="2")),
        [("96413", 1), ("96374", 1, ("59",))],
    ),
    (
        "R13 time gap alone is not a new encounter",
        doc(adm("1", "chemo_complex", stop=60), adm("2", route="iv_push", start=300, stop=302)),
        [("96413", 1), ("96375", 1)],
    ),
    # R27/R28: pushes.
    ("R27 lone push is the initial", doc(adm("1", route="iv_push", stop=2)), [("96374", 1)]),
    (
        "R28 facility repeat push 30 min: not reported",
        doc(
            adm("1", route="iv_push", stop=0, drug="x"),
            adm("2", route="iv_push", start=30, stop=30, drug="x"),
            setting="facility",
        ),
        [("96374", 1)],
    ),
    (
        "R28 facility repeat push 31 min: 96376",
        doc(
            adm("1", route="iv_push", stop=0, drug="x"),
            adm("2", route="iv_push", start=31, stop=31, drug="x"),
            setting="facility",
        ),
        [("96374", 1), ("96376", 1)],
    ),
    (
        "R28 office repeat push: no 96376",
        doc(adm("1", route="iv_push", stop=0, drug="x"), adm("2", route="iv_push", start=60, stop=60, drug="x")),
        [("96374", 1)],
    ),
    # R16/D10: no stop time.
    ("R16 D10 infusion without stop falls back to push", doc(adm("1", stop=None)), [("96374", 1)]),
    ("R16 D10 hydration without stop not reported", doc(adm("1", "hydration", stop=None)), []),
    # R9/R34/D11-D13: injections.
    ("R34 SC therapeutic", doc(adm("1", route="subcutaneous", stop=1)), [("96372", 1)]),
    ("R34 SC complex", doc(adm("1", "chemo_complex", "subcutaneous", stop=1)), [("96401", 1)]),
    (
        "D13 hormonal antineoplastic IM",
        doc(adm("1", "chemo_complex", "intramuscular", stop=1, drug="goserelin implant")),
        [("96402", 1)],
    ),
    (
        "D13 hormonal antineoplastic charted by brand name",
        doc(adm("1", "chemo_complex", "intramuscular", stop=1, drug="Lupron Depot 22.5 mg")),
        [("96402", 1)],
    ),
    (
        "D13 hormonal antineoplastic recognised by its HCPCS code",
        doc(replace(adm("1", "chemo_complex", "subcutaneous", stop=1, drug="LHRH implant"), hcpcs="J9202")),
        [("96402", 1)],
    ),
    ("R34 intra-arterial non-chemo", doc(adm("1", route="intra_arterial", stop=1)), [("96373", 1)]),
    (
        "D11 two drugs: second 96372 with 59",
        doc(adm("1", route="subcutaneous", stop=1), adm("2", route="intramuscular", start=3, stop=4)),
        [("96372", 1), ("96372", 1, ("59",))],
    ),
    (
        "D11 split dose is one injection",
        doc(
            adm("1", route="intramuscular", stop=1, drug="x"),
            adm("2", route="intramuscular", start=1, stop=2, drug="x"),
        ),
        [("96372", 1)],
    ),
    (
        "D12 injection beside an IV initial",
        doc(adm("1", "chemo_complex", stop=60), adm("2", route="subcutaneous", start=70, stop=71)),
        [("96413", 1), ("96372", 1)],
    ),
    # R39-R43: E/M and other services.
    (
        "R39 99211 never with administration",
        doc(adm("1", stop=60), other=(OtherService("nurse_visit_99211"),)),
        [("96365", 1)],
    ),
    ("R39 99211 alone is billed", doc(other=(OtherService("nurse_visit_99211"),)), [("99211", 1)]),
    (
        "R40 significant E/M gets 25",
        doc(
            adm("1", stop=60),
            other=(OtherService("em_visit", level="99213", significant_separately_identifiable=True),),
        ),
        [("96365", 1), ("99213", 1, ("25",))],
    ),
    (
        "R40 routine E/M not billed",
        doc(adm("1", stop=60), other=(OtherService("em_visit", level="99213"),)),
        [("96365", 1)],
    ),
    ("R42 port flush alone", doc(other=(OtherService("port_flush_only"),)), [("96523", 1)]),
    ("R42 port flush with infusion", doc(adm("1", stop=60), other=(OtherService("port_flush_only"),)), [("96365", 1)]),
    ("R41 supplies never billed", doc(other=(OtherService("supplies", "tubing"),)), []),
    (
        "R43 facility E/M not on the hospital claim",
        doc(
            adm("1", stop=60),
            setting="facility",
            other=(OtherService("em_visit", level="99213", significant_separately_identifiable=True),),
        ),
        [("96365", 1)],
    ),
]


@pytest.mark.parametrize(("document", "expected"), [(d, e) for _, d, e in ROWS], ids=[n for n, _, _ in ROWS])
def test_rule_table(document, expected):
    assert admin_lines(evaluate(document)) == as_set(*expected)


def _vanco(start: datetime, stop: datetime):
    return doc(adm("1", start=start, stop=stop), setting="facility", day=start.date())


DST_ROWS = [
    # R24: absolute time on DST nights.
    (
        "R24 fall-back 01:10 EDT to 01:50 EST = 100 min",
        _vanco(datetime(2025, 11, 2, 1, 10, tzinfo=NY), datetime(2025, 11, 2, 1, 50, fold=1, tzinfo=NY)),
        100,
        [("96365", 1), ("96366", 1)],
    ),
    (
        "R24 spring-forward 01:40 EST to 03:20 EDT = 40 min",
        _vanco(datetime(2025, 3, 9, 1, 40, tzinfo=NY), datetime(2025, 3, 9, 3, 20, tzinfo=NY)),
        40,
        [("96365", 1)],
    ),
]


@pytest.mark.parametrize(("document", "minutes", "expected"), [r[1:] for r in DST_ROWS], ids=[r[0] for r in DST_ROWS])
def test_dst_minutes(document, minutes, expected):
    result = evaluate(document)
    assert admin_lines(result) == as_set(*expected)
    assert result.lines[0].minutes == minutes


def test_marked_concurrent_pair_is_not_reported_as_inferred():
    """R25: a pair charted with concurrent_with never gets the "inferred" warning,
    even when the unmarked partner is examined first."""
    d = doc(
        adm("1", "chemo_complex", "iv_push", stop=2),
        adm("2", start=10, stop=70, drug="ivig"),
        adm("3", start=20, stop=60, drug="famotidine", concurrent_with="2"),
    )
    result = evaluate(d)
    assert "concurrent_inferred" not in [w.kind for w in result.warnings]


@pytest.mark.parametrize(
    ("minutes", "hours"), [(30, 0), (90, 0), (91, 1), (150, 1), (151, 2), (210, 2), (211, 3), (270, 3), (271, 4)]
)
def test_addon_hour_thresholds(minutes, hours):
    assert addon_hours(minutes) == hours


@pytest.mark.parametrize(
    ("minutes", "units"), [(30, 0), (31, 1), (60, 1), (90, 1), (91, 2), (102, 2), (151, 3), (176, 3)]
)
def test_secondary_hydration_units(minutes, units):
    assert secondary_hydration_units(minutes) == units


def test_midnight_keeps_one_initial_and_dates_lines_by_start():
    """R14, D4: one initial across midnight; a later-day service takes its date."""
    start = datetime(2025, 5, 5, 23, 30, tzinfo=NY)
    d = doc(
        adm("1", route="iv_push", start=start, stop=start, drug="x"),
        adm(
            "2", "hydration", start=datetime(2025, 5, 5, 23, 48, tzinfo=NY), stop=datetime(2025, 5, 6, 1, 30, tzinfo=NY)
        ),
        adm(
            "3",
            route="iv_push",
            start=datetime(2025, 5, 6, 2, 0, tzinfo=NY),
            stop=datetime(2025, 5, 6, 2, 0, tzinfo=NY),
            drug="y",
        ),
        setting="facility",
        day=date(2025, 5, 5),
    )
    result = evaluate(d)
    assert admin_lines(result) == as_set(("96374", 1), ("96361", 2), ("96375", 1))
    dates = {l.code: l.date_of_service for l in result.lines}
    assert dates["96374"] == date(2025, 5, 5)
    assert dates["96361"] == date(2025, 5, 5)  # continuous administration keeps its start date (D4)
    assert dates["96375"] == date(2025, 5, 6)  # separate service on the later day


def test_secondary_hydration_policy_alternatives():
    """D1: the 59 on secondary hydration is a payer setting."""
    d = doc(adm("1", route="iv_push", stop=2), adm("2", "hydration", start=5, stop=65))
    always = PayerPolicy(secondary_hydration_59="always")
    assert admin_lines(evaluate(d, policy=always)) == as_set(("96374", 1), ("96361", 1, ("59",)))
    chemo = doc(adm("1", "chemo_complex", stop=60), adm("2", "hydration", start=65, stop=125))
    never = PayerPolicy(secondary_hydration_59="never")
    assert admin_lines(evaluate(chemo, policy=never)) == as_set(("96413", 1), ("96361", 1))
    assert admin_lines(evaluate(chemo, policy=MEDICARE)) == as_set(("96413", 1), ("96361", 1, ("59",)))


def test_distinct_modifier_policy_alternative():
    """D3: XU instead of 59 on the second initial."""
    d = doc(adm("1", "chemo_complex", stop=60), adm("2", start=10, stop=100, site="B"), sites=REQUIRED_B)
    assert admin_lines(evaluate(d, policy=PayerPolicy(distinct_modifier="XU"))) == as_set(
        ("96413", 1), ("96365", 1, ("XU",))
    )


def test_every_line_cites_rules_and_explains():
    d = doc(
        adm("1", route="iv_push", stop=2),
        adm("2", "chemo_complex", start=10, stop=200),
        adm("3", "hydration", start=205, stop=265),
    )
    result = evaluate(d)
    assert result.lines
    for line in result.lines:
        assert line.rules and all(r[0] in "RD" for r in line.rules)
        assert line.explanation
        assert line.administrations
    assert result.ruleset_version


def test_no_stop_time_warns():
    result = evaluate(doc(adm("1", stop=None)))
    assert [w.kind for w in result.warnings] == ["no_stop_time"]


def test_drug_units_jw_jz():
    """R46-R48, D8: units rounded up; waste rounded down on JW; JZ when nothing (or under a unit) is wasted."""
    from coding.engine import Container

    def with_drug(dose: str, wasted: str, unit: str = "10"):
        a = adm(
            "1",
            "chemo_complex",
            stop=60,
        )
        a = type(a)(
            **{
                **{f: getattr(a, f) for f in a.__slots__},
                "hcpcs": "J1745",
                "dose": Quantity(Decimal(dose), "mg"),
                "hcpcs_unit": Quantity(Decimal(unit), "mg"),
                "wasted": Quantity(Decimal(wasted), "mg"),
                "container": Container("single_dose", Quantity(Decimal(100), "mg"), 2),
            }
        )
        return {(l.code, l.units, l.modifiers) for l in evaluate(doc(a)).lines if l.code.startswith("J")}

    assert with_drug("184", "16") == {("J1745", 19, ()), ("J1745", 1, ("JW",))}
    assert with_drug("200", "0") == {("J1745", 20, ("JZ",))}
    assert with_drug("195", "5") == {("J1745", 20, ("JZ",))}
