"""Request latency under load as ratios measured in one run (``make bench``; issue #9, RELIABILITY B1/B4).

    startstop: ratio=R p95_ms=… bare_p95_ms=… requests=N errors=0 clients=50 ...
    chart: ratio=R p95_ms=… bare_p95_ms=… administrations=N queries_1=Q queries_100=Q ...

One server, the production configuration: gunicorn (``--workers 3 --threads
2``) on 127.0.0.1, ``DEBUG`` off, PostgreSQL, Redis as the broker. One load
generator: wrk (``-t2 -c50``; a Lua script prints the 95th percentile). For
each of ``--rounds`` rounds, in turn: the bare view (``GET /healthz/``: no
session, no database), ``POST …/start/`` of not-yet-started administrations,
``POST …/stop/`` of the ones just started (htmx requests with the nurse's
session and CSRF token, as the encounter page sends them), and
``GET /nurse/encounters/<id>/`` over encounters of 4 administrations each.
Every run is ``--seconds`` long after a warm-up; the figure is the median of
the rounds' p95; ``ratio = p95 / bare p95``. A run with any error (socket
error, timeout or a status other than 2xx/3xx) fails the bench: the ratio of a
failing server means nothing.

``rps`` / ``bare_rps`` / ``cost_ratio``: requests served per second by the
line's requests and by the bare view, and their quotient: what one request
costs the server against the bare view. At 50 closed-loop clients on two
cores both p95s are mostly queueing, so ``ratio`` tends to ``cost_ratio``,
and the bare view's p95 itself swings with gunicorn's tail (250 ms to 2.7 s
between two runs on an idle machine): read the two together.

``queries_1`` / ``queries_100``: the encounter page's query count with 1 and
with 100 administrations (the test client on the same database), which must
be equal.

The data: the sweep bench's database (``chairside_bench``, see
benchmarks/sweep_bench.py: a million administrations behind every query)
plus, per run, fresh draft encounters for today in a clinic of its own
("Bench HTTP clinic"), charted by its nurse, all in a scratch copy of that
database (``<name>_http``, made from it as a template and dropped at the end).

Usage: python benchmarks/http_bench.py [--seconds 15] [--rounds 3] [--clients 50]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LUA = r"""
-- Each wrk thread walks its own slice of the ids in ids_file (one per line).
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  ids = {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_IDS")) do
    if n % tonumber(os.getenv("BENCH_THREADS")) == tid then table.insert(ids, line) end
    n = n + 1
  end
  i = 0
  method = os.getenv("BENCH_METHOD")
  template = os.getenv("BENCH_PATH")
  headers = {}
  headers["Cookie"] = os.getenv("BENCH_COOKIE")
  headers["X-CSRFToken"] = os.getenv("BENCH_CSRF")
  headers["HX-Request"] = "true"
  headers["Referer"] = "http://127.0.0.1/"
end
function request()
  i = i + 1
  if i > #ids then i = 1 end
  local path = string.gsub(template, "{id}", ids[i] or "")
  return wrk.format(method, path, headers, nil)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH p95_us=%d requests=%d errors=%d\n", latency:percentile(95), summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chairside_bench"))
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    # The requests chart and start thousands of drugs: on a scratch copy of the
    # sweep bench's database (CREATE DATABASE ... TEMPLATE, dropped at the
    # end), so the next sweep bench measures the data it generated, not these
    # (a second make bench measured 13,303 flags instead of 7,629).
    source = urllib.parse.urlparse(args.database)
    scratch = source.path.lstrip("/") + "_http"
    server_args = ["-h", source.hostname or "127.0.0.1", "-p", str(source.port or 5432), "-U", source.username or "postgres", "-d", "postgres"]

    def psql(sql: str) -> None:
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *server_args, "-c", sql], check=True)

    psql(f'DROP DATABASE IF EXISTS "{scratch}"')
    psql(f'CREATE DATABASE "{scratch}" TEMPLATE "{source.path.lstrip("/")}"')
    args.database = urllib.parse.urlunparse(source._replace(path=f"/{scratch}"))
    try:
        return _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        psql(f'DROP DATABASE IF EXISTS "{scratch}"')


def _run(args) -> int:
    env = {
        **os.environ,
        "DATABASE_URL": args.database,
        "CELERY_BROKER_URL": args.broker,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        # Plain http on loopback: no TLS in front of this server.
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_SSL_REDIRECT": "0",
        "DJANGO_SETTINGS_MODULE": "infusion_site.settings",
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS",
                                            "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from charting.models import AccessSite, Administration, Clinic, Drug, Encounter, Patient

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    if not Clinic.objects.filter(name__startswith="Load clinic ").exists():
        sys.exit("http bench: no load data; run benchmarks/sweep_bench.py first (make bench does).")
    # Its own clinic and nurse: the load clinics stay as generated (the sweep bench counts them).
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    clinic, _ = Clinic.objects.get_or_create(name="Bench HTTP clinic", defaults={"time_zone": "America/New_York"})
    nurse, _ = get_user_model().objects.get_or_create(username="bench-http-nurse", defaults={"first_name": "Bench", "last_name": "Nurse"})
    nurse.groups.add(Group.objects.get_or_create(name="nurse")[0])
    clinic.staff.add(nurse)
    today = timezone.localdate(timezone=clinic.tz)
    drugs = list(Drug.objects.filter(name__in=("infliximab", "diphenhydramine HCl", "methylprednisolone sodium succinate", "rituximab")))

    def chart(n_encounters: int, per_encounter: int, tag: str) -> tuple[list[str], list[str]]:
        """Draft encounters for today, each with `per_encounter` administrations
        not started yet on one access site. Returns (encounter ids, administration ids)."""
        patients = Patient.objects.bulk_create(
            Patient(clinic=clinic, mrn=f"B{tag}-{i:06d}", given_name="Bench", family_name=f"Patient {i}") for i in range(n_encounters)
        )
        encounters = Encounter.objects.bulk_create(Encounter(patient=p, clinic=clinic, date_of_service=today) for p in patients)
        sites = AccessSite.objects.bulk_create(AccessSite(encounter=e, label="A", kind="peripheral_iv", recorded_by=nurse) for e in encounters)
        adms = Administration.objects.bulk_create(
            Administration(encounter=e, label=str(k + 1), drug=drugs[k % len(drugs)], admin_class=drugs[k % len(drugs)].admin_family,
                           route="iv_infusion", access_site=site, dose_value=100, dose_unit="mg", recorded_by=nurse)
            for e, site in zip(encounters, sites, strict=True) for k in range(per_encounter)
        )
        return [str(e.pk) for e in encounters], [str(a.pk) for a in adms]

    # Query counts of the encounter page: 1 and 100 administrations.
    client = Client()
    client.force_login(nurse)
    counts = []
    for n in (1, 100):
        (enc_id,), _ = chart(1, n, f"q{n}-{secrets.token_hex(3)}")
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/nurse/encounters/{enc_id}/").status_code == 200
        counts.append(len(queries))

    from django.conf import settings

    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    csrf = secrets.token_hex(16)  # 32 characters of the CSRF alphabet
    cookie = f"{settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={csrf}"
    tag = secrets.token_hex(3)
    chart_encounters, _ = chart(200, 4, f"c{tag}")
    _, startstop_ids = chart(6000, 4, f"s{tag}")

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "infusion_site.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "3", "--threads", "2",
         "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            sys.exit("http bench: gunicorn did not answer")

        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "bench.lua"
            script.write_text(LUA)

            def wrk(method: str, path: str, ids: list[str], seconds: int) -> dict:
                ids_file = Path(tmp) / "ids.txt"
                ids_file.write_text("\n".join(ids) + "\n")
                out = subprocess.run(
                    ["wrk", f"-t{args.threads}", f"-c{args.clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), base + "/"],
                    env={**os.environ, "BENCH_IDS": str(ids_file), "BENCH_THREADS": str(args.threads), "BENCH_METHOD": method,
                         "BENCH_PATH": path, "BENCH_COOKIE": cookie, "BENCH_CSRF": csrf},
                    capture_output=True, text=True, check=True,
                ).stdout
                m = re.search(r"BENCH p95_us=(\d+) requests=(\d+) errors=(\d+)", out)
                if not m:
                    sys.exit(f"http bench: no figures from wrk:\n{out}")
                result = {"p95_ms": int(m[1]) / 1000, "requests": int(m[2]), "errors": int(m[3])}
                if os.environ.get("BENCH_VERBOSE"):
                    print(method, path, result, out, file=sys.stderr)
                if result["errors"]:
                    sys.exit(f"http bench: {result['errors']} errors on {method} {path}:\n{out}")
                return result

            # Warm-up: every worker connects to the database and loads templates.
            wrk("GET", "/healthz/", ["x"], args.warmup)
            wrk("GET", "/nurse/encounters/{id}/", chart_encounters, args.warmup)

            bare, start, stop, page = [], [], [], []
            bare_requests = 0
            used = 0
            requests = {"start": 0, "stop": 0, "chart": 0}
            for _ in range(args.rounds):
                r = wrk("GET", "/healthz/", ["x"], args.seconds)
                bare.append(r["p95_ms"])
                bare_requests += r["requests"]
                # Start only administrations never started, then stop exactly those.
                fresh = startstop_ids[used:]
                r = wrk("POST", "/nurse/administrations/{id}/start/", fresh, args.seconds)
                if r["requests"] > len(fresh):
                    sys.exit("http bench: ran out of administrations to start; chart more")
                done = set(map(str, Administration.objects.filter(pk__in=fresh[: r["requests"] + 4 * args.clients], started_at__isnull=False).values_list("pk", flat=True)))
                started = [i for i in fresh if i in done]
                used += max(fresh.index(i) for i in started) + 1 if started else 0
                start.append(r["p95_ms"])
                requests["start"] += r["requests"]
                r = wrk("POST", "/nurse/administrations/{id}/stop/", started, min(args.seconds, 60))
                stop.append(r["p95_ms"])
                requests["stop"] += r["requests"]
                r = wrk("GET", "/nurse/encounters/{id}/", chart_encounters, args.seconds)
                page.append(r["p95_ms"])
                requests["chart"] += r["requests"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    bare_p95 = statistics.median(bare)
    startstop_p95 = statistics.median(max(a, b) for a, b in zip(start, stop, strict=True))
    chart_p95 = statistics.median(page)
    stopped = Administration.objects.filter(pk__in=startstop_ids[:used], stopped_at__isnull=False).count()
    common = f"bare_p95_ms={bare_p95:.1f} clients={args.clients} seconds={args.seconds} rounds={args.rounds} server=gunicorn(3x2)"
    # Requests served per second, bare ÷ this line's: what one request costs
    # the server against the bare view (at 50 closed-loop clients the p95 of
    # both is mostly queueing, and the bare view's tail is gunicorn's).
    bare_rps = bare_requests / (args.rounds * args.seconds)
    startstop_rps = (requests["start"] + requests["stop"]) / (args.rounds * (args.seconds + min(args.seconds, 60)))
    chart_rps = requests["chart"] / (args.rounds * args.seconds)
    print(f"startstop: ratio={startstop_p95 / bare_p95:.2f} p95_ms={startstop_p95:.1f} start_p95_ms={statistics.median(start):.1f} "
          f"stop_p95_ms={statistics.median(stop):.1f} requests={requests['start'] + requests['stop']} stopped={stopped} errors=0 "
          f"rps={startstop_rps:.1f} bare_rps={bare_rps:.0f} cost_ratio={bare_rps / startstop_rps:.1f} {common}")
    print(f"chart: ratio={chart_p95 / bare_p95:.2f} p95_ms={chart_p95:.1f} requests={requests['chart']} administrations_per_page=4 "
          f"queries_1={counts[0]} queries_100={counts[1]} errors=0 rps={chart_rps:.1f} bare_rps={bare_rps:.0f} cost_ratio={bare_rps / chart_rps:.1f} {common}")
    if counts[0] != counts[1]:
        sys.exit(f"http bench: the encounter page's query count grows: {counts[0]} with 1 administration, {counts[1]} with 100")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
