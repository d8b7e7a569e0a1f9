"""The nurse walking skeleton in a real browser: open, site, drug, Start, Stop, Sign (htmx on)."""

import pytest

from charting import services
from tests.factories import PASSWORD, DrugFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_nurse_charts_and_signs_an_encounter(live_server, page_factory, nurse, clinic, monkeypatch):
    # The coding task is the coder side's; here we only check signing asks for it.
    enqueued = []
    monkeypatch.setattr(services, "_enqueue_suggestion", enqueued.append)
    DrugFactory(name="infliximab", admin_family="chemo_complex")
    DrugFactory(name="doubtful", is_verified=False)
    PatientFactory(clinic=clinic, family_name="Zed", given_name="Ada", mrn="ZZ1")
    page = page_factory()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live_server.url + "/accounts/login/")
    page.fill("#id_username", "nurse")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.select_option('[data-testid="open-patient"]', label="Zed, Ada — MRN ZZ1")
    page.click('[data-testid="open-encounter"]')
    page.click('[data-testid="add-site-toggle"]')
    page.select_option('[data-testid="site-kind"]', "peripheral_iv")
    page.fill('[data-testid="site-location"]', "left forearm")
    page.click('[data-testid="add-site-submit"]')
    page.wait_for_selector('[data-testid="site-A"]')
    page.click('[data-testid="add-administration-toggle"]')
    page.select_option('[data-testid="adm-drug"]', label="infliximab")
    page.select_option('[data-testid="adm-route"]', "iv_infusion")
    page.select_option('[data-testid="adm-access-site"]', index=1)
    page.fill('[data-testid="adm-dose-value"]', "500")
    page.select_option('[data-testid="adm-dose-unit"]', "mg")
    page.click('[data-testid="add-administration-submit"]')
    page.click('[data-testid="start-infliximab"]')
    page.wait_for_selector('[data-testid="stop-infliximab"]')
    page.screenshot(path="/tmp/chairside-smoke-running.png")
    page.click('[data-testid="stop-infliximab"]')
    page.wait_for_selector('[data-testid="administration-infliximab"][data-state="stopped"]')
    page.click('[data-testid="correct-infliximab"]')
    page.screenshot(path="/tmp/chairside-smoke-stopped.png", full_page=True)
    page.click('[data-testid="sign-encounter"]')
    page.wait_for_selector('text=Encounter signed')
    page.screenshot(path="/tmp/chairside-smoke-signed.png", full_page=True)
    page.goto(live_server.url + "/nurse/")
    page.screenshot(path="/tmp/chairside-smoke-worklist.png", full_page=True)
    assert errors == []
    assert len(enqueued) == 1
