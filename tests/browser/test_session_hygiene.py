"""SES-6 in a real browser: after log-out nothing of the chart is left in the
browser (storage, cookies) and Back shows the log-in page, not the patient."""

import pytest

from tests.browser.flows import log_in
from tests.factories import EncounterFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ses6_after_log_out_storage_is_empty_and_back_shows_the_log_in(live_server, page_factory, nurse, clinic):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic, family_name="ZZCANARY-4711", given_name="Vera", mrn="CAN-4711"))
    page = page_factory()
    log_in(page, live_server.url, "nurse")
    page.goto(f"{live_server.url}/nurse/encounters/{encounter.pk}/")
    assert "ZZCANARY-4711" in page.content()
    # The app itself writes nothing of the patient to the browser's storage: no
    # htmx history snapshots; only htmx's note of the current path (an opaque id).
    stored = page.evaluate("({local: {...localStorage}, session: {...sessionStorage}})")
    assert stored["local"] == {}
    assert set(stored["session"]) <= {"htmx-current-path-for-history"}
    assert "ZZCANARY-4711" not in str(stored)
    # ... and whatever else did (an extension, a later script) is cleared at log-out.
    page.evaluate("localStorage.setItem('probe', 'ZZCANARY-4711'); sessionStorage.setItem('probe', 'ZZCANARY-4711')")
    with page.expect_navigation():
        page.click("text=Log out")
    assert page.url.startswith(f"{live_server.url}/accounts/login/")
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.getItem('probe')") is None
    assert not [c for c in page.context.cookies() if "sessionid" in c["name"]]
    page.go_back()
    page.wait_for_load_state()
    assert "/accounts/login/" in page.url
    assert "ZZCANARY-4711" not in page.content()
    assert page.locator("#id_username").is_visible()


def test_cfg2_the_policy_blocks_inline_code_and_the_suite_sees_it(live_server, page_factory, nurse):
    """The CSP is enforced by the browser, and page_factory's listener reports
    every violation (so the other browser tests' silence means something)."""
    page = page_factory()
    log_in(page, live_server.url, "nurse")
    page.evaluate(
        """() => new Promise((done) => {
            document.addEventListener('securitypolicyviolation', () => setTimeout(done, 50), {once: true});
            const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.appendChild(s);
        })"""
    )
    assert page.evaluate("window.injected") is None  # the inline script did not run
    violations = list(page_factory.csp_violations)
    page_factory.csp_violations.clear()
    assert [v["directive"] for v in violations] == ["script-src-elem"]
