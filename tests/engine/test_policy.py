"""Payer policies (coding-rules.md "Engine defaults" and "Points where sources
disagree").  Every ``contested`` scenario follows MEDICARE; for each one whose
``notes`` name an alternative, a test builds that alternative policy and shows
the answer changing as the notes say.  ``CONTESTED`` lists every contested
scenario with the test that covers it, or why its alternative is not a payer
policy; a test keeps the list complete, so a new contested scenario cannot slip
through unread.
"""

from __future__ import annotations

import collections
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from enginekit import adm, doc

from coding.engine import (
    INDEPENDENCE_BLUE_CROSS,
    MEDICARE,
    EncounterDoc,
    PayerPolicy,
    PolicyError,
    evaluate,
    load_scenario_file,
)
from coding.engine.policy import POLICIES, policy_for

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
RAW: dict[str, dict] = {}
DOCS: dict[str, EncounterDoc] = {}
for _path in sorted(SCENARIOS.glob("*.json")):
    for _raw, _doc in load_scenario_file(_path):
        RAW[_doc.id], DOCS[_doc.id] = _raw, _doc

Key = tuple[str, int, tuple[str, ...]]


def lines(sid: str, policy: PayerPolicy | None = None, *, drugs: bool = False) -> collections.Counter[Key]:
    """Lines of scenario ``sid`` under ``policy`` as a multiset of (code, units,
    sorted modifiers); drug lines only when ``drugs``."""
    result = evaluate(DOCS[sid], policy=policy)
    return collections.Counter(
        (l.code, l.units, tuple(sorted(l.modifiers))) for l in result.lines if drugs or l.code[:1] not in ("J", "Q")
    )


def expected(sid: str, *, drugs: bool = False) -> collections.Counter[Key]:
    return collections.Counter(
        (l["code"], l["units"], tuple(sorted(l["modifiers"]))) for l in RAW[sid]["expected_lines"] if drugs or l["code"][:1] not in ("J", "Q")
    )


def L(*items: tuple) -> collections.Counter[Key]:
    return collections.Counter((i[0], i[1], tuple(sorted(i[2])) if len(i) > 2 else ()) for i in items)


def dated(sid: str, policy: PayerPolicy) -> set[tuple[str, int, str]]:
    return {(l.code, l.units, l.date_of_service.isoformat()) for l in evaluate(DOCS[sid], policy=policy).lines if l.code[:1] not in ("J", "Q")}


# Each alternative: (scenario id, policy, the lines the notes' alternative gives).
ALWAYS_59 = PayerPolicy(name="select_health_like", secondary_hydration_59="always")
NEVER_59 = PayerPolicy(name="no_59_on_hydration", secondary_hydration_59="never")
XU = PayerPolicy(name="xu", distinct_modifier="XU")
XS = PayerPolicy(name="xs", distinct_modifier="XS")
XE = PayerPolicy(name="xe", separate_encounter_modifier="XE")
NO_SEGMENT_SUMS = PayerPolicy(name="no_segment_sums", combine_hydration_segments=False)
HCPRO_RUNS = PayerPolicy(name="hcpro", same_drug_runs="additional_hour")
CPT_2007_RUNS = PayerPolicy(name="cpt_assistant_2007", same_drug_runs="sequential")
SERVICE_DAY = PayerPolicy(name="transmittal_1702", line_dates="service_day")
AAPC_BAG = PayerPolicy(name="aapc_bag", mixed_bag="sequential")
MEDLEARN_BAG = PayerPolicy(name="medlearn_bag", mixed_bag="concurrent")
PER_SYRINGE = PayerPolicy(name="cpt_assistant_2010", split_dose_injection="per_syringe")
ONE_LINE = PayerPolicy(name="units_on_one_line", injections_on_one_line=True)
IKS_FLUSH = PayerPolicy(name="iks", port_flush_with_em=True)
LCD_500 = PayerPolicy(name="trailblazer_lcd", hydration_volume_floor_ml=500)
NO_JZ_BELOW_UNIT = PayerPolicy(name="amc_discard", jz_when_discard_below_unit=False)
NO_JZ = PayerPolicy(name="no_jz", report_jz=False)


def therapeutic(*codes: str) -> PayerPolicy:
    return PayerPolicy(name="commercial", family_overrides=tuple((c, "therapeutic") for c in codes))


def complex_(*codes: str) -> PayerPolicy:
    return PayerPolicy(name="complex", family_overrides=tuple((c, "chemo_complex") for c in codes))


ALTERNATIVES: list[tuple[str, str, PayerPolicy, collections.Counter[Key]]] = [
    # D1 (R31, dispute 3): 59 on secondary hydration.
    ("office-hydration-first-chemo-still-initial", "never", NEVER_59, L(("96413", 1), ("96415", 1), ("96361", 1))),
    ("office-primary-reason-hydration-with-antiemetic-push", "always", ALWAYS_59, L(("96374", 1), ("96361", 1, ("59",)))),
    ("facility-push-outranks-hydration", "always", ALWAYS_59, L(("96374", 1), ("96361", 1, ("59",)))),
    ("office-separate-encounter-same-day", "always", ALWAYS_59, L(("96413", 1), ("96415", 1), ("96374", 1, ("59",)), ("96361", 1, ("59",)))),
    ("facility-push-then-hydration-crosses-midnight", "always", ALWAYS_59, L(("96374", 1), ("96361", 2, ("59",)))),
    ("facility-secondary-hydration-with-pushes", "always", ALWAYS_59, L(("96374", 1), ("96375", 1), ("96361", 3, ("59",)))),
    ("office-infusion-reaction-hydration-pushes-em", "never", NEVER_59, L(("99214", 1, ("25",)), ("96413", 1), ("96375", 2), ("96361", 1))),
    ("office-pre-post-hydration-cyclophosphamide", "never", NEVER_59, L(("96413", 1), ("96361", 2))),
    ("office-secondary-hydration-31min-billed", "never", NEVER_59, L(("96413", 1), ("96361", 1))),
    ("pc-07", "never", NEVER_59, L(("96413", 1), ("96415", 1), ("96361", 1))),
    ("pc-08", "always", ALWAYS_59, L(("96365", 1), ("96361", 2, ("59",)))),
    ("pc-13", "always", ALWAYS_59, L(("96365", 1), ("96367", 1), ("96361", 1, ("59",)))),
    ("pc-18", "always", ALWAYS_59, L(("96413", 1), ("96374", 1, ("59",)), ("96361", 1, ("59",)))),
    ("pc-19", "always", ALWAYS_59, L(("96374", 1), ("96361", 1, ("59",)))),
    ("pc-20", "never", NEVER_59, L(("96413", 1), ("96375", 1), ("96361", 1))),
    # D3 (R12/R13, dispute 2): the distinct-service modifier.
    ("office-two-sites-medically-required", "XU", XU, L(("96413", 1), ("96415", 1), ("96365", 1, ("XU",)))),
    ("office-two-sites-medically-required", "XS", XS, L(("96413", 1), ("96415", 1), ("96365", 1, ("XS",)))),
    ("facility-two-sites-medically-required", "XU", XU, L(("96413", 1), ("96365", 1, ("XU",)))),
    ("pc-17", "XU", XU, L(("96365", 1), ("96365", 1, ("XU",)))),
    ("pc-17", "XS", XS, L(("96365", 1), ("96365", 1, ("XS",)))),
    ("office-separate-encounter-same-day", "XE", XE, L(("96413", 1), ("96415", 1), ("96374", 1, ("XE",)), ("96361", 1))),
    ("pc-18", "XE (the practitioner's modifier)", XE, L(("96413", 1), ("96374", 1, ("XE",)), ("96361", 1))),
    # D5 (R17, R21): hydration segments split by another drug are not added.
    ("pc-07", "segments not added (payer takes 96361 off: 29 and 20 min)", NO_SEGMENT_SUMS, L(("96413", 1), ("96415", 1))),
    ("pc-08", "segments not added (45 and 60 min still give 2 units)", NO_SEGMENT_SUMS, L(("96365", 1), ("96361", 2))),
    ("pc-13", "segments not added (three 30-min pieces)", NO_SEGMENT_SUMS, L(("96365", 1), ("96367", 1))),
    # D2 (R17, dispute 8): separate runs of the same drug.
    ("facility-same-drug-two-bags-add-time", "HCPro: later run is 96366", HCPRO_RUNS, L(("96365", 1), ("96366", 1))),
    ("facility-same-drug-two-bags-add-time", "CPT Assistant 2007: later run is 96367", CPT_2007_RUNS, L(("96365", 1), ("96367", 1))),
    ("pc-23", "HCPro: the practitioner's 96365 + 96366", HCPRO_RUNS, L(("96365", 1), ("96366", 1))),
    ("pc-23", "CPT Assistant 2007", CPT_2007_RUNS, L(("96365", 1), ("96367", 1))),
    # (the two 96375 fall on two days, so two lines, as in the scenario's own expectation)
    ("pc-15", "HCPro: the practitioner's 96365 + 96375 x2 + 96376 + 96366 x2", HCPRO_RUNS, L(("96365", 1), ("96375", 1), ("96375", 1), ("96376", 1), ("96366", 2))),
    # R26 (dispute 1): drugs mixed in one bag.
    ("office-two-drugs-same-bag-one-infusion", "AAPC: 96367", AAPC_BAG, L(("96413", 1), ("96367", 1))),
    ("office-two-drugs-same-bag-one-infusion", "MedLearn: concurrent", MEDLEARN_BAG, L(("96413", 1), ("96368", 1))),
    ("pc-39", "AAPC: 96367", AAPC_BAG, L(("96365", 1), ("96367", 1))),
    ("pc-39", "MedLearn: 96368", MEDLEARN_BAG, L(("96365", 1), ("96368", 1))),
    # D9 (R36-R38, dispute 7): the administration family of a biologic.
    ("office-sc-certolizumab-classification-dispute", "NGS A58620 / IBX: 96372", therapeutic("J0717"), L(("96372", 1))),
    ("office-abatacept-iv-complex-vs-therapeutic", "commercial: 96365", therapeutic("J0129"), L(("96365", 1))),
    ("pc-05", "commercial: 96365", therapeutic("J3262"), L(("96365", 1))),
    ("pc-27", "commercial: 96365", therapeutic("J0129"), L(("96365", 1))),
    ("pc-36", "commercial: 96365", therapeutic("J3262"), L(("96365", 1))),
    ("pc-30", "the '-mab' auditor: 96401", complex_("J0897"), L(("96401", 1))),
    ("pc-31", "Medicare/ACR reading of certolizumab: 96401", complex_("J0717"), L(("96401", 1))),
    # D11 (R9, dispute 10) and the one-line format.
    ("office-split-dose-same-drug-two-syringes", "CPT Assistant 2010: one per syringe with 59", PER_SYRINGE, L(("96372", 1), ("96372", 1, ("59",)))),
    ("office-two-injections-different-drugs", "96372 x2 on one line", ONE_LINE, L(("96372", 2))),
    # R42 (dispute 11), R33 (dispute 5).
    ("office-port-flush-with-em-visit", "IKS: E/M-25 plus 96523", IKS_FLUSH, L(("99213", 1, ("25",)), ("96523", 1))),
    ("office-hydration-250ml-volume-dispute", "LCD: 500 mL or less not necessary", LCD_500, L()),
]


@pytest.mark.parametrize(("sid", "policy", "want"), [(a[0], a[2], a[3]) for a in ALTERNATIVES], ids=[f"{a[0]}: {a[1]}" for a in ALTERNATIVES])
def test_alternative_policy_changes_the_answer_as_the_notes_say(sid, policy, want):
    assert RAW[sid]["contested"]
    assert lines(sid) == expected(sid), "the default must still give the expected lines"
    assert lines(sid, policy) == want


# Drug-line alternatives compare every line.
DRUG_ALTERNATIVES = [
    # D8 (dispute 14): americanmedicalcoding.com -- neither JW nor JZ below one unit.
    ("pc-28", NO_JZ_BELOW_UNIT, L(("96413", 1), ("96415", 2), ("96375", 2), ("J9312", 100, ("JZ",)), ("J2930", 1), ("J1200", 1, ("JZ",)))),
    ("pc-35", NO_JZ_BELOW_UNIT, L(("96374", 1), ("J2930", 1))),
    # R48: a payer/setting that does not take JZ (e.g. packaged OPPS drugs).
    ("pc-27", NO_JZ, L(("96413", 1), ("J0129", 75))),
    ("pc-02", NO_JZ, L(("99213", 1, ("25",)), ("96413", 1), ("96415", 1), ("J1745", 20))),
    # JW is not a JZ matter: a JW line stays whatever the JZ settings.
    ("pc-36", NO_JZ, L(("96413", 1), ("J3262", 568), ("J3262", 32, ("JW",)))),
]


@pytest.mark.parametrize(("sid", "policy", "want"), DRUG_ALTERNATIVES, ids=[f"{a[0]}: {a[1].name}" for a in DRUG_ALTERNATIVES])
def test_drug_line_alternatives(sid, policy, want):
    assert lines(sid, drugs=True) == expected(sid, drugs=True)
    assert lines(sid, policy, drugs=True) == want


# D4 (R14, dispute 9): Transmittal 1702 dates each unit on the day it was given.
def test_midnight_hydration_dated_per_service_day():
    sid = "facility-hydration-crosses-midnight"  # 23:45-01:20: only 15 min on day 1
    assert dated(sid, MEDICARE) == {("96360", 1, "2025-05-13"), ("96361", 1, "2025-05-13")}
    assert dated(sid, SERVICE_DAY) == {("96360", 1, "2025-05-13"), ("96361", 1, "2025-05-14")}


def test_push_then_midnight_hydration_split_by_calendar_day():
    """Revenue Cycle Advisor (Transmittal 1702): the two 96361 units fall on two days."""
    sid = "facility-push-then-hydration-crosses-midnight"
    assert dated(sid, MEDICARE) == {("96374", 1, "2025-05-05"), ("96361", 2, "2025-05-05")}
    assert dated(sid, SERVICE_DAY) == {("96374", 1, "2025-05-05"), ("96361", 1, "2025-05-05"), ("96361", 1, "2025-05-06")}


def test_pc22_later_hours_on_the_next_day():
    assert dated("pc-22", SERVICE_DAY) == {("96360", 1, "2026-02-10"), ("96361", 2, "2026-02-11")}
    assert lines("pc-22", SERVICE_DAY) == expected("pc-22")  # codes and units agree; only dates differ


def test_pc31_independence_blue_cross_is_a_known_policy():
    """R37: pc-31's payer has a built-in policy (no fallback warning); its
    certolizumab override gives 96372 even when the chart says chemo/complex."""
    result = evaluate(DOCS["pc-31"])
    assert result.policy is INDEPENDENCE_BLUE_CROSS
    assert "payer_policy" not in [w.kind for w in result.warnings]
    charted_complex = replace(DOCS["pc-31"], administrations=tuple(replace(a, admin_class="chemo_complex") for a in DOCS["pc-31"].administrations))
    lines_ = evaluate(charted_complex).lines
    assert [(l.code, l.units) for l in lines_ if l.code == "96372"] == [("96372", 1)]
    line = next(l for l in lines_ if l.code == "96372")
    assert {"D9", "R37"} <= set(line.rules) and "independence_blue_cross" in line.explanation
    assert [l.code for l in evaluate(charted_complex, policy=MEDICARE).lines if l.code.startswith("96")] == ["96401"]


# Contested scenarios whose notes name no payer alternative that changes the
# lines, or whose alternative rests on a fact the chart does not hold.  Each
# reason was written after reading the scenario's notes.
NO_POLICY_ALTERNATIVE = {
    "office-chemo-pump-initiation-96416": "G0498 depends on who supplied the pump (a charted fact, not a payer choice); the engine warns pump_supplier",
    "office-hydration-no-stop-time": "a run time from rate and volume needs rate/volume fields the chart does not hold (D10 warning)",
    "pc-21": "as office-hydration-no-stop-time: stop time from rate/volume or the last check is a charting fix",
    "office-primary-reason-hydration-with-antiemetic-push": "the D7 alternative (96360 first) leaves the push without a CPT add-on path; D1 is tested",
    "pc-18": "D7 alternative has no code path (R8); D1 and D3 are tested",
    "pc-19": "D7 alternative has no code path (R8); D1 is tested",
    "office-pre-post-hydration-cyclophosphamide": "R32 (label-required hydration integral) needs a charted 'required by labeling' fact; D1 is tested",
    "pc-02": "SNF consolidated billing is coverage, not coding; 99213 without 25 is the source's error",
    "pc-03": "the alternatives are a different dose (200 mg -> J1745 x20 JZ) and pre-2017 JW rules, not payer choices",
    "pc-06": "the thread's '96375 per push' is wrong under R27/R28, not a payer choice",
    "pc-12": "no alternative named (the poster's view was rejected)",
    "pc-14": "the thread's 96365 + 96367 drops an hour R22 requires; not a payer choice",
    "pc-16": "CPT Assistant's >30 min condition is not met (30 min); no change",
    "pc-24": "the 99211 answer predates 96523; not a payer choice",
    "pc-26": "no alternative named",
    "pc-28": "D8 tested in test_drug_line_alternatives; the J2930 code revision is a catalog matter",
    "pc-35": "D8 tested in test_drug_line_alternatives",
    "facility-hydration-crosses-midnight": "D4 tested in test_midnight_hydration_dated_per_service_day",
    "facility-push-then-hydration-crosses-midnight": "D1 tested above; D4 in test_push_then_midnight_hydration_split_by_calendar_day",
    "pc-22": "D4 tested in test_pc22_later_hours_on_the_next_day",
    "pc-31": "D9 tested above and in test_pc31_independence_blue_cross_is_a_known_policy",
    "pc-15": "D2 tested above; lines are dated by each service's own start (D4 default)",
}


def test_every_contested_scenario_is_accounted_for():
    contested = {sid for sid, raw in RAW.items() if raw.get("contested")}
    covered = {a[0] for a in ALTERNATIVES} | {a[0] for a in DRUG_ALTERNATIVES} | set(NO_POLICY_ALTERNATIVE)
    assert contested - covered == set(), "read the notes of these contested scenarios and add their alternative"
    assert set(NO_POLICY_ALTERNATIVE) <= contested


def test_contested_scenarios_follow_medicare_defaults():
    for sid, raw in RAW.items():
        if raw.get("contested") and raw.get("payer", "medicare") == "medicare":
            assert lines(sid, MEDICARE, drugs=True) == lines(sid, drugs=True)


def test_no_stop_time_warning_blocks():
    result = evaluate(DOCS["office-hydration-no-stop-time"])
    assert [(w.kind, w.blocking) for w in result.warnings if w.kind == "no_stop_time"] == [("no_stop_time", True)]


def test_pump_supplier_warning():
    assert "pump_supplier" in [w.kind for w in evaluate(DOCS["office-chemo-pump-initiation-96416"]).warnings]


# --- the policy value itself -------------------------------------------------


def test_medicare_is_the_defaults():
    assert MEDICARE == PayerPolicy()
    assert policy_for("medicare") is MEDICARE
    assert policy_for("nobody") is None
    assert set(POLICIES) == {"medicare", "independence_blue_cross"}


def test_round_trip_through_json():
    policy = PayerPolicy(
        name="acme",
        distinct_modifier="XU",
        separate_encounter_modifier="XE",
        secondary_hydration_59="always",
        family_overrides=(("J0717", "therapeutic"), ("J0897", "therapeutic")),
        report_jz=False,
        jz_when_discard_below_unit=False,
        same_drug_runs="additional_hour",
        combine_hydration_segments=False,
        split_dose_injection="per_syringe",
        injection_repeat_modifier="XS",
        injections_on_one_line=True,
        mixed_bag="concurrent",
        port_flush_with_em=True,
        hydration_volume_floor_ml=500,
        line_dates="service_day",
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert data["family_overrides"] == [["J0717", "therapeutic"], ["J0897", "therapeutic"]]
    assert PayerPolicy.from_dict(data) == policy
    assert PayerPolicy.from_dict(MEDICARE.to_dict()) == MEDICARE
    assert PayerPolicy.from_dict({}) == MEDICARE
    assert PayerPolicy.from_dict({"family_overrides": [["j0717", "therapeutic"]]}).family_for("J0717") == "therapeutic"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"distinct_modifier": "58"}, "distinct_modifier"),
        ({"secondary_hydration_59": "sometimes"}, "secondary_hydration_59"),
        ({"report_jz": "yes"}, "report_jz"),
        ({"hydration_volume_floor_ml": -1}, "hydration_volume_floor_ml"),
        ({"hydration_volume_floor_ml": True}, "hydration_volume_floor_ml"),
        ({"family_overrides": [["J0717", "hydration"]]}, "family_overrides"),
        ({"family_overrides": [["J07", "therapeutic"]]}, "family_overrides"),
        ({"family_overrides": [["J0717", "therapeutic"], ["J0717", "chemo_complex"]]}, "family_overrides"),
        ({"family_overrides": "J0717"}, "family_overrides"),
        ({"distinct_modifer": "XU"}, "distinct_modifer"),
        ({"name": ""}, "name"),
        ({"line_dates": "each"}, "line_dates"),
    ],
)
def test_from_dict_refuses_bad_values(data, field):
    with pytest.raises(PolicyError) as exc:
        PayerPolicy.from_dict(data)
    assert exc.value.field == field


def test_explicit_policy_wins_over_the_payer_and_is_returned():
    doc = DOCS["office-two-sites-medically-required"]
    assert evaluate(doc).policy is MEDICARE
    assert evaluate(doc, policy=XU).policy is XU
    unknown = replace(doc, payer="acme")
    result = evaluate(unknown)
    assert result.policy is MEDICARE and "payer_policy" in [w.kind for w in result.warnings]
    assert "payer_policy" not in [w.kind for w in evaluate(unknown, policy=XU).warnings]


def test_hydration_is_never_overridden():
    """A family override never turns a drug into hydration or a fluid into a drug (R3)."""
    hacked = PayerPolicy.__new__(PayerPolicy)  # bypass validation to prove the engine's own guard
    for f in PayerPolicy.__slots__:
        object.__setattr__(hacked, f, getattr(MEDICARE, f))
    object.__setattr__(hacked, "family_overrides", (("J7030", "therapeutic"),))
    assert lines("pc-07", hacked) == lines("pc-07")  # pc-07: J7030 hydration beside cyclophosphamide


def test_to_dict_is_json_safe():
    assert all(isinstance(v, (str, bool, int, list, type(None))) for v in INDEPENDENCE_BLUE_CROSS.to_dict().values())
    assert json.loads(json.dumps(INDEPENDENCE_BLUE_CROSS.to_dict())) == INDEPENDENCE_BLUE_CROSS.to_dict()


def test_split_hydration_alternative_keeps_a_plain_pause_in_one_segment():
    """D5 alternative splits hydration only where another drug ran: a 20-min
    pause of the bag alone does not cut 25 + 25 min into two unreportable pieces."""
    fluid = adm("1", "hydration", start=0, stop=70)
    fluid = replace(fluid, pauses=((fluid.start + timedelta(minutes=25), fluid.start + timedelta(minutes=45)),))
    alone = doc(fluid)
    assert lines_of(alone, NO_SEGMENT_SUMS) == L(("96360", 1))
    with_drug = doc(fluid, adm("2", route="iv_push", start=30, stop=32))
    assert lines_of(with_drug, MEDICARE) == L(("96374", 1), ("96361", 1))  # 25 + 25 summed (D5)
    assert lines_of(with_drug, NO_SEGMENT_SUMS) == L(("96374", 1))  # two 25-min pieces split by the push


def lines_of(d: EncounterDoc, policy: PayerPolicy) -> collections.Counter[Key]:
    return collections.Counter((l.code, l.units, tuple(sorted(l.modifiers))) for l in evaluate(d, policy=policy).lines if l.code[:1] not in ("J", "Q"))
