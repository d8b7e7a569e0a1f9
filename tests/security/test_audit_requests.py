"""AUD-1, AUD-2, PHI-1: every request that reads or writes patient data writes
exactly one audit row; refusals are audited as denied; PHI URLs carry only
opaque ids. The URL registry is walked (get_resolver), so a view added later
is covered or the walk fails."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.db import connection
from django.urls import get_resolver, resolve, reverse

from audit.models import AuditEvent, Outcome
from audit.phi import PhiTag, tag_of
from tests.factories import UserFactory

from .test_urls import URLS, WRITE, _walk

pytestmark = pytest.mark.django_db

# Tables whose rows are patient data (or point at a patient): reading any of
# them in a request makes the request a PHI request.
PHI_TABLES = re.compile(r'"(charting_(patient|encounter|administration|accesssite|accesssitecheck|pause|vialuse|timecorrection|otherservice|documentationflag|patientscan|vitalsigns|reaction|reactionadministration)|coding_(suggestion|suggestedline)|charting_\w+event)"')

# For each tagged application URL: which fixture's object its id names, and who may call it.
SUBJECT = {
    "charting:worklist": (None, "nurse"),
    "charting:open_encounter": (None, "nurse"),
    "charting:encounter": ("encounter", "nurse"),
    "charting:ready_panel": ("encounter", "nurse"),
    "charting:add_access_site": ("encounter", "nurse"),
    "charting:add_administration": ("encounter", "nurse"),
    "charting:sign_encounter": ("encounter", "nurse"),
    "charting:start_administration": ("adm", "nurse"),
    "charting:pause_administration": ("adm", "nurse"),
    "charting:resume_administration": ("adm", "nurse"),
    "charting:stop_administration": ("adm", "nurse"),
    "charting:correct_time": ("adm", "nurse"),
    "charting:record_vials": ("adm", "nurse"),
    "charting:confirm_waste": ("adm", "nurse"),
    "charting:remove_vials": ("adm", "nurse"),
    "charting:edit_administration": ("adm", "nurse"),
    "charting:enter_in_error": ("adm", "nurse"),
    "charting:edit_access_site": ("encounter", "nurse"),
    "charting:document_em_service": ("encounter", "nurse"),
    "charting:undo_administration": ("adm", "nurse"),
    "charting:check_access_site": ("encounter", "nurse"),
    # barcode scanning (issue 8)
    "charting:scan_vial": ("adm", "nurse"),
    "charting:check_wristband": ("encounter", "nurse"),
    # vitals, reactions, dosing help (issue 8)
    "charting:record_vitals": ("encounter", "nurse"),
    "charting:strike_vitals": ("encounter", "nurse"),
    "charting:record_reaction": ("encounter", "nurse"),
    "charting:strike_reaction": ("encounter", "nurse"),
    "charting:reaction_outcome": ("encounter", "nurse"),
    "charting:correct_vitals_time": ("encounter", "nurse"),
    "charting:dosing_help": ("adm", "nurse"),
    "coding:queue": (None, "coder"),
    "coding:review": ("signed_encounter", "coder"),
    "coding:accept_all": ("signed_encounter", "coder"),
    "coding:accept_line": ("line", "coder"),
    # the coder's review (issue 4)
    "charting:amend_administration": ("signed_adm", "nurse"),
    "charting:answer_query": ("signed_encounter", "nurse"),
    "coding:change_line": ("line", "coder"),
    "coding:delete_line": ("line", "coder"),
    "coding:add_line": ("signed_encounter", "coder"),
    "coding:open_query": ("signed_encounter", "coder"),
    "coding:finalise": ("signed_encounter", "coder"),
    "coding:withdraw_line": ("final", "coder"),
    "coding:close_query": ("query", "coder"),
    "coding:export": (None, "coder"),
    "coding:export_download": (None, "coder"),
    # the admin's reports (issue 6)
    "reports:index": (None, "admin"),
    "reports:completeness": (None, "admin"),
    "reports:coding": (None, "admin"),
    "reports:timing": (None, "admin"),
    "reports:vials": (None, "admin"),
    "reports:access": (None, "admin"),
    "reports:export": (None, "admin"),
}


@pytest.fixture
def signed_adm(signed_encounter):
    return signed_encounter.administrations.get()


@pytest.fixture
def final(line, coder):
    """A line the coder added (withdrawable)."""
    from coding import services
    from coding.models import OverrideReason

    return services.add_line(line.suggestion.encounter, code="96372", units=1, modifiers=[], reason=OverrideReason.objects.filter(is_active=True).first(), actor=coder, version=None)


@pytest.fixture
def query(line, coder):
    from coding import services

    return services.open_query(line.suggestion.encounter, question="Was the site flushed?", actor=coder, version=None)


def tagged_app_urls() -> dict[str, PhiTag]:
    return {name: tag_of(p.callback) for name, p in _walk(get_resolver().url_patterns) if isinstance(tag_of(p.callback), PhiTag)}


TAGGED = tagged_app_urls()


def test_aud1_every_tagged_view_is_in_the_subject_table():
    assert set(TAGGED) == set(SUBJECT)


def _url_for(name: str, obj) -> str:
    if name == "reports:export":  # its kwargs name a report table, not a record
        return reverse(name, kwargs={"report": "timing", "table": "near_threshold", "fmt": "csv"})
    pattern = dict(_walk(get_resolver().url_patterns))[name]
    kwargs = {k: obj.pk for k in pattern.pattern.regex.groupindex} if obj is not None else {}
    return reverse(name, kwargs=kwargs)


def _patient_of(obj):
    from charting.models import Administration, Encounter

    if isinstance(obj, Encounter):
        return obj.patient_id
    if isinstance(obj, Administration):
        return obj.encounter.patient_id
    if hasattr(obj, "review"):  # a final line
        return obj.review.encounter.patient_id
    if hasattr(obj, "question"):  # a documentation query
        return obj.encounter.patient_id
    return obj.suggestion.encounter.patient_id  # a suggested line


POST_DATA = {"reason": "Pump alarm", "vial": "", "confirmed": ""}


@pytest.mark.parametrize("name", sorted(SUBJECT))
def test_aud1_each_phi_request_writes_exactly_one_complete_row(client, request, name):
    fixture, who = SUBJECT[name]
    obj = request.getfixturevalue(fixture) if fixture else None
    user = request.getfixturevalue(who)
    client.force_login(user)
    url = _url_for(name, obj)
    before = AuditEvent.objects.count()
    response = client.post(url, POST_DATA) if name in WRITE else client.get(url)
    assert response.status_code < 500
    assert AuditEvent.objects.count() - before == 1, name
    row = AuditEvent.objects.order_by("-seq").first()
    assert row.at.utcoffset() == dt.timedelta(0)
    assert (row.actor, row.username) == (user, user.username)
    assert who in row.role.split(",")
    assert row.action and row.category
    assert row.outcome in (Outcome.SUCCESS, Outcome.FAILURE)
    assert row.request_id == response["X-Request-ID"] and len(row.request_id) == 32
    if obj is not None:
        assert row.object_id and row.patient_id == _patient_of(obj), (name, row.object_id, row.patient_id)


def test_aud1_a_write_with_a_service_event_is_one_row_named_by_the_service(nurse_client, adm):
    before = AuditEvent.objects.count()
    response = nurse_client.post(reverse("charting:start_administration", kwargs={"pk": adm.pk}))
    assert response.status_code == 302
    assert AuditEvent.objects.count() == before + 1
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.action, row.object_id, row.patient_id, row.outcome) == ("charting.administration.started", str(adm.pk), adm.encounter.patient_id, Outcome.SUCCESS)
    assert row.detail["started_at"]


def test_aud1_a_request_with_several_service_events_is_still_one_row(nurse_client, adm):
    """Stopping a paused drug closes the pause and stops: the services record
    once each time they are called; the request still writes one row."""
    from charting import services

    services.start_administration(adm, actor=adm.encounter.clinic.staff.first())
    from django.http import HttpResponse
    from django.test import RequestFactory

    from audit import context
    from audit.phi import PhiTag, run

    req = RequestFactory().post("/")
    req.user = adm.encounter.clinic.staff.first()
    before = AuditEvent.objects.count()

    def view():
        services.pause_administration(adm, reason="Pump alarm", actor=req.user)
        services.stop_administration(adm, actor=req.user)
        return HttpResponse()

    run(PhiTag("charting.test.two_writes"), req, {}, view)
    assert context.current_phi() is None
    assert AuditEvent.objects.count() == before + 1
    row = AuditEvent.objects.order_by("-seq").first()
    assert row.action == "charting.administration.paused"
    assert [e["action"] for e in row.detail["also"]] == ["charting.administration.stopped"]


def test_aud1_an_untagged_view_touching_phi_fails_this_walk(client, clinic, encounter, adm, line):
    """Every URL of the project (app pages and Django admin) is called by a
    user holding every role; a request whose SQL reads a PHI table must come
    from a tagged view (@phi or PhiAdminMixin)."""
    superuser = UserFactory(username="walker", roles=["nurse", "coder", "admin"], clinics=[clinic], is_staff=True, is_superuser=True)
    client.force_login(superuser)
    untagged = []
    for name, url in sorted(URLS.items()):
        if name in ("logout", "admin:logout"):
            continue
        touched = []

        def spy(execute, sql, params, many, context, touched=touched):
            if PHI_TABLES.search(sql):
                touched.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(spy):
            client.post(url, {}) if name in WRITE else client.get(url)
        if touched and tag_of(resolve(url).func) is None:
            untagged.append(name)
    assert untagged == []


def test_aud1_admin_pages_of_phi_models_write_one_row(client, clinic, encounter):
    superuser = UserFactory(username="root_walk", roles=["admin"], clinics=[clinic], is_staff=True, is_superuser=True)
    client.force_login(superuser)
    for name, kwargs in [("admin:charting_patient_changelist", {}), ("admin:charting_patient_change", {"object_id": encounter.patient_id}), ("admin:charting_encounter_change", {"object_id": encounter.pk})]:
        before = AuditEvent.objects.count()
        assert client.get(reverse(name, kwargs=kwargs)).status_code == 200
        assert AuditEvent.objects.count() == before + 1, name
        row = AuditEvent.objects.order_by("-seq").first()
        assert row.action.startswith("admin.charting.") and row.actor == superuser


# --- AUD-2 ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, (fixture, _) in SUBJECT.items() if fixture))
def test_aud2_another_clinics_record_is_404_and_audited_denied(client, request, other_clinic, name):
    fixture, who = SUBJECT[name]
    obj = request.getfixturevalue(fixture)
    outsider = UserFactory(username=f"outsider_{who}", roles=[who], clinics=[other_clinic])
    client.force_login(outsider)
    before = AuditEvent.objects.count()
    url = _url_for(name, obj)
    response = client.post(url, POST_DATA) if name in WRITE else client.get(url)
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before + 1
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.outcome, row.actor, row.object_id, row.detail) == (Outcome.DENIED, outsider, str(obj.pk), {"status": 404})
    assert row.patient_id is None  # nothing about the record leaks into the outsider's row
    assert row.request_id == response["X-Request-ID"]


@pytest.mark.parametrize("name", sorted(SUBJECT))
def test_aud2_wrong_role_is_403_and_audited_denied(client, request, name):
    fixture, who = SUBJECT[name]
    obj = request.getfixturevalue(fixture) if fixture else None
    wrong = request.getfixturevalue("coder" if who == "nurse" else "nurse")
    client.force_login(wrong)
    before = AuditEvent.objects.count()
    url = _url_for(name, obj)
    response = client.post(url, POST_DATA) if name in WRITE else client.get(url)
    assert response.status_code == 403
    assert AuditEvent.objects.count() == before + 1
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.outcome, row.actor, row.detail) == (Outcome.DENIED, wrong, {"status": 403})


def test_aud2_random_ids_are_denied_rows_naming_the_id_asked_for(nurse_client, nurse):
    asked = uuid.uuid4()
    response = nurse_client.get(reverse("charting:encounter", kwargs={"pk": asked}))
    assert response.status_code == 404
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.action, row.outcome, row.object_type, row.object_id) == ("charting.encounter.viewed", Outcome.DENIED, "charting.encounter", str(asked))


# --- PHI-1 -------------------------------------------------------------------------


def test_phi1_every_phi_url_names_records_by_uuid_or_integer_id_only():
    """No MRN, name or birth date in a URL: every kwarg of a PHI view is a uuid
    converter (int only for coding lines, which are not patient identifiers);
    the only other kwarg is the fixed `action` of the start/resume/stop URLs."""
    for name, pattern in _walk(get_resolver().url_patterns):
        if not isinstance(tag_of(pattern.callback), PhiTag):
            continue
        converters = {k: type(v).__name__ for k, v in pattern.pattern.converters.items()}
        for kwarg in pattern.pattern.regex.groupindex:
            if name == "reports:export":  # report/table/format names, no record
                assert converters.get(kwarg) == "SlugConverter" and kwarg in ("report", "table", "fmt"), (name, kwarg)
                continue
            assert converters.get(kwarg) in ("UUIDConverter", "IntConverter"), (name, kwarg, converters.get(kwarg))
        if converters and name != "reports:export":
            # int ids only for coding rows (lines, decisions, queries), not patient identifiers
            assert any(c == "UUIDConverter" for c in converters.values()) or name.startswith("coding:"), name
