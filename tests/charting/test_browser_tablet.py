"""Issue #8 on a tablet, landscape and portrait: the live timer ticks, the next
billing threshold shows, pause / resume, a stop undone inside the window, a
site check; 44 px tap targets, no horizontal scroll, zero CSP violations
(page_factory fails the test on any)."""

import pytest

from charting.models import AccessSiteCheck, Administration
from tests.browser.flows import log_in
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _small_targets(page, scope: str) -> list:
    """Visible buttons, links, toggles and inputs under `scope` smaller than 44x44 CSS px."""
    return page.eval_on_selector_all(
        f"{scope} button, {scope} summary, {scope} a, {scope} input:not([type=hidden]), {scope} select",
        """els => els.filter(e => e.offsetParent !== null).map(e => {
             const r = e.getBoundingClientRect();
             const target = e.matches('input[type=checkbox], input[type=radio]') ? (e.closest('.form-check') || e).getBoundingClientRect() : r;
             return {what: e.outerHTML.slice(0, 80), w: target.width, h: target.height};
           }).filter(b => b.w < 44 || b.h < 44)""",
    )


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)], ids=["landscape", "portrait"])
def test_nurse_runs_a_drug_on_a_tablet(live_server, page_factory, nurse, clinic, settings, viewport):
    settings.CHAIRSIDE_UNDO_SECONDS = 10
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic, family_name="Tab", given_name="Let", mrn="TAB1"))
    site = AccessSiteFactory(encounter=encounter, label="A")
    AdministrationFactory(encounter=encounter, access_site=site, label="infliximab", drug=DrugFactory(name="infliximab", admin_family="chemo_complex"))
    page = page_factory(viewport=viewport)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")
    page.goto(f"{live_server.url}/nurse/encounters/{encounter.pk}/")
    card = '[data-testid="administration-infliximab"]'

    # Start by keyboard: focus the button, Enter.
    page.focus('[data-testid="start-infliximab"]')
    page.keyboard.press("Enter")
    page.wait_for_selector(f'{card}[data-state="running"]')
    timer = page.locator('[data-testid="timer-infliximab"]')
    first = timer.inner_text()
    page.wait_for_function("t => document.querySelector('[data-testid=timer-infliximab]').textContent !== t", arg=first, timeout=5000)
    assert page.locator('[data-testid="next-threshold-infliximab"]').inner_text().startswith("96413 at 16 min — ")
    assert "to go" in page.locator('[data-testid="next-threshold-infliximab"]').inner_text()
    assert page.locator('[data-testid="threshold-assumption-infliximab"]').is_visible()

    page.fill('[data-testid="pause-reason-infliximab"]', "Pump alarm")
    page.click('[data-testid="pause-infliximab"]')
    page.wait_for_selector(f'{card}[data-state="paused"]')
    paused_at = page.locator('[data-testid="timer-infliximab"]').inner_text()
    page.wait_for_timeout(1500)
    assert page.locator('[data-testid="timer-infliximab"]').inner_text() == paused_at  # a paused drug's timer stands still
    page.click('[data-testid="resume-infliximab"]')
    page.wait_for_selector(f'{card}[data-state="running"]')

    page.click('[data-testid="stop-infliximab"]')
    page.wait_for_selector(f'{card}[data-state="stopped"]')
    undo = page.locator('[data-testid="undo-infliximab"]')
    assert undo.is_visible()
    box = undo.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44
    undo.click()
    page.wait_for_selector(f'{card}[data-state="running"]')
    page.wait_for_selector('[data-testid="notice-infliximab"]')
    assert Administration.objects.get(label="infliximab").stopped_at is None

    # Every visible tap target in the drug card is at least 44x44.
    assert _small_targets(page, card) == []
    assert _no_horizontal_scroll(page)

    page.select_option('[data-testid="site-check-finding-A"]', "patent")
    page.click('[data-testid="site-check-submit-A"]')
    page.wait_for_selector('[data-testid="site-checked-A"]:has-text("checked 0 min ago")')
    assert AccessSiteCheck.objects.filter(site=site, checked_by=nurse).count() == 1
    assert _small_targets(page, '[data-testid="site-A"]') == []
    assert _no_horizontal_scroll(page)
    page.screenshot(path=f"/tmp/chairside-tablet-{viewport[0]}x{viewport[1]}.png", full_page=True)
    assert errors == []
