"""Accessibility (issue #8): axe-core finds no serious or critical violation of
WCAG 2.0/2.1 A and AA, nor of axe's best practices, on the pages each person
works in, with a realistic chart behind them; and the nurse can start a drug
from the keyboard, seeing where the focus is.

Pages: the log-in page; the nurse's worklist (today's encounters, a coder's
question, an earlier day with open flags) and three encounter pages (today's
chart with an access site, a running drug, a paused one, a stopped drug with
its vials and waste, a drug not started yet, open "ready to bill" items and a
flag; a stopped drug with nothing charted, which offers "Sign anyway";
yesterday's signed chart with the coder's open question and its answer form);
the coder's queue (two pages: one encounter coded, one pending), review page
(suggested lines) and export page; the admin's reports index. At 1024x768
(tablet, landscape); the first encounter page also at 768x1024 (portrait).
Every `<details>` is opened before the check, so the forms folded away in them
(add a site, add a drug, correct a time, vials, waste, amend...) are checked
too: axe skips what is not rendered.

How axe gets into the page. axe-core is an npm package (package.json) that is
never served: it is not in STATICFILES_DIRS, and no template refers to it. The
test reads node_modules/axe-core/axe.min.js from disk and evaluates it with
`page.evaluate`, which runs it through the DevTools protocol (Runtime.evaluate,
as the browser's console does). The page's Content-Security-Policy governs the
page's own scripts, not the debugger's, so nothing is loosened: no
`bypass_csp`, no nonce, and `page_factory` still fails the test on any CSP
violation (CFG-2), here as in every browser test. (An injected `<script>`
element, `page.add_script_tag`, would be refused by `script-src 'self'
'nonce-...'`.)

A failure prints every violation: page, viewport, rule id, impact, help text
and the CSS selectors of the nodes. Moderate and minor findings are printed
(`pytest -s`) but do not fail the test.
"""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from charting import services as charting
from charting.models import AccessSite, Administration, Encounter
from coding import services as coding
from tests.browser.flows import log_in
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE_JS = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0 and 2.1, levels A and AA, and axe's best practices (landmarks,
# headings, unique names...): the best-practice rules found nothing here we
# could not fix, so they stay on.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = ("serious", "critical")
TABLET = (1024, 768)
PORTRAIT = (768, 1024)

_RUN_AXE = """async (tags) => {
  document.querySelectorAll('details').forEach((d) => { d.open = true; });
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return {
    rules: result.passes.length + result.violations.length + result.incomplete.length,
    violations: result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({target: n.target.join(' '), html: n.html.slice(0, 160)})),
    })),
  };
}"""


class Axe:
    """Runs axe on pages and keeps every violation found, with where it was."""

    def __init__(self):
        if not AXE_JS.exists():
            pytest.fail(f"{AXE_JS} is missing: `make install` (npm ci) installs axe-core from package.json.")
        self.source = AXE_JS.read_text()
        self.found: list[dict] = []

    def check(self, page, what: str) -> None:
        """Check the page as it is now (details opened); `what` names it in the report."""
        page.wait_for_load_state("load")
        if not page.evaluate("typeof window.axe === 'object'"):
            page.evaluate(self.source)
        result = page.evaluate(_RUN_AXE, AXE_TAGS)
        assert result["rules"] >= 10, f"axe ran (almost) no rules on {what}: {result}"
        size = page.viewport_size
        for v in result["violations"]:
            self.found.append({**v, "page": f"{what} at {size['width']}x{size['height']}"})

    def report(self, violations: list[dict]) -> str:
        lines = []
        for v in violations:
            lines.append(f"[{v['impact']}] {v['id']} on {v['page']}: {v['help']}")
            lines.extend(f"    {n['target']}    {n['html']}" for n in v["nodes"])
        return "\n".join(lines)

    def assert_clean(self) -> None:
        """Fails on a serious or critical violation; prints the others."""
        blocking = [v for v in self.found if v["impact"] in BLOCKING]
        others = [v for v in self.found if v["impact"] not in BLOCKING]
        print("axe, moderate and minor (not failing):\n" + (self.report(others) or "none"))
        assert not blocking, "axe found serious or critical violations:\n" + self.report(blocking)


@pytest.fixture
def axe():
    return Axe()


def _seed_reasons() -> None:
    """The override and amendment reasons the data migrations seed (a transactional
    test's database was flushed after the test before, seeds included)."""
    importlib.import_module("coding.migrations.0008_seed_override_reasons").seed(apps, None)
    importlib.import_module("charting.migrations.0006_seed_amendment_reasons").seed(apps, None)


def _today_chart(clinic, nurse) -> Encounter:
    """Today's chart at the chair: site A; infliximab running; famotidine
    paused; ondansetron stopped with its vials and "none wasted";
    dexamethasone not started and without a dose (an open "ready to bill"
    item and a flag)."""
    patient = PatientFactory(clinic=clinic, family_name="Quill", given_name="Hester", mrn="A11Y-1")
    encounter = charting.open_encounter(patient, clinic=clinic, setting="office", actor=nurse)
    site = charting.add_access_site(encounter, kind=AccessSite.Kind.PERIPHERAL_IV, location="right antecubital", gauge=22, actor=nurse)
    infliximab = DrugFactory(name="infliximab", hcpcs="J1745", admin_family="chemo_complex")
    ondansetron = DrugFactory(name="ondansetron", hcpcs="J2405", billing_unit_value=Decimal("1"), admin_family="therapeutic")
    famotidine = DrugFactory(name="famotidine", hcpcs="", billing_unit_value=None, billing_unit_unit="", admin_family="therapeutic")
    dexamethasone = DrugFactory(name="dexamethasone", hcpcs="J1100", billing_unit_value=Decimal("1"), admin_family="therapeutic")

    def add(drug, dose, route="iv_infusion"):
        return charting.add_administration(encounter, drug=drug, route=route, access_site=site, dose_value=dose, dose_unit="mg" if dose else "", purpose="treatment", actor=nurse)

    given = add(ondansetron, Decimal("8"), route="iv_push")
    charting.start_administration(given, actor=nurse)
    charting.stop_administration(given, actor=nurse)
    charting.record_vials(given, ndc="0409-4755-03", lot="ON2291", expiry=None, container_type="single_dose", size_value=Decimal("4"), size_unit="mg", count=2, actor=nurse)
    charting.confirm_waste(given, wasted_value=Decimal("0"), wasted_unit="mg", actor=nurse)
    running = add(infliximab, Decimal("400"))
    charting.start_administration(running, actor=nurse)
    paused = add(famotidine, Decimal("20"))
    charting.start_administration(paused, actor=nurse)
    charting.pause_administration(paused, reason="patient to the restroom", actor=nurse)
    add(dexamethasone, None)
    charting.refresh_flags(encounter.pk, now=timezone.now())
    return encounter


def _stopped_without_vials(clinic, nurse) -> Encounter:
    """Today's second chart: one drug given and stopped, nothing else charted
    (the panel offers "Sign anyway")."""
    patient = PatientFactory(clinic=clinic, family_name="Marsh", given_name="Ivo", mrn="A11Y-2")
    encounter = charting.open_encounter(patient, clinic=clinic, setting="office", actor=nurse)
    site = charting.add_access_site(encounter, kind=AccessSite.Kind.PORT, location="right chest", actor=nurse)
    drug = DrugFactory(name="iron sucrose", hcpcs="J1756", billing_unit_value=Decimal("1"), admin_family="therapeutic")
    adm = charting.add_administration(encounter, drug=drug, route="iv_infusion", access_site=site, dose_value=Decimal("200"), dose_unit="mg", purpose="treatment", actor=nurse)
    charting.start_administration(adm, actor=nurse)
    charting.stop_administration(adm, actor=nurse)
    return encounter


def _signed_yesterday(clinic, nurse, coder) -> Encounter:
    """Yesterday's signed chart: two 60-minute therapeutic infusions, coded, with
    the coder's open question about the second (and open flags: no vials)."""
    patient = PatientFactory(clinic=clinic, family_name="Okafor", given_name="Ada", mrn="A11Y-3")
    now = timezone.now()
    encounter = EncounterFactory(patient=patient, date_of_service=timezone.localdate(now, clinic.tz) - dt.timedelta(days=1), status="signed", signed_by=nurse, signed_at=now - dt.timedelta(hours=20))
    site = AccessSite.objects.create(encounter=encounter, label="A", kind=AccessSite.Kind.PERIPHERAL_IV, location="left forearm", gauge=20)
    start = now - dt.timedelta(hours=26)
    for i, name in enumerate(("tocilizumab", "vedolizumab")):
        drug = DrugFactory(name=name, hcpcs="", billing_unit_value=None, billing_unit_unit="", admin_family="therapeutic")
        AdministrationFactory(encounter=encounter, label=str(i + 1), drug=drug, access_site=site, dose_value=Decimal(300), started_at=start + dt.timedelta(minutes=61 * i), stopped_at=start + dt.timedelta(minutes=61 * i + 60))
    coding.suggest_for_encounter(encounter.pk)
    second = Administration.objects.get(encounter=encounter, label="2")
    coding.open_query(encounter, question="Did bag 2 run longer than 60 minutes?", administration=second, actor=coder, version=None)
    charting.refresh_flags(encounter.pk, now=now)
    return encounter


def test_nurse_pages_have_no_serious_violations(live_server, page_factory, axe, clinic, nurse, coder):
    _seed_reasons()
    today = _today_chart(clinic, nurse)
    to_sign = _stopped_without_vials(clinic, nurse)
    signed = _signed_yesterday(clinic, nurse, coder)
    page = page_factory(TABLET)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(live_server.url + "/accounts/login/")
    axe.check(page, "log-in page")
    log_in(page, live_server.url, "nurse")
    page.goto(live_server.url + "/nurse/")
    page.wait_for_selector('[data-testid="open-query-A11Y-3"]')
    page.wait_for_selector('[data-testid="flagged-A11Y-3"]')
    axe.check(page, "worklist")

    page.goto(f"{live_server.url}/nurse/encounters/{today.pk}/")
    page.wait_for_selector('[data-testid="administration-infliximab"][data-state="running"]')
    page.wait_for_selector('[data-testid="administration-famotidine"][data-state="paused"]')
    page.wait_for_selector('[data-testid="administration-ondansetron"][data-state="stopped"] [data-testid="vial-list-ondansetron"]')
    page.wait_for_selector('[data-testid="flag-dexamethasone"]')
    page.wait_for_selector('[data-testid="ready-blocking"]')
    axe.check(page, "encounter (running, stopped, not started)")
    page.set_viewport_size({"width": PORTRAIT[0], "height": PORTRAIT[1]})
    page.reload()
    axe.check(page, "encounter (running, stopped, not started)")
    page.set_viewport_size({"width": TABLET[0], "height": TABLET[1]})

    page.goto(f"{live_server.url}/nurse/encounters/{to_sign.pk}/")
    page.wait_for_selector('[data-testid="sign-anyway"]')
    axe.check(page, "encounter (sign anyway)")

    page.goto(f"{live_server.url}/nurse/encounters/{signed.pk}/")
    page.wait_for_selector('[data-testid="answer-text"]')
    axe.check(page, "signed encounter (open question)")

    axe.assert_clean()
    assert errors == []


def test_coder_and_admin_pages_have_no_serious_violations(live_server, page_factory, axe, monkeypatch, clinic, nurse, coder, admin):
    _seed_reasons()
    signed = _signed_yesterday(clinic, nurse, coder)
    # A second signed encounter, not coded yet, on a page of its own: the
    # queue shows "coding pending" and its pagination.
    EncounterFactory(patient=PatientFactory(clinic=clinic, family_name="Lund", given_name="Per", mrn="A11Y-4"), status="signed", signed_by=nurse, signed_at=timezone.now())
    monkeypatch.setattr("coding.views.QUEUE_PAGE_SIZE", 1)
    desk = page_factory(TABLET)
    errors: list[str] = []
    desk.on("pageerror", lambda e: errors.append(str(e)))

    log_in(desk, live_server.url, "coder")
    desk.goto(live_server.url + "/coder/")
    desk.wait_for_selector('[data-testid="queue-row"]')
    desk.wait_for_selector('[data-testid="pagination"]')
    axe.check(desk, "coder queue")
    desk.click('[data-testid="next-page"]')
    desk.wait_for_selector('[data-testid="coding-pending"]')
    axe.check(desk, "coder queue, page 2")
    desk.goto(f"{live_server.url}/coder/encounters/{signed.pk}/")
    desk.wait_for_selector('[data-testid="suggested-line"]')
    axe.check(desk, "coder review")
    desk.goto(live_server.url + "/coder/export/")
    axe.check(desk, "export")

    office = page_factory(TABLET)
    office.on("pageerror", lambda e: errors.append(str(e)))
    log_in(office, live_server.url, "admin")
    office.goto(live_server.url + "/reports/")
    office.wait_for_selector('[data-testid="report-completeness"]')
    axe.check(office, "reports index")

    axe.assert_clean()
    assert errors == []


def test_keyboard_tab_reaches_start_and_enter_starts_the_drug(live_server, page_factory, clinic, nurse):
    """Tab from the top of the chart reaches the not-started drug's Start
    button, which shows where the focus is (an outline or a focus ring), and
    Enter starts the drug (htmx swaps the card); the focus stays on the new
    card, and the next Tab reaches its Pause reason."""
    _seed_reasons()
    encounter = _today_chart(clinic, nurse)
    page = page_factory(TABLET)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")
    page.goto(f"{live_server.url}/nurse/encounters/{encounter.pk}/")
    start = page.locator('[data-testid="start-dexamethasone"]')
    start.wait_for()
    for _ in range(200):
        page.keyboard.press("Tab")
        if start.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Start button of dexamethasone")
    ring = start.evaluate("el => { const s = getComputedStyle(el); return {outline: s.outlineStyle, width: s.outlineWidth, shadow: s.boxShadow}; }")
    assert (ring["outline"] != "none" and ring["width"] != "0px") or ring["shadow"] != "none", ring
    page.keyboard.press("Enter")
    card = '[data-testid="administration-dexamethasone"]'
    page.wait_for_selector(f'{card}[data-state="running"]')
    adm = Administration.objects.get(encounter=encounter, drug__name="dexamethasone")
    assert adm.started_at is not None
    # The Start button went with the old card: the focus stays on the new one
    # (static/js/chart.js), and Tab goes on to its controls, not to the top of the page.
    in_card = f"() => document.activeElement.closest('{card}') !== null"
    page.wait_for_function(in_card)
    page.keyboard.press("Tab")
    assert page.evaluate(in_card)
    assert page.evaluate("document.activeElement.dataset.testid") == "pause-reason-dexamethasone"
    assert errors == []


def test_axe_core_is_never_served():
    """axe-core is installed by npm for this test only: no static-files finder
    offers any of its files (STATICFILES_DIRS names htmx's and Bootstrap's
    dist folders, never node_modules as a whole)."""
    from django.contrib.staticfiles.finders import get_finders

    served = [path for finder in get_finders() for path, _ in finder.list([])]
    assert served and not [path for path in served if "axe" in path.lower()]
