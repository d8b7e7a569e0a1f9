"""PHI-3: with DEBUG off, an exception in any view gives a generic 500 page
carrying the request's correlation id, and no traceback, SQL, settings or
patient data."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome

pytestmark = pytest.mark.django_db

BOOM = "ZZCANARY-4711 forced failure SELECT * FROM charting_patient"


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
    for leak in ("Traceback", "SELECT", "ZZCANARY", "RuntimeError", "SECRET_KEY", "DATABASES", "charting_patient", "File \""):
        assert leak not in body, leak
    if obj is not None and hasattr(obj, "patient"):
        assert obj.patient.family_name not in body and obj.patient.mrn not in body
    # The failed request is audited as an error, under the same id.
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.outcome, row.request_id) == (Outcome.ERROR, request_id)
