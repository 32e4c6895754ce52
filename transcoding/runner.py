"""Run ffmpeg: the one place that starts it (never through a shell), follows its progress,
and measures what it cost. Used by the encode (pipeline.py) and the speech step.

A killed worker takes its ffmpeg with it (PR_SET_PDEATHSIG); CPU and peak memory come from
wait4's rusage of the process itself, exact even with other work in flight.
"""

import ctypes
import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from typing import NamedTuple

from . import ffmpeg
from .conf import settings


class EncodeError(Exception):
    """ffmpeg failed. `transient` when it was killed rather than refusing the input."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL ffmpeg when the worker dies, so a killed worker leaves no orphan."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


class FfmpegRun(NamedTuple):
    stderr: str
    cpu_seconds: float
    peak_rss_bytes: int


def run_ffmpeg(
    args: list[str], on_progress: Callable[[ffmpeg.Progress | None], None], tick: float = 1.0
) -> FfmpegRun:
    """Run ffmpeg, feeding its -progress blocks to `on_progress`, and calling it with None at
    least every `tick` seconds even when ffmpeg prints nothing: ffmpeg holds its first report
    back until every output has started, and the poster and storyboard outputs start late, so
    heartbeats must not depend on it. Returns ffmpeg's stderr, CPU seconds and peak memory.
    `on_progress` may raise to stop the encode."""
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        ) as proc,
    ):
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        block: list[str] = []
        try:
            while True:
                try:
                    line = lines.get(timeout=tick)
                except queue.Empty:
                    on_progress(None)
                    continue
                if line is None:
                    break
                block.append(line)
                if line.startswith("progress="):
                    on_progress(ffmpeg.parse_progress("".join(block)))
                    block = []
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.stdout.close()
        # wait4 reaps ffmpeg and gives its own rusage, exact even with other work in flight.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        err = stderr.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        killed = proc.returncode < 0
        reason = f"ffmpeg was killed by signal {-proc.returncode}." if killed else ffmpeg.parse_error(err)
        raise EncodeError(reason, transient=killed or "No space left" in err)
    return FfmpegRun(err, cpu, usage.ru_maxrss * 1024)  # Linux reports kilobytes


class _Stopped(Exception):
    """Stops a process beside the main one when the main one failed."""


class SideRun:
    """An ffmpeg process in a thread beside the main one: the whole video's audio next to
    chunk 0's video. Stopped when the main one fails; its error is raised at the end."""

    def __init__(self, args: list[str] | None):
        self.args, self.result, self.error = args, FfmpegRun("", 0.0, 0), None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ffmpeg-beside", daemon=True)

    def _check(self, _progress) -> None:
        if self.stopping.is_set():
            raise _Stopped()

    def _run(self) -> None:
        try:
            self.result = run_ffmpeg(self.args, self._check, tick=0.5)
        except BaseException as exc:
            self.error = exc

    def __enter__(self):
        if self.args:
            self.thread.start()
        return self

    def wait(self, on_tick: Callable[[None], None]) -> None:
        while self.args and self.thread.is_alive():
            self.thread.join(timeout=min(1.0, settings.PROGRESS_INTERVAL))
            on_tick(None)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.stopping.set()
        if self.args:
            self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error


def run_encodes(main_args, side_args, writer) -> FfmpegRun:
    """The chunk's ffmpeg, and the audio's beside it when it has one: CPU added, peak the larger."""
    with SideRun(side_args) as side:
        if main_args:
            main = run_ffmpeg(main_args, writer, tick=min(1.0, settings.PROGRESS_INTERVAL))
        else:
            main = FfmpegRun("", 0.0, 0)
        side.wait(writer)
    stderr = "\n".join(s for s in (main.stderr.strip(), side.result.stderr.strip()) if s)
    cpu = main.cpu_seconds + side.result.cpu_seconds
    return FfmpegRun(stderr, cpu, max(main.peak_rss_bytes, side.result.peak_rss_bytes))
