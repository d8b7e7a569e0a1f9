"""Celery overhead as a ratio measured in one run (``make bench``; issue #9, RELIABILITY B5).

    celery: ratio=R tasks=10000 chunk=500 t_tasks=…s t_loop=…s worker=1x1

``t_loop``: ``charting.services.refresh_flags`` (one encounter's flag
computation: its checks in Python, flags opened/resolved) called for 10,000
encounters in one in-process loop.  ``t_tasks``: the same 10,000
computations sent as ``refresh_flags_task`` in chunks of ``--chunk``
(Celery's ``chunks``) to ONE worker process (``-c 1``, prefetch 1, the task's
own acks_late) on Redis, from the first send to the last result.  Both runs
use different encounters of the same generated data (the sweep bench's
database, see benchmarks/sweep_bench.py), starting with no flags.
``ratio = t_tasks / t_loop``, target <= 2.0.

Usage: python benchmarks/celery_bench.py [--tasks 10000] [--chunk 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chairside_bench"))
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    env = {
        "DATABASE_URL": args.database,
        "CELERY_BROKER_URL": args.broker,
        "CELERY_RESULT_BACKEND": args.broker,
        "CELERY_TASK_IGNORE_RESULT": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
        "DJANGO_SETTINGS_MODULE": "infusion_site.settings",
    }
    os.environ.update(env)
    import django

    django.setup()
    from charting.models import DocumentationFlag, Encounter
    from charting.services import refresh_flags
    from charting.tasks import refresh_flags_task
    from infusion_site.celery import app

    ids = [str(pk) for pk in Encounter.objects.filter(clinic__name__startswith="Load clinic ").order_by("pk").values_list("pk", flat=True)[: 2 * args.tasks]]
    if len(ids) < 2 * args.tasks:
        sys.exit("celery bench: not enough load data; run benchmarks/sweep_bench.py first (make bench does).")
    loop_ids, task_ids = ids[: args.tasks], ids[args.tasks :]
    DocumentationFlag.objects.filter(encounter_id__in=ids).delete()
    app.connection_for_write().default_channel.client.flushdb()  # this bench's own Redis database

    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "infusion_site", "worker", "-c", "1", "--prefetch-multiplier", "1",
         "--without-gossip", "--without-mingle", "-l", "warning", "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
    )
    try:
        for _ in range(150):
            if app.control.ping(timeout=0.2):
                break
        else:
            sys.exit("celery bench: the worker did not start")
        # Warm the worker (imports, database connection) outside the timing.
        refresh_flags_task.apply_async(args=[task_ids[0]]).get(timeout=60)

        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        for encounter_id in loop_ids:
            refresh_flags(encounter_id, now=now)
        t_loop = time.perf_counter() - started

        started = time.perf_counter()
        result = refresh_flags_task.chunks(((i,) for i in task_ids), args.chunk).group().apply_async()
        done = result.get(timeout=3600)
        t_tasks = time.perf_counter() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    computed = sum(len(chunk) for chunk in done)
    if computed != args.tasks:
        sys.exit(f"celery bench: {computed} of {args.tasks} computations came back")
    loop_flags = DocumentationFlag.objects.open().filter(encounter_id__in=loop_ids).count()
    task_flags = DocumentationFlag.objects.open().filter(encounter_id__in=task_ids).count()
    DocumentationFlag.objects.filter(encounter_id__in=ids).delete()
    print(f"celery: ratio={t_tasks / t_loop:.2f} tasks={args.tasks} chunk={args.chunk} t_tasks={t_tasks:.2f}s t_loop={t_loop:.2f}s "
          f"flags_loop={loop_flags} flags_tasks={task_flags} worker=1x1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
