"""Explanations and replay: every line says which administrations and the
minute arithmetic, cites rules that have a title, and ``explain`` renders the
whole result (version, policy, lines, not billed, warnings)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from enginekit import adm, at, doc

from coding.engine import RULE_TITLES, RULESET_VERSION, PayerPolicy, evaluate, explain, load_scenario_file, result_to_json

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
DOCS = [d for p in sorted(SCENARIOS.glob("*.json")) for _raw, d in load_scenario_file(p)]
TIMED = {"96360", "96361", "96365", "96366", "96367", "96413", "96415", "96417"}


def test_rule_titles_cover_every_rule_and_default():
    assert set(RULE_TITLES) == {f"R{i}" for i in range(1, 52)} | {f"D{i}" for i in range(1, 14)}
    assert all(title and len(title) < 120 for title in RULE_TITLES.values())


@pytest.mark.parametrize("d", DOCS, ids=[d.id for d in DOCS])
def test_every_line_explains_itself(d):
    result = evaluate(d)
    cited = {r for l in result.lines for r in l.rules} | {r for n in result.not_billed for r in n.rules} | {r for w in result.warnings for r in w.rules}
    assert cited <= set(RULE_TITLES), cited - set(RULE_TITLES)
    for line in result.lines:
        assert line.rules and line.explanation
        for part in line.explanation.split(" | "):  # merged lines keep each part
            if line.administrations:
                assert re.search(r"\(adm [^)]+\)", part), part
            if line.code in TIMED:
                assert re.search(r"\d+ min", part), part
    for n in result.not_billed:
        assert n.rules and n.reason


def test_the_minute_arithmetic_of_the_issue_example():
    """125 min = 130 running − 5 paused; +96415 ×1 from 91 min."""
    a = replace(adm("1", "chemo_complex", stop=130, drug="infliximab"), pauses=((at(60), at(65)),))
    result = evaluate(doc(a))
    initial = next(l for l in result.lines if l.code == "96413")
    addon = next(l for l in result.lines if l.code == "96415")
    assert "125 min = 130 running − 5 paused (09:00–11:10)" in initial.explanation
    assert "+96415 ×1 from 91 min" in initial.explanation and "+96415 ×1 from 91 min" in addon.explanation
    assert initial.minutes == addon.minutes == 125 and addon.administrations == ("1",)


def test_summed_runs_and_removed_overlap_are_shown():
    two_bags = evaluate(doc(adm("1", stop=50, drug="ivig"), adm("2", start=90, stop=135, drug="ivig")))
    assert "95 min = 50 (adm 1, 09:00–09:50) + 45 (adm 2, 10:30–11:15)" in two_bags.lines[0].explanation
    hydration = evaluate(doc(adm("1", "chemo_complex", start=30, stop=90), adm("2", "hydration", start=0, stop=150)))
    line = next(l for l in hydration.lines if l.code == "96361")
    assert "90 min = 150 running − 60 during other administrations" in line.explanation


def test_explain_renders_the_whole_result():
    result = evaluate(doc(adm("1", "chemo_complex", stop=130), adm("2", "hydration", start=140, stop=150), adm("3", stop=None, drug="ivig")))
    text = explain(result)
    assert text.splitlines()[0] == f"Rule set {RULESET_VERSION}, payer policy medicare"
    assert "96413 ×1 on 2025-06-10 (adm 1), 130 min [" in text
    assert "Not billed:" in text and "30 minutes or less is not reportable" in text
    assert "! BLOCKING no_stop_time (adm 3)" in text


def test_replay_from_stored_json_gives_the_same_result():
    """A suggestion stores the input, the version and the policy
    (``result_to_json``'s "policy"); replaying them gives the same result."""
    d = DOCS[0]
    first = evaluate(d)
    stored = result_to_json(d.id, first)
    assert stored["ruleset_version"] == RULESET_VERSION
    replayed = evaluate(d, policy=PayerPolicy.from_dict(stored["policy"]))
    assert replayed == first
