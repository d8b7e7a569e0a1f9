"""Fixtures of the coding tests: people, charted encounters, a real Celery worker."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from charting.models import Clinic, Encounter
from tests.factories import (
    AccessSiteFactory,
    AdministrationFactory,
    DrugFactory,
    EncounterFactory,
    PatientFactory,
    UserFactory,
)

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def other_clinic_coder(other_clinic):
    return UserFactory(username="other_coder", roles=["coder"], clinics=[other_clinic])


@pytest.fixture
def make_encounter(clinic):
    """Chart a signed office encounter with `n` sequential 60-minute therapeutic
    infusions (the first is the initial 96365, the others 96367)."""

    def make(n: int = 1, *, in_clinic: Clinic | None = None, signed: bool = True) -> Encounter:
        where = in_clinic or clinic
        signer = UserFactory(roles=["nurse"], clinics=[where]) if signed else None
        encounter = EncounterFactory(
            patient=PatientFactory(clinic=where),
            date_of_service=dt.date(2025, 6, 10),
            status="signed" if signed else "draft",
            signed_by=signer,
            signed_at=timezone.now() if signed else None,
        )
        site = AccessSiteFactory(encounter=encounter, label="A")
        start = dt.datetime(2025, 6, 10, 13, 0, tzinfo=dt.UTC)
        for i in range(n):
            AdministrationFactory(
                encounter=encounter,
                label=str(i + 1),
                drug=DrugFactory(name=f"test drug {i}", hcpcs="", billing_unit_value=None, billing_unit_unit="", admin_family="therapeutic"),
                access_site=site,
                dose_value=Decimal(100),
                started_at=start + dt.timedelta(minutes=61 * i),
                stopped_at=start + dt.timedelta(minutes=61 * i + 60),
            )
        return encounter

    return make


# --- a real Celery worker on Redis -------------------------------------------


def _broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, tmp_path_factory):
    """`celery -A infusion_site worker` as a subprocess on the TEST database and
    Redis db 15 (flushed first). Yields the Popen; terminated at session end."""
    import redis
    from django.db import connection

    redis.Redis.from_url(_broker_url()).flushdb()
    db_url = "postgres://postgres@127.0.0.1:5432/" + connection.settings_dict["NAME"]
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": _broker_url(), "DJANGO_SETTINGS_MODULE": "infusion_site.settings"}
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    celery = str(Path(sys.executable).with_name("celery"))
    hostname = f"chairside-test-{os.getpid()}@localhost"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [celery, "-A", "infusion_site", "worker", "--pool=solo", "-Q", "celery", "--loglevel=INFO", "-n", hostname, "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            # Celery logs "<hostname> ready." once it consumes from the queue.
            while " ready." not in log_path.read_text():
                if proc.poll() is not None:
                    pytest.fail(f"Celery worker exited with {proc.returncode}:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"Celery worker not ready after 60 s:\n{log_path.read_text()}")
                time.sleep(0.2)
            proc.log_path = log_path
            yield proc
        finally:
            proc.terminate()  # warm shutdown: finishes the current task
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
