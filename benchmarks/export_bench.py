"""Administrations export speed as a ratio measured in one run (``make bench``; RELIABILITY B2).

    export: ratio=R rows=500000 view_s=… psql_s=… peak_rss_mb=… identical=yes

``view_s``: fetch ``/reports/administrations/all.csv`` (the Django view:
session, admin role, audit and export-log rows, then PostgreSQL ``COPY … TO
STDOUT`` streamed in chunks) from gunicorn on 127.0.0.1 with curl, body to a
file. ``psql_s``: ``psql -c "\\copy (same SELECT) TO STDOUT WITH (FORMAT csv,
HEADER)"`` to a file. Both are the best of ``--rounds`` interleaved rounds;
``ratio = view_s / psql_s`` (target <= 1.5). The two files must be byte-identical,
else the bench exits 1. ``peak_rss_mb`` is the gunicorn worker's VmHWM after the
runs (/proc/<pid>/status).

The data lives in its own database (``--database``, created when missing and
migrated), filled once with 500,000 administrations by set-based INSERT …
SELECT generate_series (100,000 encounters of 5 drugs each, a pause on every
tenth); a later run reuses it when the count matches.

Usage: python benchmarks/export_bench.py [--rows 500000] [--rounds 3] [--database URL]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/chairside_bench_export"
SECRET = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DATE_FROM, DATE_TO = "2025-01-01", "2025-12-31"


def _psql_args(url: str) -> list[str]:
    u = urllib.parse.urlparse(url)
    return ["-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres", "-d", u.path.lstrip("/")]


def ensure_database(url: str, env: dict[str, str]) -> None:
    u = urllib.parse.urlparse(url)
    name = u.path.lstrip("/")
    admin = [*_psql_args(url)[:-2], "-d", "postgres"]
    exists = subprocess.run(["psql", "-X", "-At", *admin, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True, check=True).stdout.strip()
    if exists != "1":
        subprocess.run(["createdb", *_psql_args(url)[:-2], name], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


FILL_SQL = """
BEGIN;
-- Invented load, not charting: no pghistory rows, no signed-record guards (superuser; as generate_load_data).
SET LOCAL session_replication_role = replica;
TRUNCATE charting_pause, charting_vialuse, charting_timecorrection, charting_documentationflag, coding_suggestedline, coding_suggestion,
         charting_administration, charting_accesssite, charting_otherservice, charting_encounter, charting_patient RESTART IDENTITY CASCADE;
INSERT INTO charting_clinic (name, time_zone, site_check_minutes) VALUES ('Bench Infusion', 'America/New_York', 60) ON CONFLICT (name) DO NOTHING;
INSERT INTO charting_drug (name, brand, hcpcs, billing_unit_value, billing_unit_unit, admin_family, single_dose, usual_routes, example_ndc, verification_status, is_verified, notes,
    vial_sizes_mg, dosing_basis, vial_sizes_text, dose_tiers)
SELECT 'bench drug ' || g, '', 'J' || (1000 + g), 10, 'mg', CASE WHEN g %% 2 = 0 THEN 'chemo_complex' ELSE 'therapeutic' END, true, '', '', '', true, '',
    '[]', 'flat', '', '[]'
FROM generate_series(1, 5) g ON CONFLICT (name) DO NOTHING;
INSERT INTO charting_patient (id, clinic_id, mrn, given_name, family_name, birth_date)
SELECT gen_random_uuid(), c.id, 'BENCH-' || lpad(g::text, 6, '0'), 'Given' || g, 'Family' || g, date '1960-01-01' + g
FROM generate_series(1, %(patients)s) g, charting_clinic c WHERE c.name = 'Bench Infusion';
INSERT INTO charting_encounter (id, patient_id, clinic_id, setting, payer, date_of_service, status, created_at)
SELECT gen_random_uuid(), p.id, p.clinic_id, 'office', 'medicare', date '2025-01-01' + (n %% 365)::integer, 'draft', now()
FROM (SELECT id, clinic_id, row_number() OVER (ORDER BY mrn) AS k FROM charting_patient) p, generate_series(0, %(per_patient)s - 1) i,
     LATERAL (SELECT (p.k - 1) * %(per_patient)s + i AS n) x;
INSERT INTO charting_administration (id, encounter_id, label, drug_id, admin_class, route, dose_value, dose_unit, purpose, started_at, stopped_at,
    bag, continuously_present, visit, hcpcs_override, recorded_at, container_type, wasted_unit, hcpcs_unit_unit, entered_in_error_reason)
SELECT gen_random_uuid(), e.id, 'drug' || d.k, d.id, d.admin_family, 'iv_infusion', 100 * d.k, 'mg', 'treatment',
       (e.date_of_service + time '09:00')::timestamp AT TIME ZONE 'America/New_York' + (d.k * interval '100 minutes'),
       (e.date_of_service + time '09:00')::timestamp AT TIME ZONE 'America/New_York' + (d.k * interval '100 minutes') + ((15 + (abs(hashtext(e.id::text)) + d.k) %% 170) * interval '1 minute'),
       '', false, '1', '', now(), '', '', '', ''
FROM charting_encounter e, (SELECT id, admin_family, row_number() OVER (ORDER BY name) AS k FROM charting_drug WHERE name LIKE 'bench drug %%') d;
INSERT INTO charting_pause (administration_id, paused_at, resumed_at, reason, recorded_at)
SELECT id, started_at + interval '5 minutes', started_at + interval '12 minutes', 'bench', now()
FROM charting_administration WHERE stopped_at - started_at > interval '15 minutes' AND abs(hashtext(id::text)) %% 10 = 0;
COMMIT;
ANALYZE;
"""


def fill(url: str, rows: int) -> None:
    per_patient = 20
    encounters = rows // 5
    patients = max(1, encounters // per_patient)
    sql = FILL_SQL % {"patients": patients, "per_patient": per_patient}
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *_psql_args(url)], input=sql, text=True, check=True, stdout=subprocess.DEVNULL)


def count_rows(url: str) -> int:
    out = subprocess.run(["psql", "-X", "-At", *_psql_args(url), "-c", "SELECT count(*) FROM charting_administration"], capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def session_cookie() -> tuple[str, str, list[int]]:
    """An admin of the bench clinic with a logged-in session (made before
    timing, so no password hashing is measured): (cookie name, value, clinic ids)."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from charting.models import Clinic

    clinic = Clinic.objects.get(name="Bench Infusion")
    user, _ = User.objects.get_or_create(username="bench-admin")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    clinic.staff.add(user)
    client = Client()
    client.force_login(user)
    # Admins log in with a second factor (AC-9): the session carries a confirmed
    # device, as after the real two-step log-in.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value, [clinic.pk]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(
        [gunicorn, "infusion_site.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "300", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start in 60 s")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(c) for c in children]


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(cmd: list[str], out: Path) -> float:
    with open(out, "wb") as f:
        start = time.perf_counter()
        subprocess.run(cmd, stdout=f, check=True)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database", default=os.environ.get("BENCH_EXPORT_DATABASE_URL", DEFAULT_DB))
    args = ap.parse_args(argv)

    env = {
        **os.environ,
        "DATABASE_URL": args.database,
        "SECRET_KEY": SECRET,
        "DEBUG": "false",
        "CHAIRSIDE_DEMO": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        # Plain http on loopback: no TLS in front of this server.
        "SECURE_SSL_REDIRECT": "false",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13"),
        "DJANGO_SETTINGS_MODULE": "infusion_site.settings",
    }
    ensure_database(args.database, env)
    if count_rows(args.database) != args.rows:
        fill(args.database, args.rows)
    rows = count_rows(args.database)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")})
    cookie_name, cookie, clinics = session_cookie()

    from reports.exports import administrations_select
    from reports.reports import Filters

    class _Clinic:  # Filters needs only the primary keys here
        def __init__(self, pk):
            self.pk = pk

    import datetime as dt

    import psycopg

    filters = Filters(clinics=tuple(_Clinic(pk) for pk in clinics), date_from=dt.date.fromisoformat(DATE_FROM), date_to=dt.date.fromisoformat(DATE_TO))
    with psycopg.connect(args.database.replace("postgres://", "postgresql://", 1)) as conn:
        select = " ".join(administrations_select(filters).as_string(conn).split())
    psql_cmd = ["psql", "-X", "-q", *_psql_args(args.database), "-c", f"\\copy ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"]

    port = free_port()
    url = f"http://127.0.0.1:{port}/reports/administrations/all.csv?" + urllib.parse.urlencode({"date_from": DATE_FROM, "date_to": DATE_TO})
    curl_cmd = ["curl", "-sS", "--fail", "-H", f"Cookie: {cookie_name}={cookie}", url]
    server = start_server(env, port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            view_out, psql_out = Path(tmp) / "view.csv", Path(tmp) / "psql.csv"
            timed(curl_cmd, view_out)  # warm-up: imports, plans, caches
            timed(psql_cmd, psql_out)
            view_s = psql_s = float("inf")
            for _ in range(args.rounds):
                view_s = min(view_s, timed(curl_cmd, view_out))
                psql_s = min(psql_s, timed(psql_cmd, psql_out))
            identical = filecmp.cmp(view_out, psql_out, shallow=False)
            size_mb = view_out.stat().st_size / 1e6
        peak = max(vm_hwm_mb(pid) for pid in worker_pids(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"export: ratio={view_s / psql_s:.2f} rows={rows} view_s={view_s:.3f} psql_s={psql_s:.3f} peak_rss_mb={peak:.1f} size_mb={size_mb:.1f} identical={'yes' if identical else 'no'}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
