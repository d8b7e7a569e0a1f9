"""PHI-2: the session-wide canary check (tests/phi_canary.py) really sees each
channel. Each test plants the canary on purpose, shows the collector caught
it, and takes its own lines back so the session check stays green; any other
canary line anywhere in the run fails the run at its end."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend

from infusion_site.celery import app
from tests.factories import PatientFactory
from tests.phi_canary import CANARY, collector


def test_phi2_factories_make_canary_patients(db):
    patient = PatientFactory()
    assert CANARY in patient.family_name and CANARY in patient.mrn


def test_phi2_a_canary_in_a_log_line_is_caught():
    marker = uuid.uuid4().hex
    logging.getLogger("charting.selftest").warning("planted %s for %s", marker, f"Doe {CANARY}")
    hits = collector().take("log", marker)
    assert len(hits) == 1 and hits[0].test.endswith("test_phi2_a_canary_in_a_log_line_is_caught")
    # Formatted as the console writes it: level, logger, request id placeholder.
    assert "WARNING charting.selftest [request -] planted" in hits[0].text


def test_phi2_loggers_that_do_not_propagate_are_watched_too():
    marker = uuid.uuid4().hex
    logger = logging.getLogger(f"selftest.isolated.{marker}")
    logger.propagate = False
    from tests.phi_canary import install_log_capture

    install_log_capture()  # what the plugin does after every test
    logger.error("planted %s %s", marker, CANARY)
    assert len(collector().take("log", marker)) == 1


def test_phi2_a_canary_in_a_published_celery_message_is_caught():
    marker = uuid.uuid4().hex
    queue = f"phi-canary-selftest-{marker}"
    try:
        app.send_task("selftest.never_consumed", args=[marker, CANARY], queue=queue)
    finally:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
    hits = collector().take("celery", marker)
    assert len(hits) == 1 and "selftest.never_consumed" in hits[0].text


@app.task(name="tests.selftest.task_leaking_a_canary")
def _task_leaking_a_canary(marker: str) -> str:
    try:
        raise ValueError(f"bad row {marker} {CANARY}")
    except ValueError:
        # Inside a task the log scrub withholds the exception message ...
        logging.getLogger("coding.selftest").exception("task failed %s", marker)
    # ... but a result is the task's own text: the spy sees it.
    return f"{marker} {CANARY}"


def test_phi2_task_results_are_caught_and_task_exception_messages_are_withheld():
    marker = uuid.uuid4().hex
    _task_leaking_a_canary.apply(args=[marker])
    results = collector().take("celery", marker)
    assert len(results) == 1 and results[0].text.startswith("result of tests.selftest.task_leaking_a_canary")
    assert collector().take("log", marker) == []  # the exception line was scrubbed: no canary left in it


def test_phi2_a_canary_in_an_email_is_caught():
    assert settings.EMAIL_BACKEND == "django.core.mail.backends.locmem.EmailBackend"
    assert getattr(EmailBackend.send_messages, "phi_canary", False)
    marker = uuid.uuid4().hex
    mail.send_mail(f"Chart of {CANARY}", f"body {marker}", "chairside@example.invalid", ["coder@example.invalid"])
    assert len(collector().take("mail", marker)) == 1


def test_phi2_no_error_emails_of_django():
    """Django's AdminEmailHandler (it mails the POST body and the exception)
    is attached to no logger."""
    from django.utils.log import AdminEmailHandler

    loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    assert not [lg.name for lg in loggers if any(isinstance(h, AdminEmailHandler) for h in lg.handlers)]


@pytest.mark.parametrize("channel", ["log", "celery", "mail"])
def test_phi2_collector_counts_what_it_sees(channel):
    """The collector is wired: it has seen lines on this channel in this run
    (this module's own tests run first in file order)."""
    assert collector().seen[channel] > 0


@app.task(name="tests.selftest.task_failing_with_a_canary")
def _task_failing_with_a_canary(marker: str) -> None:
    raise ValueError(f"bad row {marker} {CANARY}")


def test_phi2_celery_failure_lines_withhold_the_exception_text():
    marker = uuid.uuid4().hex
    result = _task_failing_with_a_canary.apply(args=[marker])
    assert result.failed()
    assert collector().take("log", marker) == []  # "raised unexpected: ..." and its traceback: scrubbed
    collector().take("celery", marker)  # the in-process result (the exception) is the spy's, not a log line
