"""Writing audit rows.

`record(...)` is the one way in. Outside a request tagged `@phi` (Celery
tasks, management commands, log-in signals, tests calling services) it
appends a row at once, in the caller's transaction. Inside a `@phi` view
(audit/phi.py) it adds the event to the request's audit context instead, and
the view writes exactly ONE row when it answers (RELIABILITY AUD-1): the first
event gives the row its action, object and patient, later events go into
`detail["also"]`. Services therefore call `record()` as before and never
need to know whether a request is around them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Model

from . import chain, context
from .models import AuditEvent, Category, Outcome

logger = logging.getLogger(__name__)

# Default data category by the first part of the dotted action.
CATEGORY_BY_APP = {
    "charting": Category.CLINICAL,
    "coding": Category.CODING,
    "auth": Category.AUTHENTICATION,
    "privileges": Category.PRIVILEGES,
}


def role_of(user: Any) -> str:
    """The user's groups, sorted and comma-separated ('' for anonymous/None).
    Cached on the user object for the rest of the request (one query)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    cached = getattr(user, "_audit_role", None)
    if cached is None:
        names = sorted(user.groups.values_list("name", flat=True)) + (["superuser"] if user.is_superuser else [])
        cached = ",".join(names)
        user._audit_role = cached
    return cached


def record(
    action: str,
    *,
    actor: Any,
    obj: Model | None = None,
    patient_id: Any = None,
    detail: dict | None = None,
    remote_addr: str | None = None,
    outcome: str = Outcome.SUCCESS,
    category: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    username: str | None = None,
) -> AuditEvent:
    """Audit one event.

    `action` is a dotted string (`charting.administration.stopped`); `actor`
    a user or None for system tasks; `obj` the record acted on (or give
    `object_type`/`object_id`); `patient_id` the patient's UUID; `detail`
    JSON-serialisable (never a password). `outcome` is one of
    audit.models.Outcome (success, denied, failure, error); `category` one of
    Category (default from the action's app: charting -> clinical, coding ->
    coding, auth -> authentication, privileges -> privileges, else system).
    `username` overrides the actor's (a failed log-in has no actor).

    Returns the row: saved when written now; unsaved when a `@phi` request
    collects it (that request writes one row when it answers).
    """
    event = AuditEvent(
        action=action,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        username=username if username is not None else (actor.get_username() if getattr(actor, "is_authenticated", False) else ""),
        role=role_of(actor),
        category=category or CATEGORY_BY_APP.get(action.split(".", 1)[0], Category.SYSTEM),
        object_type=object_type if object_type is not None else (obj._meta.label_lower if obj is not None else ""),
        object_id=object_id if object_id is not None else (str(obj.pk) if obj is not None else ""),
        patient_id=patient_id,
        outcome=outcome,
        detail=detail or {},
        remote_addr=remote_addr,
    )
    collector = context.current_phi()
    if collector is not None and not collector.writing:
        collector.add(event)
        return event
    return write(event)


def write(event: AuditEvent) -> AuditEvent:
    """Append `event` to the chain now, with the current request's id and address."""
    request = context.current_request()
    if request is not None:
        event.request_id = event.request_id or request.request_id
        event.remote_addr = event.remote_addr or request.remote_addr
    return chain.append(event)


def subject(obj: Model | None, *, patient_id: Any = None) -> None:
    """Name the record a `@phi` view is about (the object it fetched through
    its access-controlled query): the request's row carries it when no
    service recorded anything (a read, a refused write). No-op elsewhere."""
    collector = context.current_phi()
    if collector is not None:
        collector.set_subject(obj, patient_id)
