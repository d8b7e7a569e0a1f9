"""Periodic charting work. Tasks are thin: they read settings and call a service."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import services


# Idempotent (one open flag per administration, enforced by a partial unique
# index), so a redelivery after a worker dies just repeats the same sweep.
@shared_task(name="charting.tasks.flag_long_running_administrations_task", acks_late=True)
def flag_long_running_administrations_task() -> dict[str, int]:
    return services.flag_long_running_administrations(now=timezone.now(), hours=settings.CHAIRSIDE_RUNNING_FLAG_HOURS)
