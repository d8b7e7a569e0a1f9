"""Acceptance: every scenario in tests/scenarios/*.json, compared as the
scenarios README says -- a multiset of (code, units, sorted modifiers); with
scope "admin" drug lines (J/Q codes) are dropped from the output first.

Expectations are never edited here.  A scenario believed to contradict
coding-rules.md would be listed in XFAIL with the rule that contradicts it
(strict, so a fix is noticed); none is at present.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from coding.engine import EncounterDoc, evaluate, load_scenario_file, result_to_json

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "scenarios"

XFAIL: dict[str, str] = {}


def _all() -> list[tuple[dict[str, Any], EncounterDoc]]:
    items: list[tuple[dict[str, Any], EncounterDoc]] = []
    for path in sorted(SCENARIOS.glob("*.json")):
        items.extend(load_scenario_file(path))
    return items


ALL = _all()


def _key(line: dict[str, Any]) -> tuple[str, int, tuple[str, ...]]:
    return (str(line["code"]), int(line["units"]), tuple(sorted(line.get("modifiers") or [])))


def _params() -> list[Any]:
    out = []
    for raw, doc in ALL:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[raw["id"]])] if raw["id"] in XFAIL else []
        out.append(pytest.param(raw, doc, id=raw["id"], marks=marks))
    return out


@pytest.mark.parametrize(("raw", "doc"), _params())
def test_scenario(raw: dict[str, Any], doc: EncounterDoc) -> None:
    out = result_to_json(raw["id"], evaluate(doc))
    lines = out["lines"]
    if raw.get("scope", "admin") == "admin":
        lines = [l for l in lines if str(l["code"])[:1] not in ("J", "Q")]
    have = collections.Counter(_key(l) for l in lines)
    want = collections.Counter(_key(l) for l in raw["expected_lines"])
    assert have == want, f"missing {sorted((want - have).elements())} extra {sorted((have - want).elements())}"
    # Lines that carry their own date must match it (R14, D4).
    for expected in raw["expected_lines"]:
        if "date_of_service" in expected:
            assert any(
                _key(l) == _key(expected) and l["date_of_service"] == expected["date_of_service"] for l in out["lines"]
            ), f"{expected} not dated {expected['date_of_service']}"


def test_scenarios_present() -> None:
    assert len(ALL) >= 90
    assert len({raw["id"] for raw, _ in ALL}) == len(ALL)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/scenarios not beside the repository")
def test_copies_match_shared() -> None:
    """tests/scenarios must be byte-identical copies of shared/scenarios."""
    shared = {p.name: p.read_bytes() for p in SHARED.iterdir() if p.is_file()}
    ours = {p.name: p.read_bytes() for p in SCENARIOS.iterdir() if p.is_file()}
    assert sorted(shared) == sorted(ours)
    for name, content in shared.items():
        assert ours[name] == content, f"tests/scenarios/{name} differs from shared/scenarios/{name}"
