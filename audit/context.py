"""Request-scoped audit state, in context variables (safe under threads and ASGI).

- `RequestInfo`: the correlation id (request id) and client address of the
  HTTP request being served, set by audit.middleware.RequestIdMiddleware and
  read by every audit row written during the request and by the log filter.
- `PhiCollector`: the events recorded while a `@phi` view runs, written as
  one row when the view answers (audit/phi.py).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("audit_request", default=None)
_phi: contextvars.ContextVar[PhiCollector | None] = contextvars.ContextVar("audit_phi", default=None)


@dataclass
class RequestInfo:
    request_id: str
    remote_addr: str | None
    request: Any = None

    @property
    def user(self):
        """The signed-in user of the request, or None."""
        user = getattr(self.request, "user", None)
        return user if getattr(user, "is_authenticated", False) else None


@dataclass
class PhiCollector:
    """Events recorded during one `@phi` request, and the record it is about."""

    events: list = field(default_factory=list)
    subject_type: str = ""
    subject_id: str = ""
    subject_patient_id: Any = None
    # True while the collector writes its own row (record() must then write through).
    writing: bool = False

    def add(self, event) -> None:
        self.events.append(event)

    def set_subject(self, obj, patient_id) -> None:
        if not self.subject_id and obj is not None:
            self.subject_type, self.subject_id = obj._meta.label_lower, str(obj.pk)
        if self.subject_patient_id is None and patient_id is not None:
            self.subject_patient_id = patient_id


def current_request() -> RequestInfo | None:
    return _request.get()


def current_phi() -> PhiCollector | None:
    return _phi.get()


def current_request_id() -> str:
    info = _request.get()
    return info.request_id if info is not None else ""
