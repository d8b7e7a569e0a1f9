"""Flag sweep speed as a ratio measured in one run (``make bench``; issue #5, RELIABILITY B3).

    sweep: ratio=R administrations=N encounters=N flags=N t_sweep=…s t_sql=…s rerun_ratio=R t_rerun=…s identical=yes

``t_sweep``: ``charting.services.sweep_flags`` end to end, from an empty flag
table, over the generated data (``manage.py generate_load_data``: see
charting/loadgen.py) — its advisory lock, one resolve UPDATE, one SELECT and
one bulk INSERT per check, the nurse's-words messages, the SweepRun row and
the audit row, in one transaction.  ``t_sql``: ONE SQL statement
``INSERT INTO bench_flag … SELECT <check 1> UNION ALL … <check 12>`` built
from the very same check querysets (``charting.checks.gaps_sql``), i.e. the database
doing the same work with no orchestration.  ``ratio = t_sweep / t_sql``, the
best of ``--rounds`` interleaved rounds.  Both must produce the same set of
(kind, encounter, administration, access site): ``EXCEPT`` both ways is
empty, or the bench fails.  ``t_rerun``: a second sweep with nothing new
(it must open and resolve nothing) — the sweep every five minutes in a
steady clinic; ``rerun_ratio = t_rerun / t_sql``.

The data live in their own database (``--database``, default
``chairside_bench`` on 127.0.0.1, created and migrated when missing) and
are generated once per ``--encounters``/``--seed`` (about 2.8
administrations per encounter; 360,000 encounters ≈ 1,000,000
administrations, a few minutes on 2 cores), then reused by later runs.

Usage: python benchmarks/sweep_bench.py [--encounters 360000] [--clinics 20] [--seed 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ensure_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    server = url.rsplit("/", 1)[0] + "/postgres"
    out = subprocess.run(["psql", server, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True, check=True)
    if out.stdout.strip() != "1":
        subprocess.run(["psql", server, "-qc", f'CREATE DATABASE "{name}"'], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chairside_bench"))
    parser.add_argument("--encounters", type=int, default=360_000)
    parser.add_argument("--clinics", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    _ensure_database(args.database)
    os.environ["DATABASE_URL"] = args.database
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "infusion_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from charting import checks, loadgen
    from charting.models import Administration, Clinic, DocumentationFlag, Encounter, SweepRun
    from charting.services import sweep_flags

    call_command("migrate", verbosity=0)
    prefix = f"Load clinic {args.seed}-"
    have = Encounter.objects.filter(clinic__name__startswith=prefix, patient__mrn__startswith=f"L{args.seed}-").count()
    if have != args.encounters:
        if have or Clinic.objects.filter(name__startswith="Load clinic ").exists():
            sys.exit(f"sweep bench: {args.database} holds other data ({have} load encounters with seed {args.seed}); drop that database or pass --database.")
        started = time.perf_counter()
        counts = loadgen.generate(clinics=args.clinics, encounters=args.encounters, seed=args.seed)
        print(f"# generated {counts.line()} in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    now = dt.datetime.now(dt.UTC)
    sweep = checks.Sweep(now=now, limits=checks.Limits.from_settings())
    select_sql, params = checks.gaps_sql(sweep)
    one_statement = f"INSERT INTO bench_flag (kind, encounter_id, administration_id, access_site_id) {select_sql}"

    def reset() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE charting_documentationflag, charting_sweeprun")
            cursor.execute("DROP TABLE IF EXISTS bench_flag")
            cursor.execute("CREATE TABLE bench_flag (kind varchar(40), encounter_id uuid, administration_id uuid, access_site_id bigint)")
            cursor.execute("VACUUM ANALYZE charting_documentationflag")

    def run_sweep() -> float:
        started = time.perf_counter()
        result = sweep_flags(now=now)
        elapsed = time.perf_counter() - started
        assert result["resolved"] == 0 and result["opened"] == result["open"], result
        return elapsed

    def run_sql() -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET jit = off")  # the sweep's setting too (charting/services.py _lock_sweeps)
            cursor.execute(one_statement, params)
        return time.perf_counter() - started

    best_sweep = best_sql = float("inf")
    for _ in range(args.rounds):
        reset()
        best_sql = min(best_sql, run_sql())
        best_sweep = min(best_sweep, run_sweep())
        with connection.cursor() as cursor:
            columns = "kind, encounter_id, administration_id, access_site_id"
            cursor.execute(
                f"SELECT (SELECT count(*) FROM (SELECT {columns} FROM charting_documentationflag WHERE resolved_at IS NULL EXCEPT ALL SELECT {columns} FROM bench_flag) a),"
                f"       (SELECT count(*) FROM (SELECT {columns} FROM bench_flag EXCEPT ALL SELECT {columns} FROM charting_documentationflag WHERE resolved_at IS NULL) b),"
                f"       (SELECT count(*) FROM bench_flag)"
            )
            only_sweep, only_sql, flags = cursor.fetchone()
        if only_sweep or only_sql:
            sys.exit(f"sweep bench: flag sets differ (only in the sweep: {only_sweep}, only in the one statement: {only_sql})")
    t_rerun = float("inf")
    for _ in range(args.rounds):  # the steady state: every flag already open, nothing new
        started = time.perf_counter()
        again = sweep_flags(now=now)
        t_rerun = min(t_rerun, time.perf_counter() - started)
        if again["opened"] or again["resolved"]:
            sys.exit(f"sweep bench: a second sweep changed flags: {again}")
    administrations = Administration.objects.count()
    encounters = Encounter.objects.count()
    SweepRun.objects.all().delete()
    DocumentationFlag.objects.all().delete()
    print(
        f"sweep: ratio={best_sweep / best_sql:.2f} administrations={administrations} encounters={encounters} flags={flags} "
        f"t_sweep={best_sweep:.2f}s t_sql={best_sql:.2f}s rerun_ratio={t_rerun / best_sql:.2f} t_rerun={t_rerun:.2f}s identical=yes rounds={args.rounds}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
