"""Audit rows for report views and exports, and the export log."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import record

from .models import ExportLog
from .reports import Filters


def record_view(report: str, *, actor: Any, filters: Filters, remote_addr: str | None) -> None:
    """One audit row per report page: `reports.<report>.viewed` with the filters
    (and the patient, when the chart access log is filtered to one)."""
    record(f"reports.{report}.viewed", actor=actor, patient_id=filters.patient_id, detail={"filters": filters.as_json()}, remote_addr=remote_addr)


@transaction.atomic
def start_export(report: str, table: str, fmt: str, *, actor: Any, filters: Filters, remote_addr: str | None) -> ExportLog:
    """Log an export as it starts: an `ExportLog` (who, when, report, table,
    format, filters, clinics) and its audit row `reports.<report>.exported`,
    in one transaction. `finish_export` adds the row count at the end."""
    log = ExportLog.objects.create(actor=actor, report=report, table=table, format=fmt, filters=filters.as_json())
    log.clinics.set(filters.clinic_ids)
    record(
        f"reports.{report}.exported",
        actor=actor,
        obj=log,
        patient_id=filters.patient_id,
        detail={"table": table, "format": fmt, "filters": filters.as_json()},
        remote_addr=remote_addr,
    )
    return log


def finish_export(log: ExportLog, *, row_count: int) -> None:
    """Record that `log`'s export sent its last row, and how many rows it held."""
    ExportLog.objects.filter(pk=log.pk).update(row_count=row_count, completed_at=timezone.now())
