"""The flag sweep on a real Celery worker on Redis, killed with SIGKILL mid-sweep.

The test starts its own worker (it kills it, so not the session's
`celery_worker_process`) on its own queue, over a few thousand generated
administrations. To kill it provably *in the middle* of a sweep, the test
holds an uncommitted flag row for a record the sweep's last check will flag:
the worker, having already resolved and inserted the other kinds in its
transaction, waits on that row (INSERT ... ON CONFLICT waits for an
in-progress conflicting insert). It is killed there. Afterwards the database
must be exactly as before the sweep; a restarted worker's sweep must leave
exactly the flags the checks compute — none lost, none duplicated — and a
further sweep changes nothing.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from charting import checks, services
from charting.models import AccessSite, Administration, DocumentationFlag, Drug, Encounter, OtherService, Patient, SweepRun
from charting.tasks import sweep_flags_task
from tests.conftest import collect_worker_log
from tests.factories import ClinicFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(__file__).resolve().parents[1]
QUEUE = f"sweep-kill-{os.getpid()}"
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def start_worker(tmp_path: Path, name: str) -> subprocess.Popen:
    """A solo-pool worker on the test database, consuming only QUEUE."""
    db_url = "postgres://postgres@127.0.0.1:5432/" + connection.settings_dict["NAME"]
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "infusion_site.settings"}
    log_path = tmp_path / f"{name}.log"
    celery = str(Path(sys.executable).with_name("celery"))
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [celery, "-A", "infusion_site", "worker", "--pool=solo", "-Q", QUEUE, "--loglevel=INFO", "-n", f"{name}-{os.getpid()}@localhost", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log_path = log_path
    proc.log_file = log
    deadline = time.monotonic() + 60
    while " ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"worker not ready:\n{log_path.read_text()}")
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log_file.close()
    collect_worker_log(proc.log_path)  # PHI-2


def generate(now: dt.datetime, encounters: int = 300, per_encounter: int = 10) -> None:
    """`encounters` x `per_encounter` administrations, bulk-inserted, with a
    regular mix of gaps: still running, no dose, hydration without a reason,
    a billable drug without vials, unsigned yesterday, E/M without its note."""
    clinic = ClinicFactory(name="Kill Test Infusion", time_zone="America/New_York")
    today = now.astimezone(clinic.tz).date()
    plain = Drug.objects.create(name="kill-test drug", admin_family="therapeutic")
    billable = Drug.objects.create(name="kill-test biologic", admin_family="chemo_complex", hcpcs="J1745", single_dose=False)
    saline = Drug.objects.create(name="kill-test saline", admin_family="hydration", hcpcs="J7050")
    patients = Patient.objects.bulk_create(Patient(clinic=clinic, mrn=f"KILL{i:05d}", given_name="Test", family_name=f"Patient {i} ZZCANARY-4711") for i in range(encounters))
    encs = Encounter.objects.bulk_create(
        Encounter(patient=p, clinic=clinic, date_of_service=today - dt.timedelta(days=1 if i % 9 == 0 else 0)) for i, p in enumerate(patients)
    )
    sites = AccessSite.objects.bulk_create(AccessSite(encounter=e, label="A", kind="peripheral_iv") for e in encs)
    adms = []
    for i, (enc, site) in enumerate(zip(encs, sites, strict=True)):
        for j in range(per_encounter):
            n = i * per_encounter + j
            start = now - 8 * H + j * 20 * M
            drug = saline if n % 11 == 0 else billable if n % 13 == 0 else plain
            adms.append(
                Administration(
                    encounter=enc,
                    label=f"a{j}",
                    drug=drug,
                    admin_class=drug.admin_family,
                    route="iv_infusion",
                    access_site=site,
                    dose_value=None if n % 7 == 0 else Decimal("100"),
                    dose_unit="mg",
                    started_at=start,
                    stopped_at=None if n % 5 == 0 else start + 15 * M,
                    # One bag per encounter, except every 4th: there the drugs
                    # still running overlap the later ones on site A.
                    bag="" if i % 4 == 0 else "one bag",
                    container_type="multi_dose" if drug == billable else "",
                )
            )
    Administration.objects.bulk_create(adms, batch_size=2000)
    # bulk_create stamps recorded_at now: chart them as entered 5 minutes before they started.
    Administration.objects.filter(encounter__clinic=clinic).update(recorded_at=F("started_at") - 5 * M)
    OtherService.objects.bulk_create(OtherService(encounter=e, kind="em_visit", level="99213") for i, e in enumerate(encs) if i % 10 == 0)


def expected(now: dt.datetime) -> set[tuple]:
    """What the checks (the Python side) say should be open, as (kind, record id)."""
    return {i.record_key for e in Encounter.objects.for_chart() for i in checks.check_encounter(e, now=now)}


def open_flags() -> set[tuple]:
    return {(f.kind, f.administration_id or f.access_site_id or f.encounter_id) for f in DocumentationFlag.objects.open()}


def state() -> tuple:
    return (
        sorted(DocumentationFlag.objects.values_list("pk", "kind", "administration_id", "access_site_id", "encounter_id", "resolved_at")),
        SweepRun.objects.count(),
    )


def wait_for(predicate, what: str, worker: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if worker is not None and worker.poll() is not None:
            pytest.fail(f"worker died while waiting for {what}:\n{worker.log_path.read_text()}")
        if time.monotonic() > deadline:
            log = worker.log_path.read_text() if worker is not None else ""
            with connection.cursor() as cursor:
                cursor.execute("SELECT pid, datname, state, wait_event_type, wait_event, left(query, 200) FROM pg_stat_activity WHERE backend_type = %s", ["client backend"])
                activity = "\n".join(map(str, cursor.fetchall()))
            pytest.fail(f"timed out waiting for {what}\n{activity}\n{log[-2000:]}")
        time.sleep(0.05)


def _sql_count(sql: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def worker_waits_on_a_row_lock() -> bool:
    # Inside a transaction PostgreSQL keeps serving the first snapshot of
    # pg_stat_activity: clear it to see the worker's state now.
    _sql_count("SELECT count(*) FROM (SELECT pg_stat_clear_snapshot()) AS cleared")
    return _sql_count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'") > 0


def no_sweep_in_progress() -> bool:
    return _sql_count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", [services.SWEEP_LOCK_KEY]) == 0


def test_a_worker_killed_mid_sweep_leaves_nothing_and_the_rerun_leaves_exactly_the_flags(tmp_path):
    import redis

    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).delete(QUEUE)
    now = timezone.now()
    generate(now)
    assert Administration.objects.count() == 3000

    # A first sweep (in this process), then the chart changes: half the
    # forgotten stops are charted (flags to resolve), new E/M visits without
    # their note appear (flags to open).
    services.sweep_flags(now=now)
    running = list(Administration.objects.running().order_by("pk").values_list("pk", flat=True))
    Administration.objects.filter(pk__in=running[::2]).update(stopped_at=F("started_at") + 30 * M)
    fresh_em = list(Encounter.objects.exclude(other_services__kind="em_visit").order_by("pk")[:40])
    OtherService.objects.bulk_create(OtherService(encounter=e, kind="em_visit", level="99214") for e in fresh_em)
    before = state()
    assert open_flags() != expected(timezone.now())  # the next sweep has work in both directions

    worker = start_worker(tmp_path, "doomed")
    try:
        with transaction.atomic():
            # The row a racing writer is inserting: the sweep's last check
            # (em_not_separate) will want the same (record, kind) and wait for us.
            blocker = DocumentationFlag.objects.create(encounter=fresh_em[0], kind="em_not_separate", message="held by the test")
            sweep_flags_task.apply_async(queue=QUEUE)
            wait_for(worker_waits_on_a_row_lock, "the sweep to reach its last check", worker)
            assert checks.CHECKS[-1].kind == "em_not_separate"
            # It has written (resolved and opened other kinds' flags): a transaction id.
            assert _sql_count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL") == 1
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            assert blocker.pk
            transaction.set_rollback(True)
    finally:
        stop(worker, signal.SIGKILL)
    # The killed worker's transaction dies with its connection: nothing of the
    # half-done sweep is left.
    wait_for(no_sweep_in_progress, "the killed worker's transaction to end")
    assert state() == before

    worker = start_worker(tmp_path, "restarted")
    try:
        sweep_flags_task.apply_async(queue=QUEUE)
        wait_for(lambda: SweepRun.objects.count() == before[1] + 1, "the re-run sweep to commit", worker)
    finally:
        stop(worker)

    want = expected(timezone.now())
    assert open_flags() == want  # none lost
    per_record = DocumentationFlag.objects.open().values("kind", "administration", "access_site", "encounter").annotate(n=Count("pk")).filter(n__gt=1)
    assert not per_record.exists()  # none duplicated
    assert DocumentationFlag.objects.open().count() == len(want)
    resolved = set(DocumentationFlag.objects.filter(kind="still_running", resolved_at__isnull=False).values_list("administration_id", flat=True))
    assert resolved == set(running[::2])
    assert {"em_not_separate", "still_running", "dose_missing", "hydration_no_indication", "ndc_lot_missing", "not_signed", "overlap_same_site"} <= {k for k, _ in want}

    # And again: nothing changes.
    assert services.sweep_flags(now=timezone.now()) == {"opened": 0, "resolved": 0, "open": len(want), "skipped": 0}
