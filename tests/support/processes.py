"""Processes the worker tests start and watch: `manage.py worker` against the test database,
waiting on a condition, and looking for ffmpeg processes a killed worker may have left."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float, message: str, poll: float = 0.1):
    """Poll `predicate` until it returns something true (returned) or fail with `message`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(message)


def manage(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in a subprocess with `env`; fails the test with its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {args[0]} exited {result.returncode}:\n{result.stderr}"
    return result


def worker_env(tmp_path: Path, lease: float = 3) -> dict:
    """The environment of a `manage.py worker` on this test's SQLite database and media root,
    with a work directory of its own (`tmp_path / "work"`): another test worker's encode of
    its own video 1 is not mistaken for this one's."""
    (tmp_path / "work").mkdir(exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "TRANSCODING_WORK_DIR": str(tmp_path / "work"),
        "TRANSCODING_RUN_DIR": str(tmp_path / "worker-run"),
        "TRANSCODING_LEASE_SECONDS": str(lease),
        "TRANSCODING_DISPATCH": "local",
    }


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_worker(
    env: dict, log, concurrency: int = 1, idle_exit: float = 60, *, sigint_ignored: bool = False
) -> subprocess.Popen:
    """`manage.py worker` in a process group of its own, which its ffmpeg shares: an orphaned
    ffmpeg would keep the group alive, and no other test's process can be mistaken for it.
    `sigint_ignored`: started as a shell's background job is (SIGINT set to SIG_IGN)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "worker", "--poll", "0.2", "--idle-exit", str(idle_exit),
         "--concurrency", str(concurrency)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )  # fmt: skip


def kill_group(proc: subprocess.Popen, sig: int, wait: float) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes():
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                yield proc, (proc / "stat").read_text(), (proc / "cmdline").read_bytes()
            except OSError:
                continue


def ffmpeg_in_group(pgid: int) -> bool:
    return any(
        int(stat.rpartition(")")[2].split()[2]) == pgid and b"ffmpeg" in cmdline.split(b"\0")[0]
        for _, stat, cmdline in _processes()
    )


def ffmpeg_processes_with(hint: str) -> list[int]:
    """ffmpeg processes whose command line contains `hint` (a work directory's name)."""
    return [
        int(proc.name)
        for proc, _, cmdline in _processes()
        if b"ffmpeg" in cmdline and hint in cmdline.decode(errors="replace")
    ]
