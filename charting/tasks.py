"""Periodic charting work. Tasks are thin: they read the clock and call a service."""

from celery import shared_task
from django.utils import timezone

from . import services


# acks_late + reject_on_worker_lost: a worker that dies mid-sweep leaves the
# message to be delivered again. That is safe because the sweep is one
# transaction (a killed one leaves nothing) and idempotent; the period claim
# (SweepRun.period_start) makes a second delivery in the same period a no-op.
@shared_task(name="charting.tasks.sweep_flags_task", acks_late=True, reject_on_worker_lost=True)
def sweep_flags_task() -> dict[str, int]:
    now = timezone.now()
    return services.sweep_flags(now=now, period_start=services.sweep_period(now))


# The task name schedules stored before the flag checks were generalised point
# at (django-celery-beat keeps its database rows): it runs the same sweep, and
# the period claim keeps the two entries to one sweep per period.
@shared_task(name="charting.tasks.flag_long_running_administrations_task", acks_late=True, reject_on_worker_lost=True)
def flag_long_running_administrations_task() -> dict[str, int]:
    return sweep_flags_task()


# One encounter's flags, e.g. right after a change to it. Idempotent (the same
# data give the same flags), so a redelivery after a lost worker is harmless.
@shared_task(name="charting.tasks.refresh_flags_task", acks_late=True, reject_on_worker_lost=True)
def refresh_flags_task(encounter_id: str) -> dict[str, int]:
    return services.refresh_flags(encounter_id, now=timezone.now())
