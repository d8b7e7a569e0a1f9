"""Log records carry the request id, and no patient data (PHI-2).

Two filters for the log handlers (settings.LOGGING):

- `RequestIdFilter` adds `record.request_id` ("-" outside a request).
- `PhiScrubFilter` withholds exception messages logged while a `@phi` view
  (or a PHI admin page) is served or a Celery task runs. An exception raised
  there may quote patient data: a psycopg error's DETAIL repeats the row
  ("Key (clinic_id, mrn)=(1, MRN0042) already exists"), a ValueError repeats
  what was typed. The traceback keeps its frames and exception types (enough
  to find the bug, with the request id leading to the audit row), the
  messages become "[message withheld]". Exception objects passed as log
  arguments are reduced to their type the same way, and Celery's task lines
  ("succeeded in 0.1 s: <return value>", "raised: <exception>") lose the
  value and the exception text.

Residual risk, by design not scrubbed: text our code puts in a log message
itself (`logger.info("... %s", patient.family_name)`). Don't. The test suite
runs with canary patients and fails on any canary in a log line, a Celery
message or an e-mail (tests/phi_canary.py), which is what catches it.
"""

from __future__ import annotations

import logging
import traceback

from . import context

WITHHELD = "[message withheld: may carry patient data]"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` ("-" outside a request) for the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs 4xx answers (django.request) after the middleware has
        # returned; the record carries the request then.
        record.request_id = context.current_request_id() or getattr(getattr(record, "request", None), "request_id", None) or "-"
        return True


def _in_phi_request(record: logging.LogRecord) -> bool:
    if context.current_phi() is not None:
        return True
    info = context.current_request()
    request = getattr(info, "request", None) or getattr(record, "request", None)
    match = getattr(request, "resolver_match", None)
    if match is None:
        return False
    # Django logs a view's exception (django.request) after @phi has returned:
    # the resolved view's tag says whether the request was a PHI one.
    from .phi import tag_of

    return tag_of(match.func) is not None


def _in_celery_task() -> bool:
    from celery._state import get_current_task

    return get_current_task() is not None


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback of `exc` (and of its causes/contexts) as Python prints
    it, with every exception message replaced by WITHHELD."""
    return "".join(_scrubbed_lines(exc, set())).rstrip("\n")


def _scrubbed_lines(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += _scrubbed_lines(exc.__cause__, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif exc.__context__ is not None and not exc.__suppress_context__ and id(exc.__context__) not in seen:
        lines += _scrubbed_lines(exc.__context__, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if exc.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.format_tb(exc.__traceback__)
    lines.append(f"{_type_name(exc)}: {WITHHELD}\n")
    return lines


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class PhiScrubFilter(logging.Filter):
    """Withholds exception messages of records logged during a PHI request
    or a Celery task (see the module docstring). Never drops a record."""

    # Celery's own task log lines quote the task's return value and the
    # exception's text ("succeeded in 0.1s: <result>", "raised unexpected: <exc>"),
    # partly after the task has left its context.
    CELERY_TRACE = "celery.app.trace"
    CELERY_TEXT_KEYS = ("return_value", "exc")

    def filter(self, record: logging.LogRecord) -> bool:
        celery_trace = record.name == self.CELERY_TRACE
        if getattr(record, "phi_scrubbed", False) or not (celery_trace or _in_phi_request(record) or _in_celery_task()):
            return True
        if isinstance(record.args, dict) and any(k in record.args for k in self.CELERY_TEXT_KEYS):
            record.args = {k: (WITHHELD if k in self.CELERY_TEXT_KEYS else v) for k, v in record.args.items()}
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrubbed_traceback(record.exc_info[1])
            # Handlers that render exc_info themselves (an error e-mail's
            # reporter) must not see the original exception either.
            record.exc_info = None
        if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
            record.args = tuple(f"<{_type_name(a)}: {WITHHELD}>" if isinstance(a, BaseException) else a for a in record.args)
        record.phi_scrubbed = True
        return True
