"""Waiting for videos to finish and showing how they are doing, for the management commands.

The work itself runs elsewhere (a local worker process, Celery, Lambda); waiting only polls
the database, and gives the dispatch backend its push on every poll (`while_waiting`: the
local backend makes sure a worker runs, the tests' recording backend runs its jobs here).
"""

import io
import json
import os
import time
from collections.abc import Callable, Iterable

from django.core.serializers.json import DjangoJSONEncoder

from transcoding import selectors
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import Video, VideoStatus

TERMINAL = (VideoStatus.READY, VideoStatus.FAILED)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def status_json(video: Video) -> str:
    """The API document for the video, on one line."""
    return json.dumps(selectors.video_status(video), cls=DjangoJSONEncoder)


def wait_for_videos(
    ids: Iterable[int],
    on_update: Callable[[Video], None] | None = None,
    poll: float = 0.5,
    timeout: float | None = None,
) -> list[Video]:
    """Poll until every video is ready or failed (or `timeout` seconds pass). `on_update` is
    called with a fresh Video whenever its status, progress or playability changes. Returns
    the latest state of each video still there (a deleted video is dropped), in order."""
    ids = list(dict.fromkeys(ids))
    deadline = None if timeout is None else time.monotonic() + timeout
    dispatcher = get_dispatcher()
    latest: dict[int, Video] = {}
    shown: dict[int, tuple] = {}
    while True:
        watching = [i for i in ids if i not in latest or latest[i].status not in TERMINAL]
        dispatcher.while_waiting(watching)
        fresh = Video.objects.in_bulk(watching)
        for pk in watching:
            if pk not in fresh:  # deleted meanwhile
                ids.remove(pk)
                latest.pop(pk, None)
                continue
            video = latest[pk] = fresh[pk]
            state = (video.status, video.progress, video.playable)
            if on_update is not None and shown.get(pk) != state:
                shown[pk] = state
                on_update(video)
        pending = [i for i in ids if latest[i].status not in TERMINAL]
        now = time.monotonic()
        if not pending or (deadline is not None and now >= deadline):
            break
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - now)))
    return [latest[i] for i in ids]


def terminal_size(stream, default: tuple[int, int] = (80, 24)) -> tuple[int, int]:
    """(columns, lines) of the terminal `stream` writes to, with defaults for what it does not
    report (a pseudo-terminal may say 0x0, and tqdm then draws nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return default
    return size.columns or default[0], size.lines or default[1]


class ProgressDisplay:
    """An `on_update` callback: one tqdm bar per video when `stream` is a terminal, otherwise
    a plain line each time a video's status changes."""

    def __init__(self, stream, videos: Iterable[Video], *, tty: bool | None = None):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self.bars = {}
        self.statuses: dict[int, str] = {}
        if self.tty:
            from tqdm import tqdm

            videos = list(videos)
            labels = {v.pk: f"video {v.pk} {v.title[:30]}" for v in videos}
            width = max((len(label) for label in labels.values()), default=0)
            columns, lines = terminal_size(stream)
            for position, video in enumerate(videos):
                self.bars[video.pk] = tqdm(
                    total=100,
                    desc=labels[video.pk].ljust(width),
                    position=position,
                    file=stream,
                    leave=True,
                    ncols=columns,
                    nrows=lines,
                    bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
                )

    def __call__(self, video: Video) -> None:
        bar = self.bars.get(video.pk)
        if bar is not None:
            bar.n = min(int(video.progress), 100)
            bar.set_postfix_str(video.status, refresh=False)
            bar.refresh()
        elif not self.tty and self.statuses.get(video.pk) != video.status:
            self.statuses[video.pk] = video.status
            self.stream.write(f"video {video.pk}: {video.status} ({video.progress}%)\n")
            self.stream.flush()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_with_progress(videos: list[Video], stream, *, timeout: float | None = None, poll: float = 0.5):
    """`wait_for_videos` with a `ProgressDisplay` on `stream`."""
    with ProgressDisplay(stream, videos) as display:
        return wait_for_videos([v.pk for v in videos], display, poll=poll, timeout=timeout)


def wait_or_interrupt(videos: list[Video], stderr, *, timeout: float | None = None) -> list[Video]:
    """For commands: wait with progress on the command's stderr (an OutputWrapper, whose raw
    stream tqdm needs); Ctrl-C stops waiting, not the work, and exits 130."""
    from django.core.management.base import CommandError

    if not videos:
        return []
    try:
        return wait_with_progress(videos, getattr(stderr, "_out", stderr), timeout=timeout)
    except KeyboardInterrupt:
        raise CommandError("Stopped waiting; the videos go on processing in the background.", returncode=130)


def report(videos: list[Video], stdout, stderr, *, as_json: bool, waited: bool) -> int:
    """Print the outcome of each video: its JSON document on stdout with `as_json`, else a line
    for each ready one on stdout; a line for each failed (or, after waiting, unfinished) one
    on stderr. `stdout`/`stderr` are a command's OutputWrappers. Returns how many are not ready
    (or, without waiting, how many failed)."""
    bad = 0
    for video in videos:
        if as_json:
            stdout.write(status_json(video))
        if video.status == VideoStatus.FAILED:
            bad += 1
            stderr.write(f"video {video.pk} failed: {one_line(video.error) or 'no reason recorded.'}")
        elif waited and video.status != VideoStatus.READY:
            bad += 1
            stderr.write(f"video {video.pk} is still {video.status} ({video.progress}%); stopped waiting.")
        elif not as_json:
            done = "ready" if video.status == VideoStatus.READY else video.status
            stdout.write(f"video {video.pk} {done}: {video.title}")
    return bad
