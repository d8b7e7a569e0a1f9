"""The engine is standard library only: importing it loads no Django (STYLE)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_imports_no_django() -> None:
    code = (
        "import sys, coding.engine, coding.engine.scenario;"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'));"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"django modules loaded: {run.stdout} {run.stderr}"


def test_engine_sources_do_not_mention_django() -> None:
    for path in (ROOT / "coding" / "engine").rglob("*.py"):
        text = path.read_text()
        assert "import django" not in text and "from django" not in text, path
