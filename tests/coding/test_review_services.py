"""The coder's review workflow, service level, on PostgreSQL: decisions stored
beside the suggestion, reasons required, documentation queries answered with
an amendment and re-coded, finalisation, and the version lock (CON-1)."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.models import AuditEvent
from charting import services as charting_services
from charting.models import Administration, Amendment, AmendmentReason
from charting.services import ChartingError
from coding import services
from coding.models import DocumentationQuery, EncounterReview, FinalLine, OverrideReason, SuggestedLine
from coding.services import CodingError, ReviewConflict
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def coded(make_encounter):
    """A signed encounter with two 60-minute infusions, coded: 96365 + 96367."""
    encounter = make_encounter(2)
    suggestion = services.suggest_for_encounter(encounter.pk)
    return encounter, suggestion, {line.code: line for line in suggestion.lines.all()}


@pytest.fixture
def second_coder(clinic):
    return UserFactory(username="coder2", first_name="Sam", last_name="Second", roles=["coder"], clinics=[clinic])


def reason(code="units_miscounted"):
    return OverrideReason.objects.get(code=code)


def version_of(encounter):
    review = EncounterReview.objects.filter(encounter=encounter).first()
    return review.version if review else 0


def snapshot(suggestion):
    return list(SuggestedLine.objects.filter(suggestion=suggestion).order_by("position").values_list("code", "units", "modifiers", "explanation"))


def test_the_reason_lists_are_seeded_by_migrations():
    assert OverrideReason.objects.filter(is_active=True).count() >= 10
    assert OverrideReason.objects.filter(code="other").exists()
    assert AmendmentReason.objects.filter(code="coder_query").exists()


def test_accept_stores_a_final_line_beside_the_suggestion_once(coded, coder):
    encounter, suggestion, lines = coded
    before = snapshot(suggestion)

    services.accept_line(lines["96365"], actor=coder, version=0)
    services.accept_line(lines["96365"], actor=coder, version=0)  # double submit, stale version: no-op, no conflict

    final = FinalLine.objects.get()
    assert (final.action, final.code, final.units, final.suggested_line_id, final.decided_by) == ("accept", "96365", 1, lines["96365"].pk, coder)
    assert snapshot(suggestion) == before
    review = EncounterReview.objects.get(encounter=encounter)
    assert (review.status, review.version) == ("in_review", 1)
    assert AuditEvent.objects.filter(action="coding.line.accepted").count() == 1


def test_change_needs_a_reason_and_keeps_the_suggested_line(coded, coder):
    encounter, suggestion, lines = coded
    before = snapshot(suggestion)

    with pytest.raises(CodingError, match="A reason is required") as exc:
        services.change_line(lines["96367"], code="96366", units=2, modifiers="", reason=None, actor=coder, version=0)
    assert exc.value.field == "reason"
    with pytest.raises(CodingError, match="Other") as exc:
        services.change_line(lines["96367"], code="96366", units=2, modifiers="", reason="other", actor=coder, version=0)
    assert exc.value.field == "reason_text"
    assert not FinalLine.objects.exists()

    final = services.change_line(lines["96367"], code="96367", units=1, modifiers="59, xu", reason=reason("modifier_missing"), reason_text="separate site", actor=coder, version=0)

    assert (final.action, final.code, final.units, final.modifiers, final.reason.code, final.reason_text) == ("change", "96367", 1, ["59", "XU"], "modifier_missing", "separate site")
    assert snapshot(suggestion) == before  # the suggestion is never overwritten
    assert AuditEvent.objects.filter(action="coding.line.changed", detail__reason="modifier_missing").count() == 1


@pytest.mark.parametrize(
    ("code", "units", "modifiers", "field"),
    [("9636", 1, "", "code"), ("96365", 0, "", "units"), ("96365", "x", "", "units"), ("96365", 1000, "", "units"), ("96365", 2, "5", "modifiers"), ("96365", 2, "59 XU XS XE JZ", "modifiers")],
)
def test_change_with_bad_values_is_a_field_error(coded, coder, code, units, modifiers, field):
    _, _, lines = coded
    with pytest.raises(CodingError) as exc:
        services.change_line(lines["96365"], code=code, units=units, modifiers=modifiers, reason="units_miscounted", actor=coder, version=0)
    assert exc.value.field == field
    assert not FinalLine.objects.exists()


def test_delete_and_add_are_decisions_with_reasons_and_a_later_decision_supersedes(coded, coder):
    encounter, suggestion, lines = coded
    services.accept_line(lines["96367"], actor=coder, version=0)
    deleted = services.delete_line(lines["96367"], reason="duplicate_line", actor=coder, version=1)
    again = services.delete_line(lines["96367"], reason="duplicate_line", actor=coder, version=1)  # double submit
    added = services.add_line(encounter, code="96366", units=1, modifiers=[], reason="service_missing", actor=coder, version=2)

    assert again.pk == deleted.pk
    assert list(FinalLine.objects.filter(suggested_line=lines["96367"]).order_by("pk").values_list("action", "is_current")) == [("accept", False), ("delete", True)]
    assert (added.action, added.suggested_line, added.suggestion, added.position) == ("add", None, suggestion, 3)
    assert list(FinalLine.objects.billed().values_list("code", flat=True)) == ["96366"]
    with pytest.raises(CodingError, match="A reason is required"):
        services.add_line(encounter, code="96366", units=1, modifiers=[], reason="", actor=coder, version=3)


def test_a_stale_version_is_a_conflict_that_lists_what_changed_and_writes_nothing(coded, coder, second_coder):
    encounter, _, lines = coded
    loaded = version_of(encounter)  # both coders open the page at version 0
    services.change_line(lines["96365"], code="96365", units=2, modifiers="", reason="units_miscounted", actor=coder, version=loaded)

    with pytest.raises(ReviewConflict) as exc:
        services.change_line(lines["96365"], code="96365", units=3, modifiers="", reason="units_miscounted", actor=second_coder, version=loaded)

    assert "Cody Coder saved this encounter" in str(exc.value) and "Nothing of yours was saved" in str(exc.value)
    assert exc.value.changes == [exc.value.changes[0]] and "changed 96365x1 to 96365x2" in exc.value.changes[0] and "Units do not match" in exc.value.changes[0]
    assert list(FinalLine.objects.current().values_list("units", "decided_by")) == [(2, coder.pk)]
    for attempt in (
        lambda: services.accept_line(lines["96367"], actor=second_coder, version=loaded),
        lambda: services.open_query(encounter, question="Why?", actor=second_coder, version=loaded),
        lambda: services.finalise_encounter(encounter, actor=second_coder, version=loaded),
    ):
        with pytest.raises(ReviewConflict):
            attempt()
    assert EncounterReview.objects.get(encounter=encounter).version == 1


def test_finalise_needs_every_line_decided_and_no_open_query_then_locks(coded, coder):
    encounter, _, lines = coded
    services.accept_line(lines["96365"], actor=coder, version=0)
    with pytest.raises(CodingError, match="96367x1"):
        services.finalise_encounter(encounter, actor=coder, version=1)
    services.accept_line(lines["96367"], actor=coder, version=1)
    query = services.open_query(encounter, question="Was the second bag a separate site?", actor=coder, version=2)
    with pytest.raises(CodingError, match="query is still open"):
        services.finalise_encounter(encounter, actor=coder, version=3)
    services.close_query(query, actor=coder, version=3)

    review = services.finalise_encounter(encounter, actor=coder, version=4)
    twice = services.finalise_encounter(encounter, actor=coder, version=4)  # double submit

    assert (review.status, review.finalised_by, twice.version) == ("final", coder, 5)
    assert review.finalised_at is not None and review.finalised_suggestion_id == lines["96365"].suggestion_id
    assert AuditEvent.objects.filter(action="coding.encounter.finalised").count() == 1
    with pytest.raises(CodingError, match="lines are locked"):
        services.change_line(lines["96365"], code="96365", units=2, modifiers="", reason="units_miscounted", actor=coder, version=5)
    with pytest.raises(CodingError, match="lines are locked"):
        services.add_line(encounter, code="96366", units=1, modifiers="", reason="service_missing", actor=coder, version=5)


def test_query_answered_with_an_amendment_recodes_and_shows_the_diff(coded, coder, nurse, django_capture_on_commit_callbacks):
    encounter, first, lines = coded
    adm = Administration.objects.get(encounter=encounter, label="2")
    original_stop = adm.stopped_at
    services.accept_line(lines["96365"], actor=coder, version=0)
    query = services.open_query(encounter, question="The second bag: 60 minutes or longer?", administration=adm, actor=coder, version=1)
    assert EncounterReview.objects.get(encounter=encounter).status == "query_open"
    assert list(DocumentationQuery.objects.for_nurse_worklist(nurse)) == [query]

    new_stop = original_stop + dt.timedelta(minutes=60)  # 120 minutes: 96367 + 96366
    with django_capture_on_commit_callbacks() as callbacks:
        services.answer_query(
            query,
            answer="The pump ran for two hours; stop time corrected.",
            actor=nurse,
            amendment={"adm": adm, "field": "stopped_at", "new_value": new_stop, "reason": "device_time", "reason_text": "pump log"},
        )
    assert len(callbacks) == 1  # the re-code, enqueued after commit

    amendment = Amendment.objects.get()
    assert (amendment.field, amendment.query, amendment.author, amendment.reason.code) == ("stopped_at", query, nurse, "device_time")
    assert dt.datetime.fromisoformat(amendment.old_value) == original_stop and dt.datetime.fromisoformat(amendment.new_value) == new_stop
    adm.refresh_from_db()
    assert adm.stopped_at == new_stop
    query.refresh_from_db()
    assert (query.status, query.answered_by) == ("answered", nurse)
    assert EncounterReview.objects.get(encounter=encounter).status == "in_review"

    # What the task does after commit (a real worker runs it in the browser test).
    current = services.suggest_for_encounter(encounter.pk)
    assert current.pk != first.pk
    change = services.suggestion_change(encounter, current)
    assert change.previous == first and change.added == ("96366×1",) and change.removed == () and change.changed == ()
    assert snapshot(first) == [("96365", 1, [], lines["96365"].explanation), ("96367", 1, [], lines["96367"].explanation)]


def test_amendment_after_finalisation_returns_the_encounter_to_the_queue(coded, coder, nurse, django_capture_on_commit_callbacks):
    encounter, _, lines = coded
    services.accept_all_lines(lines["96365"].suggestion, actor=coder, version=0)
    services.finalise_encounter(encounter, actor=coder, version=version_of(encounter))
    adm = Administration.objects.get(encounter=encounter, label="1")

    with django_capture_on_commit_callbacks() as callbacks:
        charting_services.amend_administration(adm, field="dose_value", new_value="150", reason="transcription_error", actor=nurse)

    review = EncounterReview.objects.get(encounter=encounter)
    assert (review.status, review.returned_after_amendment, review.finalised_by) == ("in_review", True, coder)
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="coding.encounter.returned").count() == 1
    assert AuditEvent.objects.filter(action="charting.administration.amended", detail__old_value="100", detail__new_value="150").count() == 1


@pytest.mark.parametrize(
    ("field", "value", "reason", "message"),
    [
        ("dose_value", "150", None, "A reason is required"),
        ("dose_value", "150", "other", "Other"),
        ("dose_value", "-1", "transcription_error", "between"),
        ("dose_value", "abc", "transcription_error", "a number"),
        ("dose_value", "100", "transcription_error", "nothing to amend"),
        ("dose_unit", "kg", "transcription_error", "Pick one of"),
        ("access_site", "Z", "transcription_error", "no access site"),
        ("stopped_at", "2025-06-10 08:00", "transcription_error", "before start time"),
        ("started_at", "2999-01-01 08:00", "transcription_error", "in the future"),
        ("stopped_at", "yesterday", "transcription_error", "YYYY-MM-DD"),
    ],
)
def test_bad_amendments_are_refused_and_change_nothing(coded, nurse, field, value, reason, message):
    encounter, _, _ = coded
    adm = Administration.objects.get(encounter=encounter, label="1")
    before = Administration.objects.filter(pk=adm.pk).values().get()
    with pytest.raises(ChartingError, match=message):
        charting_services.amend_administration(adm, field=field, new_value=value, reason=reason, actor=nurse)
    assert Administration.objects.filter(pk=adm.pk).values().get() == before
    assert not Amendment.objects.exists()


def test_a_draft_is_not_amended(make_encounter, nurse):
    adm = Administration.objects.get(encounter=make_encounter(1, signed=False))
    with pytest.raises(ChartingError, match="not signed"):
        charting_services.amend_administration(adm, field="dose_value", new_value="150", reason="transcription_error", actor=nurse)


def test_an_answer_whose_amendment_is_refused_saves_nothing(coded, coder, nurse):
    encounter, _, _ = coded
    adm = Administration.objects.get(encounter=encounter, label="1")
    query = services.open_query(encounter, question="Dose?", actor=coder, version=0)
    with pytest.raises(ChartingError):
        services.answer_query(query, answer="It was 150 mg", actor=nurse, amendment={"adm": adm, "field": "dose_value", "new_value": "150", "reason": None})
    query.refresh_from_db()
    assert query.status == "open" and not Amendment.objects.exists()
    with pytest.raises(CodingError, match="Write an answer"):
        services.answer_query(query, answer="  ", actor=nurse)


def test_admin_edits_the_override_reasons_and_reads_the_decisions(client, admin, coded, coder):
    from django.urls import reverse

    _, _, lines = coded
    services.change_line(lines["96365"], code="96365", units=2, modifiers="", reason="units_miscounted", actor=coder, version=None)
    client.force_login(admin)
    reason = OverrideReason.objects.get(code="other")
    response = client.post(reverse("admin:coding_overridereason_change", args=[reason.pk]), {"label": "Something else (say what)", "is_active": "", "position": "99"})
    assert response.status_code == 302
    reason.refresh_from_db()
    assert (reason.label, reason.is_active, reason.code) == ("Something else (say what)", False, "other")
    assert client.get(reverse("admin:coding_finalline_changelist")).status_code == 200
    assert client.post(reverse("admin:coding_overridereason_delete", args=[reason.pk]), {"post": "yes"}).status_code == 403
