"""Persona fixtures, so permission tests read like stories.

The nurse and the coder work in `clinic`; `other_clinic_nurse` works in
`other_clinic` only. All share the password `tests.factories.PASSWORD`.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import ClinicFactory, UserFactory, confirmed_device


@pytest.fixture(autouse=True)
def _force_login_passes_two_factor(monkeypatch):
    """AC-9 for tests: `client.force_login(user)` skips authentication by design
    (no password, no axes), so it skips the TOTP step as well: for a user who
    needs two-factor log-in (coder, admin, staff, an enrolled nurse) it also
    gives the user a confirmed TOTP device and marks the session verified with
    it, as the real log-in's second step does. The real path (password, then a
    code) is tested in tests/security/test_authentication.py and by
    tests/browser/flows.py `log_in`."""
    from django.test.client import ClientMixin

    original = ClientMixin.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        from django_otp import DEVICE_ID_SESSION_KEY

        from infusion_site.roles import needs_two_factor

        if needs_two_factor(user):
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = confirmed_device(user).persistent_id
            session.save()

    monkeypatch.setattr(ClientMixin, "force_login", force_login)


@pytest.fixture
def clinic(db):
    return ClinicFactory(name="Riverside Infusion", time_zone="America/New_York")


@pytest.fixture
def other_clinic(db):
    return ClinicFactory(name="Hilltop Infusion", time_zone="America/Los_Angeles")


@pytest.fixture
def nurse(clinic):
    return UserFactory(username="nurse", first_name="Nora", last_name="Nurse", roles=["nurse"], clinics=[clinic])


@pytest.fixture
def other_clinic_nurse(other_clinic):
    return UserFactory(username="other_nurse", first_name="Olga", last_name="Other", roles=["nurse"], clinics=[other_clinic])


@pytest.fixture
def coder(clinic):
    return UserFactory(username="coder", first_name="Cody", last_name="Coder", roles=["coder"], clinics=[clinic])


@pytest.fixture
def admin(clinic):
    return UserFactory(username="admin", first_name="Ada", last_name="Admin", roles=["admin"], clinics=[clinic], is_staff=True)


@pytest.fixture
def nurse_client(client, nurse):
    client.force_login(nurse)
    return client


# --- Playwright on Debian's chromium (never a browser build downloaded by Playwright)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium).")
    # Playwright's sync API keeps an event loop running in the test thread for
    # as long as the browser lives; the ORM calls our tests make in that thread
    # are still plain synchronous ones, so Django's async guard is lifted then.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Every page reports each Content-Security-Policy violation to the test (CFG-2):
# a blocked inline script or style, a resource from elsewhere.
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.__chairsideCspViolation({directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, sample: e.sample, page: document.location.pathname});
});
"""


@pytest.fixture
def page_factory(browser, request):
    """New isolated browser contexts (one per person), at a tablet viewport.

    Any `securitypolicyviolation` event on any page of the test fails it (CFG-2).
    When the test fails, its report gets each open page's URL and the messages
    it shows (`pytest_runtest_makereport` below): CI's log is all there is."""
    contexts = []
    violations: list[dict] = []
    request.node.chairside_pages = pages = []

    def make(viewport=(1024, 768)):
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        ctx.set_default_timeout(15_000)
        ctx.expose_function("__chairsideCspViolation", lambda violation: violations.append(violation))
        ctx.add_init_script(_CSP_LISTENER)
        contexts.append(ctx)
        page = ctx.new_page()
        pages.append(page)
        return page

    make.csp_violations = violations  # a test of the mechanism itself reads (and empties) it
    yield make
    for ctx in contexts:
        ctx.close()
    if violations:
        pytest.fail(f"Content-Security-Policy violations: {violations}")


# What a failed browser test's pages were showing: errors, alerts, field
# messages, the connection banner, and what has the focus.
_PAGE_STATE = """() => {
  const seen = [];
  for (const el of document.querySelectorAll('.alert, .invalid-feedback, .text-danger, [role=alert], [data-connection-banner]:not(.d-none)')) {
    const text = (el.innerText || '').trim();
    if (text) seen.push((el.dataset.testid || el.className) + ': ' + text.slice(0, 300));
  }
  const f = document.activeElement;
  seen.push('focus: ' + (f ? f.tagName + '#' + f.id + ' ' + (f.dataset.testid || '') : 'none'));
  return seen.join('\\n');
}"""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for n, page in enumerate(getattr(item, "chairside_pages", []), 1):
        try:
            state = page.evaluate(_PAGE_STATE) if not page.is_closed() else "(closed)"
            report.sections.append((f"browser page {n}", f"{page.url}\n{state}"))
        except Exception as exc:  # a crashed page must not hide the test's own failure
            report.sections.append((f"browser page {n}", f"{page.url}: could not read the page: {exc}"))


BASE_DIR = Path(__file__).resolve().parents[1]


# --- a real Celery worker on Redis -------------------------------------------


def _broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, tmp_path_factory):
    """`celery -A infusion_site worker` as a subprocess on the TEST database and
    Redis db 15 (flushed first). Yields the Popen; terminated at session end."""
    import redis
    from django.db import connection

    redis.Redis.from_url(_broker_url()).flushdb()
    db_url = "postgres://postgres@127.0.0.1:5432/" + connection.settings_dict["NAME"]
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": _broker_url(), "DJANGO_SETTINGS_MODULE": "infusion_site.settings"}
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    celery = str(Path(sys.executable).with_name("celery"))
    hostname = f"chairside-test-{os.getpid()}@localhost"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [celery, "-A", "infusion_site", "worker", "--pool=solo", "-Q", "celery", "--loglevel=INFO", "-n", hostname, "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            # Celery logs "<hostname> ready." once it consumes from the queue.
            while " ready." not in log_path.read_text():
                if proc.poll() is not None:
                    pytest.fail(f"Celery worker exited with {proc.returncode}:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"Celery worker not ready after 60 s:\n{log_path.read_text()}")
                time.sleep(0.2)
            proc.log_path = log_path
            yield proc
        finally:
            proc.terminate()  # warm shutdown: finishes the current task
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # PHI-2: what the worker logged (task names, ids, results, errors) is checked too.
            collect_worker_log(log_path)


def collect_worker_log(path) -> None:
    """Hand a worker's or server's log file to the PHI-2 canary collector, line by line."""
    from tests.phi_canary import collector

    if Path(path).exists():
        for line in Path(path).read_text(errors="replace").splitlines():
            collector().add("worker-log", line)
