"""Scale-out smoke test (issue #9): two web processes and two Celery workers
against one PostgreSQL and one Redis, as README "Scaling out" describes.

The web tier keeps no local state: a session made through one process is
valid on the other, a write through one is read through the other, a log-out
through one ends the session on both. Both workers take tasks from the one
queue.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from charting.models import Administration
from tests.conftest import collect_worker_log
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

BASE_DIR = Path(__file__).resolve().parents[1]
QUEUE = f"scaleout-{os.getpid()}"

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/" + connection.settings_dict["NAME"],
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "DJANGO_SETTINGS_MODULE": "infusion_site.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _request(url: str, cookie: str, *, method: str = "GET", csrf: str = "") -> tuple[int, str, dict]:
    headers = {"Cookie": cookie, "Referer": url}
    if csrf:
        headers["X-CSRFToken"] = csrf
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
    try:
        with _opener.open(req, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), dict(error.headers)


@pytest.fixture
def two_web_processes(tmp_path):
    procs, bases = [], []
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    try:
        for n in range(2):
            port = _free_port()
            log = open(tmp_path / f"web{n}.log", "w")
            procs.append(subprocess.Popen([gunicorn, "infusion_site.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                                          cwd=BASE_DIR, env=_env(), stdout=log, stderr=subprocess.STDOUT))
            bases.append(f"http://127.0.0.1:{port}")
        for base, proc in zip(bases, procs, strict=True):
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz/", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"web process on {base} did not start: {(tmp_path / 'web0.log').read_text()}")
                    time.sleep(0.2)
        yield bases
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        for n in range(len(procs)):
            collect_worker_log(tmp_path / f"web{n}.log")  # PHI-2


@pytest.fixture
def two_workers(tmp_path):
    celery = str(Path(sys.executable).with_name("celery"))
    procs, logs = [], []
    try:
        for n in range(2):
            log_path = tmp_path / f"worker{n}.log"
            logs.append(log_path)
            procs.append(subprocess.Popen(
                [celery, "-A", "infusion_site", "worker", "-c", "1", "--prefetch-multiplier", "1", "-Q", QUEUE, "--loglevel=INFO",
                 "-n", f"scaleout{n}-{os.getpid()}@localhost", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=BASE_DIR, env=_env(), stdout=open(log_path, "w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        while not all(" ready." in p.read_text() for p in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail("workers did not start:\n" + "\n".join(p.read_text() for p in logs))
            time.sleep(0.2)
        yield logs
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        for log_path in logs:
            collect_worker_log(log_path)  # PHI-2


def test_both_web_processes_serve_one_session_and_see_each_others_writes(two_web_processes, clinic, nurse):
    a, b = two_web_processes
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=timezone.localdate(timezone=clinic.tz))
    site = AccessSiteFactory(encounter=encounter)
    adm = AdministrationFactory(encounter=encounter, drug=DrugFactory(name="infliximab"), access_site=site)
    client = Client()
    client.force_login(nurse)
    from django.conf import settings

    csrf = secrets.token_hex(16)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}; {settings.CSRF_COOKIE_NAME}={csrf}"

    for base in (a, b):
        status, body, _ = _request(base + "/nurse/", cookie)
        assert status == 200, (base, status)
    status, _, _ = _request(f"{a}/nurse/administrations/{adm.pk}/start/", cookie, method="POST", csrf=csrf)
    assert status in (200, 302)
    adm.refresh_from_db()
    assert adm.started_at is not None
    status, body, _ = _request(f"{b}/nurse/encounters/{encounter.pk}/", cookie)
    assert status == 200 and str(adm.pk) in body and "Stop" in body  # B shows the drug A started as running

    status, _, _ = _request(f"{b}/accounts/logout/", cookie, method="POST", csrf=csrf)
    assert status in (200, 302)
    status, _, headers = _request(a + "/nurse/", cookie)
    assert status == 302 and "/accounts/login/" in headers.get("Location", "")


def test_both_workers_take_tasks_from_one_queue(two_workers, clinic):
    from charting.tasks import refresh_flags_task

    encounters = [EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10)) for _ in range(6)]
    results = [refresh_flags_task.apply_async(args=[str(e.pk)], queue=QUEUE) for e in encounters * 5]
    assert len(results) == 30
    deadline = time.monotonic() + 120
    while True:
        done = [log.read_text().count("succeeded in") for log in two_workers]
        if sum(done) >= 30 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sum(done) == 30, done
    assert all(n > 0 for n in done), f"one worker took every task: {done}"
    assert Administration.objects.count() == 0  # the tasks read, they chart nothing
