"""Writing audit rows. Call inside the same transaction as the change."""

from typing import Any

from django.db.models import Model

from .models import AuditEvent


def record(action: str, *, actor: Any, obj: Model | None = None, patient_id: Any = None, detail: dict | None = None, remote_addr: str | None = None) -> AuditEvent:
    """Append one audit row.

    `action` is a dotted string (`charting.administration.stopped`);
    `actor` a user or None for system tasks; `detail` JSON-serialisable.
    """
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        patient_id=patient_id,
        detail=detail or {},
        remote_addr=remote_addr,
    )
