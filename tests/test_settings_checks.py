import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "CHAIRSIDE_DEMO", "DEBUG")}
    env.update(overrides)
    return env


def test_missing_secret_key_stops_start_up():
    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert run.returncode != 0
    assert "infusion_site.E001" in run.stderr


def test_code_scenarios_needs_no_secret_key():
    run = subprocess.run(
        [sys.executable, "manage.py", "code_scenarios", "tests/scenarios/practitioner.json"], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count('{"id"') == len(run.stdout.splitlines()) > 0
