"""Store each output file as soon as ffmpeg has finished it, then delete the local copy, so
a worker's temporary disk holds a few segments at a time whatever the video's length.

ffmpeg writes segments under a temporary name and renames them when complete
(`-hls_flags temp_file`), so any `seg_*.m4s` present is whole. A storyboard sheet is whole
once the next one exists. The rest (init segments, playlists, the last sheet, the poster) is
small and stored after ffmpeg exits. Sizes are remembered for the bitrate measurements.
"""

import logging
import threading
from pathlib import Path

from transcoding.media import ffmpeg
from transcoding.storage import objects

log = logging.getLogger(__name__)


class SegmentUploader:
    def __init__(self, workdir: Path, prefix: str, segment_dirs: list[str], interval: float = 0.25):
        self.workdir, self.prefix = Path(workdir), prefix
        self.segment_dirs = segment_dirs
        self.interval = interval
        self.sizes: dict[str, int] = {}  # path relative to the work dir -> bytes stored
        self.stored = 0
        self.peak_local_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segment-uploader", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self.poll(final=True)
            if self.error is not None:
                raise self.error

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except BaseException as exc:  # reported when the encode ends
                self.error = exc
                log.warning("storing a finished output failed: %s", exc)
                return

    def _store(self, path: Path) -> None:
        relative = path.relative_to(self.workdir).as_posix()
        size = objects.store_file(path, f"{self.prefix}/{relative}")
        self.sizes[relative] = size
        self.stored += size
        path.unlink()

    def local_bytes(self) -> int:
        """Bytes in the work directory now. ffmpeg renames files while this walks it (each
        playlist is written as `index.m3u8.tmp`, then moved): one gone meanwhile is skipped,
        not an error that fails the attempt (it did, in a loaded test run)."""
        total = 0
        for path in self.workdir.rglob("*"):
            try:
                total += path.stat().st_size if path.is_file() else 0
            except FileNotFoundError:
                continue
        return total

    def poll(self, final: bool = False) -> None:
        """Store what is finished (everything, when `final`)."""
        self.peak_local_bytes = max(self.peak_local_bytes, self.local_bytes())
        for directory in self.segment_dirs:
            for path in sorted((self.workdir / directory).glob("seg_*.m4s")):
                self._store(path)
        sheets = sorted((self.workdir / ffmpeg.STORYBOARD_DIR).glob("sheet_*.jpg"))
        for path in sheets if final else sheets[:-1]:
            self._store(path)

    def finished_segments(self, directory: str) -> int:
        """Segments ffmpeg has finished in `directory`: stored, or waiting to be."""
        stored = sum(1 for key in list(self.sizes) if key.startswith(f"{directory}/seg_"))
        return stored + len(list((self.workdir / directory).glob("seg_*.m4s")))
