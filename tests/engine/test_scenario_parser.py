"""Bad scenario input gives ScenarioError naming the file and the dotted field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from coding.engine import ScenarioError, load_scenario_file, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
GOOD = json.loads((SCENARIOS / "authoritative.json").read_text())[0]


def _write(tmp_path: Path, scenarios: Any, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(scenarios) if not isinstance(scenarios, str) else scenarios)
    return path


def _broken(change) -> list[dict[str, Any]]:
    second = copy.deepcopy(GOOD)
    second["id"] = "second"
    change(second)
    return [copy.deepcopy(GOOD), second]


def _del(key: str):
    def change(s: dict[str, Any]) -> None:
        del s[key]

    return change


def _set_admin(index: int, key: str, value: Any):
    def change(s: dict[str, Any]) -> None:
        s["administrations"][index][key] = value

    return change


CASES = [
    ("missing setting", _del("setting"), "[1].setting"),
    ("bad setting", lambda s: s.update(setting="home"), "[1].setting"),
    ("bad date", lambda s: s.update(date_of_service="2025-13-40"), "[1].date_of_service"),
    ("bad timezone", lambda s: s.update(timezone="Mars/Olympus"), "[1].timezone"),
    ("missing administrations", _del("administrations"), "[1].administrations"),
    ("bad admin_class", _set_admin(1, "admin_class", "chemo"), "[1].administrations[1].admin_class"),
    ("bad route", _set_admin(0, "route", "oral"), "[1].administrations[0].route"),
    ("bad purpose", _set_admin(0, "purpose", "comfort"), "[1].administrations[0].purpose"),
    ("naive start", _set_admin(1, "start", "2025-06-10T08:45:00"), "[1].administrations[1].start"),
    ("invalid start", _set_admin(1, "start", "yesterday"), "[1].administrations[1].start"),
    ("missing start", lambda s: s["administrations"][2].pop("start"), "[1].administrations[2].start"),
    ("stop before start", _set_admin(2, "stop", "2025-06-10T08:00:00-04:00"), "[1].administrations[2].stop"),
    ("unknown site", _set_admin(0, "access_site", "Z"), "[1].administrations[0].access_site"),
    ("bad dose unit", _set_admin(0, "dose", {"value": 5, "unit": "tablets"}), "[1].administrations[0].dose.unit"),
    ("negative dose", _set_admin(0, "dose", {"value": -5, "unit": "mg"}), "[1].administrations[0].dose.value"),
    (
        "pause naive",
        _set_admin(2, "pauses", [["2025-06-10T10:00:00", "2025-06-10T10:10:00-04:00"]]),
        "[1].administrations[2].pauses[0][0]",
    ),
    ("bad concurrent_with", _set_admin(0, "concurrent_with", "99"), "[1].administrations[0].concurrent_with"),
    ("bad other service", lambda s: s["other_services"].append({"kind": "massage"}), "[1].other_services[2].kind"),
    ("bad site kind", lambda s: s["access_sites"][0].update(kind="arterial"), "[1].access_sites[0].kind"),
    ("duplicate admin id", _set_admin(1, "id", "1"), "[1].administrations[1].id"),
]


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in CASES], ids=[n for n, _, _ in CASES])
def test_bad_field_names_file_and_field(tmp_path: Path, change, field: str) -> None:
    path = _write(tmp_path, _broken(change))
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(path)
    assert info.value.file == str(path)
    assert info.value.field == field
    assert "bad.json" in str(info.value) and field in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(tmp_path / "nope.json")
    assert info.value.file.endswith("nope.json")


def test_not_json(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid JSON") as info:
        load_scenario_file(_write(tmp_path, "{not json"))
    assert info.value.file.endswith("bad.json")


def test_not_an_array(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="array"):
        load_scenario_file(_write(tmp_path, {"id": "x"}))


def test_duplicate_scenario_id(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario_file(_write(tmp_path, [GOOD, GOOD]))
    assert info.value.field == "[1].id"


def test_parse_scenario_alone_names_field() -> None:
    bad = copy.deepcopy(GOOD)
    bad["administrations"][0]["start"] = "2025-06-10T08:40:00"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(bad)
    assert info.value.field == "administrations[0].start"


def test_good_file_parses_to_aware_datetimes() -> None:
    for _raw, doc in load_scenario_file(SCENARIOS / "authoritative.json"):
        for a in doc.administrations:
            for moment in (a.start, a.stop):
                assert moment is None or moment.utcoffset() is not None
        assert isinstance(doc.administrations, tuple)


def _one_admin(**changes: Any) -> dict[str, Any]:
    s = copy.deepcopy(GOOD)
    s["administrations"] = [
        {
            "id": "1",
            "drug": "immune globulin",
            "hcpcs": None,
            "admin_class": "therapeutic",
            "route": "iv_infusion",
            "access_site": s["access_sites"][0]["id"],
            "dose": {"value": 10, "unit": "g"},
            "start": "2025-06-10T09:00:00-04:00",
            "stop": "2025-06-10T10:40:00-04:00",
            **changes,
        }
    ]
    s["other_services"] = []
    return s


def test_stop_without_start_is_a_documentation_gap_not_an_input_error() -> None:
    """README: start and stop are each ISO 8601 or null; R16/D10 code the gap."""
    from coding.engine import evaluate

    result = evaluate(parse_scenario(_one_admin(start=None)))
    assert [(l.code, l.units) for l in result.lines] == [("96374", 1)]
    assert [w.kind for w in result.warnings] == ["no_start_time"]


def test_pause_reaching_past_the_stop_is_clipped() -> None:
    """R17: a pause charted past the stop only removes the minutes inside the run."""
    from coding.engine import evaluate

    doc = parse_scenario(_one_admin(pauses=[["2025-06-10T10:30:00-04:00", "2025-06-10T10:50:00-04:00"]]))
    lines = evaluate(doc).lines
    assert [(l.code, l.units) for l in lines] == [("96365", 1)]  # 90 running minutes
    assert lines[0].minutes == 90


def test_zone_named_timestamps_rfc9557() -> None:
    """R24: an offset with a bracketed zone name keeps its offset (fall-back
    night 01:10 EDT to 01:50 EST = 100 min); "Z" is UTC."""
    from coding.engine import evaluate

    doc = parse_scenario(
        _one_admin(start="2025-11-02T01:10:00-04:00[America/New_York]", stop="2025-11-02T06:50:00Z")
    )
    lines = evaluate(doc).lines
    assert [(l.code, l.units) for l in lines] == [("96365", 1), ("96366", 1)]
    assert lines[0].minutes == 100
    wall = parse_scenario(_one_admin(start="2025-03-09T01:40:00[America/New_York]", stop="2025-03-09T03:20:00[America/New_York]"))
    assert evaluate(wall).lines[0].minutes == 40  # spring-forward night
