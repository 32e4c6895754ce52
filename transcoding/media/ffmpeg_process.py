"""Run ffmpeg: the one place that starts it (never through a shell), follows its progress,
holds it to its limits, and measures what it cost. Used by the encode (pipeline.py) and the
speech step.

A killed worker takes its ffmpeg with it (PR_SET_PDEATHSIG); CPU comes from wait4's rusage of
the process itself, exact even with other work in flight. Peak memory is ffmpeg's own VmHWM,
read from /proc at each progress block and with the limit checks (0 for a run over before the
first sample): wait4's ru_maxrss would carry the worker's RSS from before exec (a forked child
starts as a copy of its parent), so a 30 MB ffmpeg would report the Python process that
started it.

Limits (`TRANSCODING_FFMPEG_TIMEOUT_SECONDS`, `TRANSCODING_FFMPEG_MAX_MEMORY_MB`): a process
that runs longer is killed and the job fails at once with the reason, never retried: the same
input would do the same again. A process whose resident memory grows past the limit (read from
/proc twice a second while it runs) is killed with `OutOfMemory`, and so is reported one that
the kernel killed (SIGKILL that this code did not send: only the out-of-memory killer sends it
to a healthy ffmpeg): the encode decides whether a smaller footprint is worth a retry
(`errors.smaller_footprint`). (An address-space rlimit was tried and left out: x264's threads
reserve several times what they use, and ffmpeg dies of it with a segfault or a misleading
error instead of a clear one.)
"""

import ctypes
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from transcoding.conf import settings
from transcoding.errors import EncodeError, LimitExceeded, OutOfMemory
from transcoding.media import ffmpeg

__all__ = ["EncodeError", "FfmpegLimits", "FfmpegRun", "run_encodes", "run_ffmpeg"]

MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class FfmpegLimits:
    seconds: float
    memory_bytes: int

    @classmethod
    def from_settings(cls) -> "FfmpegLimits":
        return cls(float(settings.FFMPEG_TIMEOUT_SECONDS), int(settings.FFMPEG_MAX_MEMORY_MB) * MIB)


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL ffmpeg when the worker dies, so a killed worker leaves no orphan."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def resident_bytes(pid: int) -> int:
    """The process's resident memory now (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def peak_resident_bytes(pid: int | str = "self") -> int:
    """A process's resident high-water mark since exec (VmHWM), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


# What a SIGKILL nobody here sent means.
KILLED_BY_KERNEL = (
    "ffmpeg was killed (SIGKILL) by the system, most likely the kernel's out-of-memory killer "
    "(the machine's or the container's memory limit)."
)


def _over_limit(proc, limits: FfmpegLimits, started: float) -> Exception | None:
    """Why the running process must be stopped, or None."""
    if time.monotonic() - started > limits.seconds:
        return LimitExceeded(
            f"ffmpeg ran longer than the {limits.seconds:g} s limit (TRANSCODING_FFMPEG_TIMEOUT_SECONDS) "
            "and was stopped."
        )
    if limits.memory_bytes and resident_bytes(proc.pid) > limits.memory_bytes:
        return OutOfMemory(
            f"ffmpeg used more than the {limits.memory_bytes // MIB} MiB memory limit "
            "(TRANSCODING_FFMPEG_MAX_MEMORY_MB) and was stopped."
        )
    return None


class _Reader(threading.Thread):
    """Reads ffmpeg's -progress output into a queue. At each block's last line it samples
    ffmpeg's VmHWM: ffmpeg is alive then (even at `progress=end`, written just before it
    exits), so a run too short for the twice-a-second checks is measured all the same."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc, self.lines, self.peak = proc, queue.Queue(), 0

    def run(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("progress="):
                self.sample()
            self.lines.put(line)
        self.lines.put(None)

    def sample(self) -> None:
        self.peak = max(self.peak, peak_resident_bytes(self.proc.pid))


class FfmpegRun(NamedTuple):
    stderr: str
    cpu_seconds: float
    peak_rss_bytes: int


def run_ffmpeg(
    args: list[str],
    on_progress: Callable[[ffmpeg.Progress | None], None],
    tick: float = 1.0,
    limits: FfmpegLimits | None = None,
) -> FfmpegRun:
    """Run ffmpeg, feeding its -progress blocks to `on_progress`, and calling it with None at
    least every `tick` seconds even when ffmpeg prints nothing: ffmpeg holds its first report
    back until every output has started, and the poster and storyboard outputs start late, so
    heartbeats must not depend on it. Returns ffmpeg's stderr, CPU seconds and peak memory.
    `on_progress` may raise to stop the encode; a process over `limits` is stopped with
    LimitExceeded (time) or OutOfMemory (memory), and one the kernel killed raises OutOfMemory."""
    limits = limits or FfmpegLimits.from_settings()
    started = time.monotonic()
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
        reader = _Reader(proc)
        reader.start()
        block: list[str] = []
        checked = started
        try:
            while True:
                now = time.monotonic()
                if now - checked >= 0.5:
                    checked = now
                    reader.sample()
                    over = _over_limit(proc, limits, started)
                    if over is not None:
                        raise over
                try:
                    line = reader.lines.get(timeout=tick)
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
        reader.join()  # it has read to the end (the None above)
        proc.stdout.close()
        # wait4 reaps ffmpeg and gives its own rusage, exact even with other work in flight.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        err = stderr.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    if ffmpeg.frame_too_large(err):
        raise LimitExceeded("A frame of the video is larger than the size limit (its size changes midway).")
    if proc.returncode == -signal.SIGKILL:
        # Every kill of ours raised above; a worker that died took this code with it.
        raise OutOfMemory(KILLED_BY_KERNEL)
    if proc.returncode != 0:
        killed = proc.returncode < 0
        reason = f"ffmpeg was killed by signal {-proc.returncode}." if killed else ffmpeg.parse_error(err)
        raise EncodeError(reason, transient=killed or "No space left" in err)
    # 0 when ffmpeg ended before any sample (well under a second): unknown, rather than
    # ru_maxrss, which carries the worker's RSS from before exec.
    return FfmpegRun(err, cpu, reader.peak)


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


def run_encodes(main_passes: list[list[str]], side_args, writer) -> FfmpegRun:
    """The chunk's ffmpeg processes one after another (one, or one per rung when memory is
    short: `ffmpeg.encode_passes`), and the audio's beside them when it has one: CPU added,
    peak the largest. `writer.begin_pass(index, count)` is told when each starts."""
    runs = []
    with SideRun(side_args) as side:
        for index, args in enumerate(main_passes):
            writer.begin_pass(index, len(main_passes))
            runs.append(run_ffmpeg(args, writer, tick=min(1.0, settings.PROGRESS_INTERVAL)))
        side.wait(writer)
    runs.append(side.result)
    stderr = "\n".join(r.stderr.strip() for r in runs if r.stderr.strip())
    return FfmpegRun(stderr, sum(r.cpu_seconds for r in runs), max(r.peak_rss_bytes for r in runs))
