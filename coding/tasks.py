"""Celery tasks of the coding app: thin wrappers around `coding.services`."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services

logger = logging.getLogger(__name__)


@shared_task(
    # Safe to redeliver: suggest_for_encounter locks the encounter and returns
    # the current suggestion unchanged when the documentation hasn't changed.
    acks_late=True,
    # A lost or busy database is worth retrying; a coding error is not.
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=3,
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
)
def suggest_for_encounter_task(encounter_id: str) -> None:
    """Code a signed encounter (enqueued by `charting.services.sign_encounter` after commit)."""
    try:
        suggestion = services.suggest_for_encounter(encounter_id)
    except services.CodingError as exc:
        # E.g. the encounter was never committed, or was un-signed meanwhile:
        # retrying would not help.
        logger.warning("Not coding encounter %s: %s", encounter_id, exc)
        return
    logger.info("Encounter %s coded: suggestion %s", encounter_id, suggestion.pk)
