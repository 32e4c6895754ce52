"""Chromium for the browser tests: Debian's binary driven by Playwright (no browser is ever
downloaded), one instance for the whole session, and helpers to wait on pages whose CSP
forbids eval. Screenshots go to test-artifacts/ (override with TEST_ARTIFACTS).

A pytest plugin (tests/conftest.py): the `browser` and `page` fixtures; `BROWSER_MARKS` for a
module's pytestmark (slow, browser, skipped with the reason when Chromium is missing)."""

import os
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Playwright's sync API keeps an asyncio loop on this thread; the tests' own ORM calls are
# synchronous all the same, so tell Django not to refuse them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
    "--disable-features=LocalNetworkAccessChecks",
]  # fmt: skip
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    ),
]


def browser_test(test):
    """BROWSER_MARKS on one test, for modules whose other tests need no browser."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@pytest.fixture(scope="session")
def chromium_browser():
    """Debian's Chromium driven by Playwright (no browser is ever downloaded), one for the whole
    session: Playwright's sync API allows one instance at a time, so every browser test module
    uses this one (the `browser` fixture is this). Local Network Access checks are
    off: the bucket is moto on 127.0.0.1, and a page fulfilled by Playwright (to add a header)
    counts as public."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser(chromium_browser):
    """The session's one Chromium."""
    return chromium_browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda m: page.problems.append(m.text)
        if m.type == "error" and "Content Security Policy" in m.text
        else None,
    )
    yield page
    context.close()


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def wait_js(page, expression, timeout=30.0, message=""):
    """Poll a JS expression from outside the page: the pages' CSP forbids eval, which
    Playwright's own wait_for_function uses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message or f"timed out waiting for {expression}")


PLAYER = "document.querySelector('[data-player]')"


def open_player(page, url):
    """Open a player page and wait until Shaka has loaded the manifest, without an error."""
    page.goto(url)
    wait_js(
        page, f"{PLAYER}.dataset.ready === 'true' || {PLAYER}.dataset.error", message="player never loaded"
    )
    assert page.evaluate(f"{PLAYER}.dataset.error") is None


def play_muted(page):
    page.evaluate(
        "() => { const v = document.querySelector('video'); v.muted = true; v.play().catch(() => {}); }"
    )


def current_time(page):
    return page.evaluate("document.querySelector('video').currentTime")


def open_menu(page, button):
    page.hover(".shaka-controls-container")
    page.click(".shaka-overflow-menu-button")
    page.click(f".shaka-overflow-menu {button}")
