"""Playwright on Debian's chromium (never a browser build downloaded by Playwright)."""

import os
import shutil

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls
# made by fixtures in that thread are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium).")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page_factory(browser):
    """New isolated browser contexts (one per person), at a tablet viewport."""
    contexts = []

    def make(viewport=(1024, 768)):
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()
