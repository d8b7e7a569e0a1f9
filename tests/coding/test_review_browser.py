"""The review workflow in a real browser, with a real Celery worker re-coding.

Coder: filters the queue, overrides a line with a reason, sends a query about
the second bag. Nurse: sees the query on her worklist, answers it and amends
the stop time. The worker re-codes; the coder sees what changed between the
old and new suggestion, accepts, finalises and downloads the CSV export.
"""

from __future__ import annotations

import csv
import io
import time

import pytest

from charting.models import Administration
from coding import services
from coding.models import EncounterReview, FinalLine, Suggestion
from tests.browser.flows import log_in

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_for_new_suggestion(encounter, old_pk, seconds=45):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = Suggestion.objects.current().filter(encounter=encounter).first()
        if current is not None and current.pk != old_pk:
            return current
        time.sleep(0.3)
    pytest.fail(f"the encounter was not re-coded within {seconds} s")


def test_coder_overrides_and_queries_nurse_amends_coder_sees_diff_finalises_and_exports(live_server, page_factory, celery_worker_process, review_reasons, make_encounter, nurse, coder):
    encounter = make_encounter(2)  # 96365 + 96367, 60 minutes each
    first = services.suggest_for_encounter(encounter.pk)
    make_encounter(1, signed=False)
    errors = []

    # --- coder: filter, override with a reason, ask ---------------------------
    desk = page_factory((1280, 900))
    desk.on("pageerror", lambda e: errors.append(str(e)))
    log_in(desk, live_server.url, "coder")
    desk.goto(live_server.url + "/coder/")
    desk.select_option('[data-testid="filter-status"]', "new")
    desk.fill('[data-testid="filter-date-from"]', "2025-06-01")
    with desk.expect_navigation():
        desk.click('[data-testid="filter-apply"]')
    assert desk.locator('[data-testid="queue-row"]').count() == 1
    assert desk.inner_text('[data-testid="count-new"]') == "1"
    with desk.expect_navigation():
        desk.click('[data-testid="queue-row"] a')

    line = desk.locator('[data-testid="suggested-line"][data-code="96367"]')
    line.locator('[data-testid="change-toggle"]').click()
    line.locator('[data-testid="change-modifiers"]').fill("59")
    line.locator('[data-testid="change-reason"]').select_option(label="Modifier missing")
    line.locator('[data-testid="change-note"]').fill("own bag on a second line")
    with desk.expect_navigation():
        line.locator('[data-testid="change-submit"]').click()
    assert "96367×1-59" in desk.inner_text('[data-testid="suggested-line"][data-code="96367"] [data-testid="line-changed"]')
    assert FinalLine.objects.get(action="change").reason.code == "modifier_missing"

    adm = Administration.objects.get(encounter=encounter, label="2")
    desk.click('[data-testid="query-toggle"]')
    desk.select_option('[data-testid="query-administration"]', str(adm.pk))
    desk.fill('[data-testid="query-question"]', "Did bag 2 run longer than 60 minutes?")
    with desk.expect_navigation():
        desk.click('[data-testid="query-submit"]')
    assert desk.get_attribute('[data-testid="review-status"]', "data-status") == "query_open"

    # --- nurse: answer and amend ----------------------------------------------
    chair = page_factory((1024, 768))
    chair.on("pageerror", lambda e: errors.append(str(e)))
    log_in(chair, live_server.url, "nurse")
    with chair.expect_navigation():
        chair.click(f'[data-testid="open-query-{encounter.patient.mrn}"]')
    form = chair.locator('[data-testid^="answer-form-"]')
    form.locator('[data-testid="answer-text"]').fill("Yes: the pump log says it stopped at 11:32 (91 minutes).")
    form.locator('[data-testid="answer-administration"]').select_option(str(adm.pk))
    form.locator('[data-testid="answer-field"]').select_option("stopped_at")
    form.locator('[data-testid="answer-new-value"]').fill("2025-06-10 11:32")
    form.locator('[data-testid="answer-reason"]').select_option(label="Answer to a coder's query")
    form.locator('[data-testid="answer-submit"]').click()
    chair.wait_for_selector("text=Answer sent to the coder")
    chair.wait_for_selector('[data-testid="amended-2"]')

    # --- the worker re-codes; the coder sees the diff, finalises, exports ------
    current = _wait_for_new_suggestion(encounter, first.pk)
    assert sorted(line.code for line in current.lines.all()) == ["96365", "96366", "96367"]
    desk.reload()
    diff = desk.inner_text('[data-testid="suggestion-diff"]')
    assert "+ 96366×1" in diff
    with desk.expect_navigation():
        desk.click('[data-testid="accept-all"]')
    with desk.expect_navigation():
        desk.click('[data-testid="finalise"]')
    desk.wait_for_selector('[data-testid="finalised"]')
    assert EncounterReview.objects.get(encounter=encounter).status == "final"

    desk.goto(live_server.url + "/coder/export/")
    desk.fill('[data-testid="export-from"]', "2025-06-01")
    desk.fill('[data-testid="export-to"]', "2025-06-30")
    desk.select_option('[data-testid="export-format"]', "csv")
    with desk.expect_download() as download:
        desk.click('[data-testid="export-download"]')
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert sorted(r["code"] for r in rows) == ["96365", "96366", "96367"]
    assert {r["mrn"] for r in rows} == {encounter.patient.mrn}
    assert errors == []
