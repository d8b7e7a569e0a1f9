"""Coder review pages and exports, through the test client on PostgreSQL:
queue filters, counts and budgets; line overrides with reasons; the 409 on a
stale version; queries answered by the nurse; finalise; CSV and FHIR exports
(logged, clinic-scoped) and `manage.py export_lines`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle

from audit.models import AuditEvent
from charting.models import Administration, Amendment, AmendmentReason, Encounter
from coding import services
from coding.models import DocumentationQuery, EncounterReview, ExportLog, FinalLine, OverrideReason, SuggestedLine
from tests.factories import UserFactory, amending

from .test_views import QUEUE_QUERIES, REVIEW_QUERIES

pytestmark = pytest.mark.django_db


@pytest.fixture
def coder_client(client, coder):
    client.force_login(coder)
    return client


def review_url(encounter):
    return reverse("coding:review", kwargs={"encounter_id": encounter.pk})


def reason_pk(code="units_miscounted"):
    return OverrideReason.objects.get(code=code).pk


def coded(make_encounter, n=2, **kwargs):
    encounter = make_encounter(n, **kwargs)
    suggestion = services.suggest_for_encounter(encounter.pk)
    return encounter, {line.code: line for line in suggestion.lines.all()}


def finalised(make_encounter, coder, **kwargs):
    encounter, lines = coded(make_encounter, **kwargs)
    services.accept_all_lines(next(iter(lines.values())).suggestion, actor=coder)
    services.finalise_encounter(encounter, actor=coder, version=None)
    return encounter, lines


# --- queue ------------------------------------------------------------------------


def test_queue_filters_by_status_payer_dates_clinic_and_counts_each_status(coder_client, coder, make_encounter):
    new, _ = coded(make_encounter)
    final, _ = finalised(make_encounter, coder)
    query_open, _ = coded(make_encounter)
    services.open_query(query_open, question="Which site?", actor=coder, version=0)
    with amending():  # test arrangement on a signed encounter (REC-1)
        Encounter.objects.filter(pk=final.pk).update(payer="independence_blue_cross", date_of_service=dt.date(2025, 5, 1))

    response = coder_client.get(reverse("coding:queue"))
    assert [e.pk for e in response.context["encounters"]] == [final.pk, new.pk, query_open.pk]  # oldest first
    assert {value: n for value, _, n in response.context["status_counts"]} == {"new": 1, "in_review": 0, "query_open": 1, "final": 1}

    def rows(**params):
        return [e.pk for e in coder_client.get(reverse("coding:queue"), params).context["encounters"]]

    assert rows(status="final") == [final.pk]
    assert rows(status="query_open") == [query_open.pk]
    assert rows(payer="independence_blue_cross") == [final.pk]
    assert rows(date_from="2025-06-01") == [new.pk, query_open.pk]
    assert rows(date_to="2025-05-31") == [final.pk]
    assert rows(order="newest")[-1] == final.pk
    assert rows(clinic=str(final.clinic_id)) == [final.pk, new.pk, query_open.pk]
    # counts follow the other filters
    counts = coder_client.get(reverse("coding:queue"), {"date_from": "2025-06-01"}).context["status_counts"]
    assert {value: n for value, _, n in counts}["final"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "bogus"}, "Status: Unknown status “bogus”: pick one from the list."),
        ({"date_from": "31/12/2025"}, "From: Give the date as YYYY-MM-DD, e.g. 2026-03-10."),
        ({"date_to": "2025-02-30"}, "To: Give the date as YYYY-MM-DD, e.g. 2026-03-10."),
        ({"clinic": "999999"}, "Clinic: Unknown clinic: pick one of yours from the list."),
        ({"clinic": "x"}, "Clinic: Unknown clinic: pick one of yours from the list."),
        ({"payer": "<script>"}, "Payer: Unknown payer “&lt;script&gt;”: pick one from the list."),
        ({"order": "sideways"}, "Order: Unknown order “sideways”: pick one from the list."),
        ({"page": "-1"}, None),  # the paginator's own: the last page
    ],
)
def test_queue_bad_filters_say_so_and_are_not_applied_never_a_500(coder_client, make_encounter, params, message):
    coded(make_encounter)
    response = coder_client.get(reverse("coding:queue"), params)
    assert response.status_code == 200
    assert response.content.count(b'data-testid="queue-row"') == 1  # the bad filter is left out
    html = response.content.decode()
    if message is None:
        assert 'data-testid="filter-errors"' not in html
    else:
        assert 'data-testid="filter-errors"' in html and f"<li>{message}</li>" in html
        field = next(iter(params))
        assert f'data-testid="filter-error-{field}"' in html


def test_queue_from_after_to_says_so(coder_client, make_encounter):
    coded(make_encounter)
    response = coder_client.get(reverse("coding:queue"), {"date_from": "2025-06-30", "date_to": "2025-06-01"})
    assert response.status_code == 200
    assert "<li>From (2025-06-30) is after To (2025-06-01): no encounter can match.</li>" in response.content.decode()
    assert b'data-testid="queue-row"' not in response.content


def test_queue_is_paginated(coder_client, make_encounter, monkeypatch):
    from coding import views

    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)
    for _ in range(3):
        make_encounter(1)
    first = coder_client.get(reverse("coding:queue"))
    second = coder_client.get(reverse("coding:queue"), {"page": 2})
    assert first.content.count(b'data-testid="queue-row"') == 2 and b'data-testid="next-page"' in first.content
    assert second.content.count(b'data-testid="queue-row"') == 1


@pytest.mark.parametrize("n", [1, 50])
def test_queue_with_filters_keeps_its_budget_for_1_and_50_encounters(coder_client, coder, make_encounter, django_assert_max_num_queries, n):
    for i in range(n):
        encounter, lines = coded(make_encounter, 1)
        if i % 2:
            services.open_query(encounter, question="?", actor=coder, version=0)
    # The session records activity at most once a minute (3 queries; infusion_site/
    # middleware.py): on a slow machine, arranging 50 encounters takes longer than
    # that, so a request first makes the measured one's session save-free, as in use.
    coder_client.get(reverse("coding:queue"))
    with django_assert_max_num_queries(QUEUE_QUERIES):
        response = coder_client.get(reverse("coding:queue"), {"date_from": "2025-01-01", "payer": "medicare"})
    assert response.content.count(b'data-testid="queue-row"') == min(n, 25)


# --- review page ------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 50])
def test_review_with_decisions_queries_amendments_and_a_recode_keeps_its_budget(coder_client, coder, nurse, make_encounter, django_assert_max_num_queries, n):
    encounter, lines = coded(make_encounter, 1)
    suggestion = lines["96365"].suggestion
    SuggestedLine.objects.bulk_create(
        SuggestedLine(suggestion=suggestion, position=i, code="96372", units=1, modifiers=["59"], administrations=lines["96365"].administrations, rules=["R9"], explanation=f"injection {i}")
        for i in range(2, n + 1)
    )
    for line in suggestion.lines.all():
        services.change_line(line, code=line.code, units=line.units + 1, modifiers="", reason="units_miscounted", reason_text="", actor=coder, version=None)
    query = services.open_query(encounter, question="Dose?", actor=coder, version=None)
    adm = Administration.objects.get(encounter=encounter)
    services.answer_query(query, answer="150 mg", actor=nurse, amendment={"adm": adm, "field": "dose_value", "new_value": "150", "reason": "coder_query"})
    services.suggest_for_encounter(encounter.pk)  # the re-code after the amendment
    coder_client.get(reverse("coding:queue"))  # the session's activity is fresh (see the queue budget test)

    with django_assert_max_num_queries(REVIEW_QUERIES):
        response = coder_client.get(review_url(encounter))
    html = response.content.decode()
    assert html.count('data-testid="suggested-line"') == 1  # the new suggestion's line, undecided
    assert 'data-testid="suggestion-diff"' in html and 'data-testid="amendment"' in html and 'data-testid="query-answer"' in html


def test_change_without_a_reason_is_a_field_error_and_saves_nothing(coder_client, make_encounter):
    encounter, lines = coded(make_encounter)
    line = lines["96367"]
    response = coder_client.post(reverse("coding:change_line", args=[line.pk]), {"code": "96366", "units": "2", "modifiers": "", "reason": "", "version": "0"})
    assert response.status_code == 400
    assert 'data-testid="reason-error">A reason is required.<' in response.content.decode()
    assert not FinalLine.objects.exists()
    response = coder_client.post(reverse("coding:delete_line", args=[line.pk]), {"reason": "", "version": "0"})
    assert response.status_code == 400 and b"A reason is required." in response.content
    response = coder_client.post(reverse("coding:add_line", args=[encounter.pk]), {"add-code": "96366", "add-units": "1", "add-version": "0"})
    assert response.status_code == 400 and b"A reason is required." in response.content
    response = coder_client.post(reverse("coding:change_line", args=[line.pk]), {"code": "96366", "units": "2", "reason": reason_pk(), "version": "abc"})
    assert response.status_code == 400
    assert not FinalLine.objects.exists()


def test_change_then_page_shows_the_suggestion_and_the_final_line(coder_client, make_encounter):
    encounter, lines = coded(make_encounter)
    line = lines["96367"]
    response = coder_client.post(
        reverse("coding:change_line", args=[line.pk]), {"code": "96367", "units": "1", "modifiers": "59", "reason": reason_pk("modifier_missing"), "reason_text": "own bag", "version": "0"}
    )
    assert response.status_code == 302
    html = coder_client.get(review_url(encounter)).content.decode()
    assert 'data-testid="line-changed">Billed as <span class="font-monospace">96367×1-59</span>' in html
    assert "Modifier missing — “own bag”" in html
    line.refresh_from_db()
    assert line.modifiers == []  # the suggestion is kept as it was


def test_two_coders_saving_the_same_encounter_the_second_gets_409_with_what_changed(client, coder, make_encounter, clinic):
    encounter, lines = coded(make_encounter)
    second = Client()
    second.force_login(UserFactory(username="coder2", first_name="Sam", last_name="Second", roles=["coder"], clinics=[clinic]))
    client.force_login(coder)
    # both load the page at version 0
    assert 'name="version" value="0"' in client.get(review_url(encounter)).content.decode()
    assert 'name="version" value="0"' in second.get(review_url(encounter)).content.decode()

    first = client.post(reverse("coding:change_line", args=[lines["96365"].pk]), {"code": "96365", "units": "2", "reason": reason_pk(), "version": "0"})
    late = second.post(reverse("coding:change_line", args=[lines["96365"].pk]), {"code": "96365", "units": "3", "reason": reason_pk(), "version": "0"})

    assert first.status_code == 302
    assert late.status_code == 409
    html = late.content.decode()
    assert 'data-testid="conflict"' in html and "Cody Coder saved this encounter" in html
    assert "changed 96365x1 to 96365x2" in html
    assert 'name="version" value="1"' in html  # the page as it is now, to redo the change on
    assert list(FinalLine.objects.current().values_list("units", flat=True)) == [2]
    finalise = second.post(reverse("coding:finalise", args=[encounter.pk]), {"version": "0"})
    assert finalise.status_code == 409 and EncounterReview.objects.get(encounter=encounter).status == "in_review"


def test_htmx_accept_returns_the_line_with_the_new_version(coder_client, make_encounter):
    encounter, lines = coded(make_encounter)
    response = coder_client.post(reverse("coding:accept_line", args=[lines["96365"].pk]), {"version": "0"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["X-Review-Version"] == "1"
    stale = coder_client.post(reverse("coding:accept_line", args=[lines["96367"].pk]), {"version": "0"}, HTTP_HX_REQUEST="true")
    assert stale.status_code == 409 and stale["HX-Refresh"] == "true"


def test_finalise_twice_is_one_finalisation_and_locks_the_page(coder_client, make_encounter):
    encounter, lines = coded(make_encounter)
    coder_client.post(reverse("coding:accept_all", args=[encounter.pk]), {"suggestion": lines["96365"].suggestion_id, "version": "0"})
    version = EncounterReview.objects.get(encounter=encounter).version
    for _ in range(2):
        assert coder_client.post(reverse("coding:finalise", args=[encounter.pk]), {"version": str(version)}).status_code == 302
    assert AuditEvent.objects.filter(action="coding.encounter.finalised").count() == 1
    html = coder_client.get(review_url(encounter)).content.decode()
    assert 'data-testid="finalised"' in html and 'data-testid="change-form"' not in html and 'data-testid="finalise"' not in html
    response = coder_client.post(reverse("coding:change_line", args=[lines["96365"].pk]), {"code": "96365", "units": "2", "reason": reason_pk(), "version": str(version + 1)}, follow=True)
    assert "lines are locked" in response.content.decode()


def test_finalise_with_an_undecided_line_says_which(coder_client, make_encounter):
    encounter, _ = coded(make_encounter)
    response = coder_client.post(reverse("coding:finalise", args=[encounter.pk]), {"version": "0"}, follow=True)
    assert "Decide every suggested line first" in response.content.decode() and "96365x1" in response.content.decode()
    assert EncounterReview.objects.filter(encounter=encounter, status="final").count() == 0


@pytest.mark.parametrize("name", ["change_line", "delete_line", "accept_line"])
def test_another_clinics_coder_gets_404_on_line_actions(client, other_clinic_coder, make_encounter, name):
    _, lines = coded(make_encounter)
    client.force_login(other_clinic_coder)
    response = client.post(reverse(f"coding:{name}", args=[lines["96365"].pk]), {"code": "96365", "units": "2", "reason": reason_pk(), "version": "0"})
    assert response.status_code == 404 and not FinalLine.objects.exists()


@pytest.mark.parametrize("name", ["add_line", "open_query", "finalise", "accept_all"])
def test_another_clinics_coder_gets_404_on_encounter_actions(client, coder, other_clinic_coder, make_encounter, name):
    encounter, lines = coded(make_encounter)
    query = services.open_query(encounter, question="?", actor=coder, version=0)
    client.force_login(other_clinic_coder)
    data = {"add-code": "96366", "add-units": "1", "add-reason": reason_pk(), "add-version": "1", "query-question": "x", "query-version": "1", "version": "1"}
    assert client.post(reverse(f"coding:{name}", args=[encounter.pk]), data).status_code == 404
    assert client.post(reverse("coding:close_query", args=[query.pk]), {"version": "1"}).status_code == 404
    query.refresh_from_db()
    assert query.status == "open" and not FinalLine.objects.exists() and DocumentationQuery.objects.count() == 1


def test_nurses_cannot_touch_lines(nurse_client, make_encounter):
    encounter, lines = coded(make_encounter)
    assert nurse_client.post(reverse("coding:change_line", args=[lines["96365"].pk]), {"code": "96365", "units": "2", "reason": reason_pk(), "version": "0"}).status_code == 403
    assert nurse_client.post(reverse("coding:finalise", args=[encounter.pk]), {"version": "0"}).status_code == 403
    assert nurse_client.post(reverse("coding:export_download"), {"date_from": "2025-06-01", "date_to": "2025-06-30", "format": "csv"}).status_code == 403
    assert not FinalLine.objects.exists() and not ExportLog.objects.exists()


# --- the nurse's side -------------------------------------------------------------


def test_query_on_the_worklist_answered_with_an_amendment_on_the_encounter_page(coder_client, coder, nurse, make_encounter, client, django_capture_on_commit_callbacks):
    encounter, lines = coded(make_encounter)
    adm = Administration.objects.get(encounter=encounter, label="2")
    response = coder_client.post(reverse("coding:open_query", args=[encounter.pk]), {"query-question": "Was bag 2 stopped at 11:31?", "query-administration": str(adm.pk), "query-version": "0"})
    assert response.status_code == 302
    query = DocumentationQuery.objects.get()
    nurse_page = Client()
    nurse_page.force_login(nurse)
    worklist = nurse_page.get(reverse("charting:worklist")).content.decode()
    assert f'data-testid="open-query-{encounter.patient.mrn}"' in worklist and "Was bag 2 stopped at 11:31?" in worklist
    page = nurse_page.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
    assert f'data-testid="answer-form-{query.pk}"' in page

    # no reason for the amendment: a field error, nothing saved
    bad = nurse_page.post(
        reverse("charting:answer_query", kwargs={"pk": encounter.pk}),
        {"answer-query": query.pk, "answer-answer": "Stopped at 11:31", "answer-administration": adm.pk, "answer-field": "stopped_at", "answer-new_value": "2025-06-10 11:01"},
    )
    assert bad.status_code == 400 and b"A reason is required." in bad.content and not Amendment.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        ok = nurse_page.post(
            reverse("charting:answer_query", kwargs={"pk": encounter.pk}),
            {
                "answer-query": query.pk,
                "answer-answer": "Stopped at 11:31",
                "answer-administration": adm.pk,
                "answer-field": "stopped_at",
                "answer-new_value": "2025-06-10 11:31",
                "answer-reason": AmendmentReason.objects.get(code="coder_query").pk,
            },
        )
    assert ok.status_code == 302
    assert len(callbacks) == 1
    adm.refresh_from_db()
    assert adm.stopped_at == dt.datetime(2025, 6, 10, 15, 31, tzinfo=dt.UTC)  # 11:31 in New York
    page = nurse_page.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
    assert 'data-testid="amended-2"' in page and "<s>2025-06-10 11:01</s> → 2025-06-10 11:31" in page
    query.refresh_from_db()
    assert query.status == "answered" and query.amendments.count() == 1


def test_nurse_amends_a_signed_drug_from_its_card(nurse_client, make_encounter):
    encounter = make_encounter(1)
    adm = Administration.objects.get(encounter=encounter)
    url = reverse("charting:amend_administration", kwargs={"pk": adm.pk})
    prefix = f"amend-{adm.pk}"
    missing = nurse_client.post(url, {f"{prefix}-field": "dose_value", f"{prefix}-new_value": "150"}, HTTP_HX_REQUEST="true")
    assert missing.status_code == 200 and b"A reason is required." in missing.content and not Amendment.objects.exists()
    done = nurse_client.post(
        url, {f"{prefix}-field": "dose_value", f"{prefix}-new_value": "150", f"{prefix}-reason": AmendmentReason.objects.get(code="transcription_error").pk}, HTTP_HX_REQUEST="true"
    )
    assert done.status_code == 200 and b'data-testid="amended-1"' in done.content
    adm.refresh_from_db()
    assert adm.dose_value == 150 and Amendment.objects.get().old_value == "100"


# --- exports ----------------------------------------------------------------------


def _download(client, **data):
    response = client.post(reverse("coding:export_download"), {"date_from": "2025-06-01", "date_to": "2025-06-30", **data})
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body.decode()


def test_csv_export_matches_the_final_lines_is_logged_and_never_has_another_clinic(coder_client, coder, make_encounter, other_clinic, other_clinic_coder):
    encounter, lines = coded(make_encounter)
    services.change_line(lines["96367"], code="96367", units=1, modifiers="59", reason="modifier_missing", actor=coder, version=None)
    services.accept_line(lines["96365"], actor=coder)
    services.add_line(encounter, code="J1745", units=10, modifiers="JZ", reason="service_missing", actor=coder, version=None)
    services.finalise_encounter(encounter, actor=coder, version=None)
    coded(make_encounter)  # not final: not exported
    finalised(make_encounter, other_clinic_coder, in_clinic=other_clinic)

    response, text = _download(coder_client, format="csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = [(str(encounter.pk), encounter.patient.mrn, "2025-06-10", "11", f.code, " ".join(f.modifiers), str(f.units)) for f in FinalLine.objects.billed().filter(review__encounter=encounter).order_by("position")]
    assert [(r["encounter"], r["mrn"], r["date_of_service"], r["place_of_service"], r["code"], r["modifiers"], r["units"]) for r in rows] == expected
    assert [r["code"] for r in rows] == ["96365", "96367", "J1745"]
    log = ExportLog.objects.get()
    assert (log.requested_by, log.format, log.encounter_ids, log.line_count, log.source) == (coder, "csv", [str(encounter.pk)], 3, "web")
    assert AuditEvent.objects.filter(action="coding.lines.exported", patient_id=encounter.patient_id, actor=coder).count() == 1
    assert AuditEvent.objects.filter(action="coding.lines.exported").count() == 1


def test_export_of_another_clinic_is_a_form_error(coder_client, other_clinic):
    response, text = _download(coder_client, format="csv", clinic=str(other_clinic.pk))
    assert response.status_code == 400 and "Select a valid choice" in text and not ExportLog.objects.exists()
    response, text = _download(coder_client, format="csv", date_to="2025-05-01")
    assert response.status_code == 400 and "before the start date" in text


def test_fhir_export_is_a_valid_r4_bundle_of_charge_items(coder_client, coder, make_encounter):
    encounter, lines = finalised(make_encounter, coder)
    response, text = _download(coder_client, format="fhir")
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    bundle = Bundle.model_validate_json(text)  # fhir.resources validates the whole bundle
    assert bundle.type == "collection"
    items = [entry.resource for entry in bundle.entry]
    assert {item.get_resource_type() for item in items} == {"ChargeItem"}
    assert sorted(item.code.coding[0].code for item in items) == ["96365", "96367"]
    assert {item.subject.reference for item in items} == {f"Patient/{encounter.patient_id}"}
    assert {item.context.reference for item in items} == {f"Encounter/{encounter.pk}"}
    assert all(item.quantity.value == 1 and str(item.occurrenceDateTime) == "2025-06-10" for item in items)
    assert json.loads(text)["resourceType"] == "Bundle"
    assert ExportLog.objects.get().format == "fhir"


def test_export_lines_command_writes_csv_and_fhir_to_stdout(coder, make_encounter, clinic):
    encounter, _ = finalised(make_encounter, coder)
    out = io.StringIO()
    call_command("export_lines", "--from", "2025-06-10", "--to", "2025-06-10", "--clinic", str(clinic.pk), "--format", "csv", stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0][:5] == ["encounter", "mrn", "date_of_service", "place_of_service", "code"] and len(rows) == 3
    out = io.StringIO()
    call_command("export_lines", "--from", "2025-06-01", "--to", "2025-06-30", "--format", "fhir", stdout=out)
    assert len(Bundle.model_validate_json(out.getvalue()).entry) == 2
    logs = list(ExportLog.objects.order_by("pk").values_list("source", "requested_by", "encounter_ids"))
    assert logs == [("command", None, [str(encounter.pk)]), ("command", None, [str(encounter.pk)])]


@pytest.mark.parametrize("args", [["--from", "June", "--to", "2025-06-30", "--format", "csv"], ["--from", "2025-06-30", "--to", "2025-06-01", "--format", "csv"], ["--from", "2025-06-01", "--to", "2025-06-30", "--clinic", "999999", "--format", "csv"]])
def test_export_lines_command_bad_arguments_exit_2(args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as exc:
        call_command("export_lines", *args)
    assert exc.value.returncode == 2 and not ExportLog.objects.exists()
