"""A throwaway environment for the benchmarks: its own SQLite database, media root and work
directory under a temporary directory, the `recording` dispatcher (jobs run when we say), and
Django set up on it in this process (for probing and planning) and in every worker subprocess.

Every pipeline run gets a fresh copy of the migrated database: the platform links a video whose
source bytes match an already-ready one to that one's outputs instead of encoding again, so a
second run on the same source in the same database would measure nothing.
"""

import itertools
import os
import shutil
import sqlite3
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


_counter = itertools.count(1)


@dataclass(frozen=True)
class Scratch:
    root: Path

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def database(self) -> Path:
        return self.root / "db.sqlite3"

    def env(self, database: Path | None = None) -> dict[str, str]:
        """Environment for this process and the worker subprocesses."""
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="videoproject.settings",
            DATABASE_URL=f"sqlite:///{database or self.database}",
            MEDIA_ROOT=str(self.media),
            STORAGE="local",
            TRANSCODING_DISPATCH="recording",
            TRANSCODING_WORK_DIR=str(self.work),
            TRANSCODING_RUN_DIR=str(self.root / "run"),
            LOG_LEVEL="WARNING",
            # A throwaway key: the scratch site is never served (DEBUG stays off, as measured).
            SECRET_KEY=env.get("SECRET_KEY") or "bench-only-" + "k" * 50,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        )
        # The product's chunk defaults unless a benchmark sets them for its own runs (B2, B4).
        for name in ("TRANSCODING_CHUNK_SECONDS", "TRANSCODING_CHUNK_THRESHOLD_SECONDS"):
            env.pop(name, None)
        return env

    @contextmanager
    def fresh_database(self):
        """A copy of the migrated database for one run, deleted afterwards."""
        target = self.root / f"run-{next(_counter)}.sqlite3"
        with sqlite3.connect(self.database) as src, sqlite3.connect(target) as dst:
            src.backup(dst)  # consistent, WAL included
        src.close()
        dst.close()
        try:
            yield target
        finally:
            for path in self.root.glob(f"{target.name}*"):
                path.unlink()

    def clean_outputs(self) -> None:
        """Drop stored originals and outputs between runs: disk use stays that of one run."""
        shutil.rmtree(self.media, ignore_errors=True)
        for path in self.work.glob("*"):
            shutil.rmtree(path, ignore_errors=True)


def setup(root: Path) -> Scratch:
    """Create the scratch directories, point this process's Django at them and migrate."""
    scratch = Scratch(root)
    for path in (scratch.media, scratch.work, root / "run"):
        path.mkdir(parents=True, exist_ok=True)
    os.environ.update(scratch.env())
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return scratch


def plan_for(source: Path):
    """Probe and plan a source exactly as the pipeline does (default preset from the database,
    segment length from the settings). Returns (SourceInfo, Plan)."""
    from transcoding.conf import settings
    from transcoding.ingest.create import default_preset
    from transcoding.media.containers import source_input
    from transcoding.media.ladder import plan_encode
    from transcoding.media.probe import probe_source
    from transcoding.models import preset_spec

    info = probe_source(source_input(str(source.resolve())), size=source.stat().st_size)
    plan = plan_encode(info, preset_spec(default_preset()), segment_seconds=settings.SEGMENT_SECONDS)
    return info, plan


def ffmpeg_input(source: Path):
    """The source as the product's ffmpeg commands read it (its probed demuxer, file protocol)."""
    from transcoding.media.containers import source_input

    info, _ = plan_for(source)
    return source_input(str(source.resolve()), info.container)
