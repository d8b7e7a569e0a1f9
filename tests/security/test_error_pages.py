"""PHI-3: with DEBUG off, an exception in any view gives a generic 500 page
carrying the request's correlation id, and no traceback, SQL, settings or
patient data.

PHI-2: the forced errors here carry no patient data (the whole run fails on
a canary in a log line, tests/phi_canary.py). A real exception may: the last
tests force one quoting the patient and show that the log keeps the frames
and the request id but withholds the message (audit/logging.py), and that
Django's request log names the path (opaque ids), never the patient."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BOOM = "forced failure SELECT * FROM charting_patient"


def _explode(*args, **kwargs):
    raise RuntimeError(BOOM)


# Five views, each made to fail inside (a query method, a service, a helper it calls).
CASES = [
    ("charting:worklist", "nurse", "get", "charting.models.EncounterQuerySet.for_worklist", None),
    ("charting:encounter", "nurse", "get", "charting.checks.check_encounter", "encounter"),
    ("charting:start_administration", "nurse", "post", "charting.services.start_administration", "adm"),
    ("coding:queue", "coder", "get", "coding.views.review_queue", None),
    ("coding:review", "coder", "get", "coding.views._administrations", "signed_encounter"),
]


@pytest.mark.parametrize("name,who,method,target,fixture", CASES, ids=[c[0] for c in CASES])
def test_phi3_forced_exception_shows_a_generic_page_with_the_request_id(settings, monkeypatch, request, name, who, method, target, fixture):
    settings.DEBUG = False
    module, attr = target.rsplit(".", 1)
    if module.endswith("EncounterQuerySet"):
        from charting.models import EncounterQuerySet

        monkeypatch.setattr(EncounterQuerySet, attr, _explode)
    else:
        monkeypatch.setattr(module + "." + attr, _explode)
    if name == "charting:start_administration":
        from charting import views

        monkeypatch.setitem(views.ACTIONS, "start", _explode)
    obj = request.getfixturevalue(fixture) if fixture else None
    client = Client(raise_request_exception=False)
    client.force_login(request.getfixturevalue(who))
    kwarg = {"encounter_id": obj.pk} if name == "coding:review" else {"pk": obj.pk} if obj is not None else {}
    response = getattr(client, method)(reverse(name, kwargs=kwarg))
    body = response.content.decode()
    assert response.status_code == 500
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32 and request_id in body
    for leak in ("Traceback", "SELECT", "forced failure", "RuntimeError", "SECRET_KEY", "DATABASES", "charting_patient", "File \""):
        assert leak not in body, leak
    if obj is not None and hasattr(obj, "patient"):
        assert obj.patient.family_name not in body and obj.patient.mrn not in body
    # The failed request is audited as an error, under the same id.
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.outcome, row.request_id) == (Outcome.ERROR, request_id)


def _explode_with_patient(patient):
    def explode(*args, **kwargs):
        # What a real error can look like: a database error's DETAIL, chained.
        try:
            raise ValueError(f"Key (clinic_id, mrn)=(1, {patient.mrn}) already exists")
        except ValueError as exc:
            raise RuntimeError(f"could not chart for {patient.family_name}, {patient.given_name}") from exc

    return explode


@pytest.mark.parametrize("status_case", ["500", "404", "403"])
def test_phi2_log_lines_of_a_failing_phi_request_withhold_the_patient(settings, monkeypatch, caplog, encounter, nurse, other_clinic_nurse, status_case):
    """PHI-2: the exception of a PHI view quotes the patient (name, MRN); the
    log line Django writes keeps the frames, the exception types and the
    request id, not the patient. 4xx lines (django.request "Not Found",
    "Forbidden") name only the path, whose ids are opaque (PHI-1)."""
    settings.DEBUG = False
    patient = encounter.patient
    assert "ZZCANARY-4711" in patient.mrn  # a canary patient: the session check would catch a leak too
    client = Client(raise_request_exception=False)
    if status_case == "500":
        monkeypatch.setattr("charting.checks.check_encounter", _explode_with_patient(patient))
        client.force_login(nurse)
    elif status_case == "404":
        client.force_login(other_clinic_nurse)  # another clinic's chart: 404
    else:
        client.force_login(UserFactory(username="nobody", roles=[], clinics=[encounter.clinic]))  # no role: 403
    with caplog.at_level(logging.INFO):
        response = client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk}))
    assert response.status_code == int(status_case)
    request_log = [r for r in caplog.records if r.name == "django.request"]
    assert request_log, "Django logs every 4xx/5xx answer"
    # The records as the console handler wrote them (its filters ran when it emitted them).
    console = next(h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler)
    text = "\n".join(console.format(record) for record in request_log)
    assert str(encounter.pk) in text and response["X-Request-ID"] in text
    for secret in (patient.mrn, patient.family_name, patient.given_name, "ZZCANARY"):
        assert secret not in text, secret
    if status_case == "500":
        assert "Traceback (most recent call last)" in text and "in explode" in text
        assert "RuntimeError: [message withheld: may carry patient data]" in text
        assert "ValueError: [message withheld: may carry patient data]" in text
        assert "The above exception was the direct cause" in text


def test_phi2_exceptions_outside_phi_requests_keep_their_message(caplog):
    """The scrub is scoped: an exception logged outside a PHI request or a task
    (start-up, a management command) keeps its message for the developer."""
    console = next(h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler)
    try:
        raise RuntimeError("disk full on /var/tmp")
    except RuntimeError:
        with caplog.at_level(logging.ERROR):
            logging.getLogger("chairside.test").exception("start-up failed")
    record = caplog.records[-1]
    assert all(f.filter(record) for f in console.filters)
    assert "RuntimeError: disk full on /var/tmp" in console.format(record)
