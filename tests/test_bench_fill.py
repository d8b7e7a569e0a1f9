"""The export bench writes its rows with raw SQL (benchmarks/export_bench.py,
FILL_SQL): every NOT NULL column without a default must be in its INSERTs, or
`make bench` stops at the export line when a migration adds one (it did, twice).
Read from the migrated test database, so a new column fails here, not in a bench run."""

import re
import sys
from pathlib import Path

import pytest
from django.db import connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from export_bench import FILL_SQL  # noqa: E402

INSERTS = dict(re.findall(r"INSERT INTO (\w+) \(([^)]*)\)", FILL_SQL))


@pytest.mark.django_db
@pytest.mark.parametrize("table", sorted(INSERTS))
def test_the_export_bench_fill_names_every_required_column(table):
    named = {c.strip() for c in INSERTS[table].split(",")}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s"
            " AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
            [table],
        )
        required = {row[0] for row in cursor.fetchall()}
    assert required, f"{table}: no such table"
    assert required - {"id"} <= named, f"{table}: FILL_SQL leaves out {sorted(required - {'id'} - named)}"
