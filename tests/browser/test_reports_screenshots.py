"""The admin's reports in a real browser, under a strict Content-Security-Policy,
with a screenshot of each saved to docs/screenshots/ (linked from the README).

The policy (no inline script or style) is the one issue #7 brings with
django-csp; it is added to every report response here, so a plot that needs an
inline style, or a page that needs an inline script, shows up as a violation.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from django.apps import apps

from audit.models import AuditEvent
from audit.services import write
from tests.browser.flows import log_in
from tests.reports.seed import at, decide_bulk, more_rows, seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# img-src data:: Bootstrap's own CSS draws the <select> arrow as a data: SVG.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
QUERY = "?date_from=2025-06-01&date_to=2025-06-30"

# page, what must be on it, screenshot file
PAGES = (
    ("", "Recent exports", "reports-index.png"),
    ("completeness/", "Signing and flags by clinic and nurse", "report-completeness.png"),
    ("coding/", "Code mix over time", "report-coding.png"),
    ("timing/", "Infusions just above a threshold", "report-timing.png"),
    ("vials/", "Opened vs billed per drug, NDC and lot", "report-vials.png"),
    ("access/", "Chart access log", "report-access-log.png"),
)


def _with_csp(route):
    response = route.fetch()
    route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})


def test_admin_sees_every_report_under_a_strict_csp(live_server, page_factory, clinic, other_clinic, admin, coder):
    importlib.import_module("coding.migrations.0008_seed_override_reasons").seed(apps, None)  # flushed by the transactional test before
    data = seed(clinic, other_clinic)
    for n, day in ((12, 9), (13, 16), (14, 23)):
        more_rows(clinic, n, day=day)
    decide_bulk(coder, 16)  # the coding page's override rate, table and plot
    p1, p2, _ = data["patients"]
    for who, action, patient, when in (
        (data["nora"], "charting.encounter.viewed", p1, at(2, 9, 5)),
        (data["nora"], "charting.administration.stopped", p1, at(2, 9, 16)),
        (data["nina"], "coding.encounter.viewed", p2, at(4, 10, 30)),
    ):
        # Audit rows are append-only (AUD-4): made with their time, on the chain.
        write(AuditEvent(actor=who, action=action, object_type="charting.encounter", object_id="demo", patient_id=patient.pk, remote_addr="10.0.0.7", at=when))

    page = page_factory((1280, 900))
    problems: list[str] = []
    # htmx inserts its indicator <style> at load (base.html, every page; issue #7
    # turns that off with htmx.config.includeIndicatorStyles): not this page's markup.
    page.on("console", lambda m: problems.append(f"{page.url}: {m.text}") if m.type == "error" and "htmx.min.js" not in m.location.get("url", "") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.route("**/reports/**", _with_csp)
    log_in(page, live_server.url, "admin")
    page.wait_for_load_state()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path, text, filename in PAGES:
        response = page.goto(f"{live_server.url}/reports/{path}{QUERY}")
        assert response.status == 200, path
        assert response.headers["content-security-policy"] == CSP
        page.wait_for_selector(f"text={text}")
        if path in ("completeness/", "coding/", "timing/"):
            plot = page.locator("svg.report-plot")
            assert plot.count() == (2 if path == "coding/" else 1)  # coding: the code mix, the overrides per reason
            plot = plot.first
            box = plot.bounding_box()
            assert box["width"] > 600 and box["height"] > 150, (path, box)
            # the bars keep their colour as SVG attributes
            assert page.locator('svg.report-plot path[fill="#0d6efd"], svg.report-plot path[fill="#198754"]').count() > 0
        page.screenshot(path=str(SCREENSHOTS / filename), full_page=True)
    assert page.locator("text=Hilltop").count() == 0  # another clinic's data never shows
    # an export from the page is a download of the table
    page.goto(f"{live_server.url}/reports/vials/{QUERY}")
    with page.expect_download() as download:
        page.click('[data-testid="csv-mismatches"]')
    text = Path(download.value.path()).read_text()
    assert text.startswith("Date of service,Clinic,MRN") and "RPT-0002" in text
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
