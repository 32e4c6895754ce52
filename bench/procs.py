"""Run ffmpeg commands and measure them: wall time from start to the last exit, and each
process's own CPU time from os.wait4 (exact, whatever else the machine runs). No memory here:
a child's ru_maxrss carries the RSS of the process that forked it (see worker.vm_hwm)."""

import os
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .commands import Command


class CommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float  # user + system seconds of every process
    processes: int
    # label -> (wall, CPU) of each process; wall only means something when run sequentially
    per_process: dict[str, tuple[float, float]]


def _start(command: Command, workdir: Path, stderr) -> subprocess.Popen:
    for directory in command.dirs:
        (workdir / directory).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)


def _reap(proc: subprocess.Popen, command: Command, stderr) -> resource.struct_rusage:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        stderr.seek(0)
        tail = stderr.read().decode("utf-8", "replace")[-800:]
        raise CommandFailed(f"{command.label}: ffmpeg exited {proc.returncode}: {tail}")
    return usage


def run(commands: list[Command], workdir: Path, *, parallel: bool = False) -> Measured:
    """Run the commands one after another (a naive worker), or all at once."""
    per_process = {}
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        if parallel:
            procs = [_start(c, workdir, stderr) for c in commands]
            for proc, command in zip(procs, commands):
                usage = _reap(proc, command, stderr)
                per_process[command.label] = (time.perf_counter() - started, usage.ru_utime + usage.ru_stime)
        else:
            for command in commands:
                began = time.perf_counter()
                usage = _reap(_start(command, workdir, stderr), command, stderr)
                per_process[command.label] = (time.perf_counter() - began, usage.ru_utime + usage.ru_stime)
        wall = time.perf_counter() - started
    return Measured(
        wall=wall,
        cpu=sum(cpu for _, cpu in per_process.values()),
        processes=len(commands),
        per_process=per_process,
    )


def check_outputs(workdir: Path, commands: list[Command]) -> None:
    """A command that wrote nothing would look fast: make sure every output exists."""
    for command in commands:
        for pattern in command.expects:
            if not any(workdir.glob(pattern)):
                raise CommandFailed(f"{command.label}: nothing matches {workdir / pattern}")
