import os
from pathlib import Path

import pytest

from tests.media import big_buck_bunny, make_clip

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def pytest_configure(config):
    (ROOT / "run").mkdir(exist_ok=True)  # holds the SQLite test database file


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Every test stores into its own media root and records dispatches instead of running."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TRANSCODING_DISPATCH = "recording"
    settings.TRANSCODING_RUN_DIR = str(tmp_path / "run")
    from transcoding.jobs.dispatch import recording

    recording.outbox.clear()
    yield
    recording.outbox.clear()


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Small generated sources, made once per session."""
    root = tmp_path_factory.mktemp("clips")
    return {
        "720p": make_clip(root / "720p.mp4", seconds=6),
        "silent": make_clip(root / "silent.mp4", seconds=5, size="640x360", audio=False),
    }


@pytest.fixture(scope="session")
def bunny():
    """The real 5 s 720p Big Buck Bunny clip (tests.media.big_buck_bunny), cached under .cache/."""
    return big_buck_bunny(CACHE)


@pytest.fixture(scope="session")
def chromium_browser():
    """Debian's Chromium driven by Playwright (no browser is ever downloaded), one for the whole
    session: Playwright's sync API allows one instance at a time, so every browser test module
    uses this one (tests/test_browser.py's `browser` is this). Local Network Access checks are
    off: the bucket is moto on 127.0.0.1, and a page fulfilled by Playwright (to add a header)
    counts as public."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                "--disable-features=LocalNetworkAccessChecks",
            ],
        )  # fmt: skip
        yield browser
        browser.close()
