import os

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium from reaching for the network on a machine that has none.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright keeps an event loop running in this thread while it is open,
    # and the rest of the suite calls async_to_sync from this thread.
    if not os.path.exists(CHROMIUM):
        raise pytest.UsageError("Browser tests need Debian's chromium: `make test` installs it (bin/ensure-chromium).")
    # Playwright's sync API keeps an event loop running in the test's thread, and Django
    # refuses ORM calls from a thread with a running loop; the test body is plain sync code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()
