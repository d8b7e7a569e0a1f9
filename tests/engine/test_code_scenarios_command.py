"""``manage.py code_scenarios`` end to end, in a subprocess, with no database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"


def _run(*files: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY", "x" * 50)}
    # A database URL that cannot be reached proves the command never connects.
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none"
    return subprocess.run(
        [sys.executable, "manage.py", "code_scenarios", *map(str, files)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_one_json_object_per_scenario_per_line() -> None:
    files = sorted(SCENARIOS.glob("*.json"))
    run = _run(*files)
    assert run.returncode == 0, run.stderr
    outputs = [json.loads(line) for line in run.stdout.splitlines()]
    expected = [s["id"] for f in files for s in json.loads(f.read_text())]
    assert [o["id"] for o in outputs] == expected
    for out in outputs:
        assert {"lines", "not_billed", "warnings"} <= set(out)
        for line in out["lines"]:
            assert {"code", "units", "modifiers", "administrations", "rules", "explanation"} <= set(line)


def test_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    run = _run(tmp_path / "absent.json")
    assert run.returncode == 2
    assert "absent.json" in run.stderr and run.stdout == ""


def test_bad_field_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = json.loads((SCENARIOS / "authoritative.json").read_text())[:2]
    bad[1]["administrations"][0]["start"] = "2025-06-10T08:40:00"
    path = tmp_path / "naive.json"
    path.write_text(json.dumps(bad))
    run = _run(SCENARIOS / "practitioner.json", path)
    assert run.returncode == 2
    assert "naive.json" in run.stderr and "[1].administrations[0].start" in run.stderr
    assert run.stdout == ""  # nothing printed before every file parsed


def test_not_json_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_text("not json")
    run = _run(path)
    assert run.returncode == 2 and "garbage.json" in run.stderr
