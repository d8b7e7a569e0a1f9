"""Views that read or write patient data (PHI) are tagged, and each such
request writes exactly one audit row (RELIABILITY AUD-1, AUD-2).

    @require_POST
    @phi("charting.administration.{action}", object_type="charting.administration", id_kwarg="pk")
    @role_required(NURSE)
    def administration_action(request, pk, action): ...

`@phi` runs the view in one transaction with a fresh audit collector
(audit/context.py). Services called by the view `record()` into the
collector; when the view answers, ONE row is appended in the same
transaction, so the change and its audit row commit together:

- the first recorded event gives the row its action, object, patient and
  detail (further events go into `detail["also"]`);
- with no event (a read, a refused write) the row takes the tag's action
  (formatted with the URL kwargs) and the record the view named through
  `audit.services.subject(obj, patient_id=...)`;
- outcome from the answer: 2xx/3xx success, 403/404 denied, other 4xx failure,
  5xx error.

Access refused by an exception (Http404 for another clinic's record,
PermissionDenied for a wrong role) or any other exception rolls the view back
and writes the row afterwards, outcome denied or error, naming the id the URL
asked for. Only the tag's `id_kwarg` is taken from the URL: it is an opaque
UUID or integer (PHI-1), never a name or MRN.

The tag is the `phi` attribute of the view (copied through functools.wraps
by the outer decorators), which is what the URL walker test reads. Django
admin pages of PHI models use `PhiAdminMixin`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse

from . import context, services
from .models import AuditEvent, Category, Outcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhiTag:
    """What a PHI view's audit row says when no service recorded an event.

    `action`: dotted, may name URL kwargs ("charting.administration.{action}");
    `category`: audit.models.Category; `object_type`: app_label.model of the
    record the URL's `id_kwarg` names."""

    action: str
    category: str = Category.CLINICAL
    object_type: str = ""
    id_kwarg: str | None = None


def outcome_for(status: int) -> str:
    if status in (403, 404):
        return Outcome.DENIED
    if status >= 500:
        return Outcome.ERROR
    if status >= 400:
        return Outcome.FAILURE
    return Outcome.SUCCESS


def _row(tag: PhiTag, collector: context.PhiCollector, request, kwargs: dict, outcome: str, *, keep_events: bool, status: int) -> AuditEvent:
    user = getattr(request, "user", None)
    events = collector.events if keep_events else []
    if events:
        row = events[0]
        if len(events) > 1:
            row.detail = {**row.detail, "also": [{"action": e.action, "object_type": e.object_type, "object_id": e.object_id, "detail": e.detail} for e in events[1:]]}
        if row.patient_id is None:
            row.patient_id = collector.subject_patient_id
        if outcome != Outcome.SUCCESS:
            row.outcome = outcome
        return row
    object_id = collector.subject_id or (str(kwargs[tag.id_kwarg]) if tag.id_kwarg and tag.id_kwarg in kwargs else "")
    return AuditEvent(
        action=tag.action.format(**kwargs),
        actor=user if getattr(user, "is_authenticated", False) else None,
        username=user.get_username() if getattr(user, "is_authenticated", False) else "",
        role=services.role_of(user),
        category=tag.category,
        object_type=collector.subject_type or (tag.object_type if object_id else ""),
        object_id=object_id,
        patient_id=collector.subject_patient_id if keep_events else None,
        outcome=outcome,
        detail={} if outcome == Outcome.SUCCESS else {"status": status},
    )


def _write(row: AuditEvent, collector: context.PhiCollector) -> None:
    collector.writing = True
    services.write(row)


def run(tag: PhiTag, request, kwargs: dict, call: Callable[[], HttpResponse]) -> HttpResponse:
    """Run `call` (the view) as a PHI request under `tag`; see the module docstring."""
    collector = context.PhiCollector()
    token = context._phi.set(collector)
    try:
        try:
            with transaction.atomic():
                response = call()
                _write(_row(tag, collector, request, kwargs, outcome_for(response.status_code), keep_events=True, status=response.status_code), collector)
            return response
        except (Http404, PermissionDenied) as exc:
            status = 404 if isinstance(exc, Http404) else 403
            with transaction.atomic():
                _write(_row(tag, collector, request, kwargs, Outcome.DENIED, keep_events=False, status=status), collector)
            raise
        except Exception:
            try:
                with transaction.atomic():
                    _write(_row(tag, collector, request, kwargs, Outcome.ERROR, keep_events=False, status=500), collector)
            except Exception:  # the database itself may be what failed; the original error matters more
                logger.exception("The audit row of a failed request could not be written (request %s).", context.current_request_id())
            raise
    finally:
        context._phi.reset(token)


def phi(action: str, *, category: str = Category.CLINICAL, object_type: str = "", id_kwarg: str | None = None):
    """View decorator: tag the view as reading/writing PHI and audit each request once (see module docstring)."""
    tag = PhiTag(action=action, category=category, object_type=object_type, id_kwarg=id_kwarg)

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args: Any, **kwargs: Any) -> HttpResponse:
            return run(tag, request, kwargs, lambda: view(request, *args, **kwargs))

        wrapped.phi = tag
        return wrapped

    return decorator


class PhiAdminMixin:
    """Django admin pages of a PHI model: every list, change, history and
    delete page is a PHI request with one audit row
    (action `admin.<app_label>.<model>.<page>`)."""

    phi_category = Category.CLINICAL

    def _phi_run(self, page: str, request, object_id, call):
        opts = self.model._meta
        tag = PhiTag(action=f"admin.{opts.label_lower}.{page}", category=self.phi_category, object_type=opts.label_lower, id_kwarg="object_id")
        return run(tag, request, {"object_id": object_id} if object_id is not None else {}, call)

    def changelist_view(self, request, extra_context=None):
        return self._phi_run("list_viewed", request, None, lambda: super(PhiAdminMixin, self).changelist_view(request, extra_context))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._phi_run("viewed", request, object_id, lambda: super(PhiAdminMixin, self).change_view(request, object_id, form_url, extra_context))

    def add_view(self, request, form_url="", extra_context=None):
        return self._phi_run("add", request, None, lambda: super(PhiAdminMixin, self).add_view(request, form_url, extra_context))

    def delete_view(self, request, object_id, extra_context=None):
        return self._phi_run("delete", request, object_id, lambda: super(PhiAdminMixin, self).delete_view(request, object_id, extra_context))

    def history_view(self, request, object_id, extra_context=None):
        return self._phi_run("history_viewed", request, object_id, lambda: super(PhiAdminMixin, self).history_view(request, object_id, extra_context))


def tag_of(callback) -> PhiTag | str | None:
    """The PHI tag of a resolved URL callback: a PhiTag, "admin" for a PHI
    model's admin page, or None (untagged)."""
    tag = getattr(callback, "phi", None)
    if tag is not None:
        return tag
    model_admin = getattr(callback, "model_admin", None)
    return "admin" if isinstance(model_admin, PhiAdminMixin) else None
