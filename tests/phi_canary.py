"""PHI-2: canary patients never reach a log line, a Celery message or an e-mail.

A pytest plugin (pytest.ini: `-p tests.phi_canary`). The factories give
every patient a family name and MRN containing CANARY (tests/factories.py);
during the WHOLE run this plugin keeps

- every log record as the console handler would write it (message and
  traceback), through a root handler with the console handler's filters
  (the PHI scrub of audit/logging.py included), plus loggers that don't
  propagate to the root;
- every Celery message published (`before_task_publish`: body and headers)
  and every task result computed in this process (`task_postrun`); the test
  worker's own log is added when it stops (tests/conftest.py);
- every e-mail sent (the locmem backend's `send_messages`: subject, body,
  alternatives, attachments, headers);

and at the end of the session fails the run, printing the offending lines,
when CANARY is in any of them. `collector().take(...)` removes lines a
self-test planted on purpose (tests/security/test_phi_canary.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

CANARY = "ZZCANARY-4711"


@dataclasses.dataclass
class Hit:
    channel: str  # "log" | "celery" | "mail" | "worker-log"
    test: str
    text: str


class Collector:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.seen = {"log": 0, "celery": 0, "mail": 0, "worker-log": 0}
        self.test = "(outside a test)"

    def add(self, channel: str, text: str) -> None:
        self.seen[channel] += 1
        if CANARY.lower() in text.lower():
            self.hits.append(Hit(channel, self.test, text))

    def take(self, channel: str, marker: str) -> list[Hit]:
        """Remove and return the hits of `channel` containing `marker` (self-tests only)."""
        taken = [h for h in self.hits if h.channel == channel and marker in h.text]
        self.hits = [h for h in self.hits if h not in taken]
        return taken


_collector = Collector()


def collector() -> Collector:
    return _collector


class CaptureHandler(logging.Handler):
    """Formats every record it sees with the console handler's formatter and filters."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _collector.add("log", self.format(record))
        except Exception:  # a record that cannot be formatted is still kept, raw
            _collector.add("log", f"{record.msg!r} {record.args!r}")


_handler = CaptureHandler(level=logging.NOTSET)


def install_log_capture() -> None:
    """(Re)attach the capture handler: to the root, copying the console
    handler's filters and formatter, and to every logger that does not
    propagate. Idempotent; called again after each test, because a test
    that reconfigures logging replaces the root's handlers."""
    root = logging.getLogger()
    console = next((h for h in root.handlers if isinstance(h, logging.StreamHandler) and h is not _handler and type(h).__module__ == "logging"), None)
    if console is not None:
        _handler.filters = list(console.filters)
        _handler.setFormatter(console.formatter)
    loggers = [root] + [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger) and not lg.propagate]
    for logger in loggers:
        if _handler not in logger.handlers:
            logger.addHandler(_handler)


def _on_publish(sender=None, body=None, headers=None, exchange=None, routing_key=None, **kwargs) -> None:
    _collector.add("celery", f"publish {sender} to {exchange!r}/{routing_key!r}: " + json.dumps({"body": body, "headers": headers}, default=repr))


def _on_postrun(sender=None, task_id=None, retval=None, **kwargs) -> None:
    _collector.add("celery", f"result of {getattr(sender, 'name', sender)} {task_id}: {retval!r}")


def _patch_mail() -> None:
    from django.core.mail.backends import locmem

    if getattr(locmem.EmailBackend.send_messages, "phi_canary", False):
        return
    original = locmem.EmailBackend.send_messages

    def send_messages(self, messages):
        for message in messages:
            parts = [str(message.subject), str(message.body), " ".join(message.to), json.dumps(message.extra_headers, default=repr)]
            parts += [str(content) for content, _mime in getattr(message, "alternatives", [])]
            parts += [repr(attachment) for attachment in message.attachments]
            _collector.add("mail", "\n".join(parts))
        return original(self, messages)

    send_messages.phi_canary = True
    locmem.EmailBackend.send_messages = send_messages


def pytest_sessionstart(session) -> None:
    from celery import signals

    install_log_capture()
    signals.before_task_publish.connect(_on_publish, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
    _patch_mail()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _collector.test = item.nodeid
    try:
        return (yield)
    finally:
        install_log_capture()
        _collector.test = "(outside a test)"


def pytest_sessionfinish(session, exitstatus) -> None:
    if not _collector.hits:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"PHI-2: the canary {CANARY} reached {len(_collector.hits)} log line(s)/message(s)/e-mail(s):"]
    for hit in _collector.hits[:50]:
        lines.append(f"--- {hit.channel} during {hit.test}:\n{hit.text[:2000]}")
    text = "\n".join(lines)
    if reporter is not None:
        reporter.write_sep("=", "PHI-2 canary check failed", red=True)
        reporter.write_line(text)
    else:
        print(text)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
