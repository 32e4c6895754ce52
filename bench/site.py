"""B8's site: a throwaway database, the local worker and gunicorn, each started and stopped by
B8 itself, in process groups of their own, on the loopback only.

- Database: a PostgreSQL database of its own on the machine's server (127.0.0.1:5432, user
  postgres), named `bench_b8_<pid>_<random>`, dropped at the end; SQLite in the scratch
  directory when PostgreSQL is not reachable (said in the results). Connections persist per
  thread (`conn_max_age`), as docs/serving.md recommends: each gunicorn thread holds one.
- The local worker (`manage.py worker`, one job at a time, `nice -n 10`, as docs/serving.md
  advises for encoders on the site's machine) encodes while the viewers come.
- Gunicorn with the project's configuration (videoproject/gunicorn.conf.py) serving
  `bench.serving_wsgi` (the site, counting queries per response), its access log in the
  scratch directory.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

from .scratch import ROOT

PG_DSN = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"
# Persistent connections, one per thread; both spellings, so a DATABASE_CONN_MAX_AGE setting
# (docs/database.md) and the URL's own option agree.
CONN_MAX_AGE = 60


def postgres_missing() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(f"{PG_DSN} dbname=postgres").close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at 127.0.0.1:5432 as postgres ({str(exc).strip()})"
    return None


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def database(root: Path):
    """(DATABASE_URL, a one-line description); the database is dropped afterwards."""
    missing = postgres_missing()
    if missing:
        yield f"sqlite:///{root / 'site.sqlite3'}", f"SQLite ({missing})"
        return
    name = f"bench_b8_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgres://postgres@127.0.0.1:5432/{name}?conn_max_age={CONN_MAX_AGE}"
        yield url, f"PostgreSQL (database {name}, dropped after the run)"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(root: Path, database_url: str, port: int, extra: dict | None = None) -> dict:
    """What the site, the worker and the seeding process share: production mode (DEBUG off),
    local storage and the local dispatcher, everything under `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSCODING_", "GUNICORN_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="videoproject.settings",
        DATABASE_URL=database_url,
        DATABASE_CONN_MAX_AGE=str(CONN_MAX_AGE),
        DEBUG="0",
        SECRET_KEY="bench-b8-only-" + uuid.uuid4().hex + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1",
        MEDIA_ROOT=str(root / "media"),
        STORAGE="local",
        TRANSCODING_DISPATCH="local",
        TRANSCODING_RUN_DIR=str(root / "run"),
        TRANSCODING_WORK_DIR=str(root / "work"),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_ACCESS_LOG=str(root / "access.log"),
        GUNICORN_ERROR_LOG=str(root / "gunicorn.log"),
        GUNICORN_LOG_LEVEL="warning",
    )
    env.update(extra or {})
    for path in ("media", "run", "work"):
        (root / path).mkdir(parents=True, exist_ok=True)
    return env


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    return python(env, str(ROOT / "manage.py"), *args, timeout=timeout)


def python(env: dict, *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()[-1500:]}"
        )
    return result.stdout


def _start(env: dict, args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen, sig: int, grace: float) -> None:
    """Signal the process, give it `grace` seconds, then kill its whole group (its ffmpeg,
    gunicorn's workers): it was started in a session of its own, so the group is only its."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


@contextmanager
def worker(env: dict, root: Path):
    """The local worker, one job at a time, for the whole run."""
    command = [sys.executable, str(ROOT / "manage.py"), "worker", "--poll", "0.5"]
    # niced, as docs/serving.md advises for encoders sharing a machine with the site
    proc = _start(env, ["nice", "-n", "10", *command], root / "worker.log")
    try:
        yield proc
    finally:
        # SIGTERM: gone at once, its ffmpeg with it (PR_SET_PDEATHSIG); Ctrl-C would let the
        # encode run on for up to 10 s, in a database about to be dropped.
        _stop(proc, signal.SIGTERM, 10)


@contextmanager
def gunicorn(env: dict, root: Path, port: int, timeout: float = 90):
    """Gunicorn with the project's configuration, serving until the block ends; it must answer
    `/videos/` within `timeout` seconds."""
    args = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "videoproject" / "gunicorn.conf.py")]
    proc = _start(env, [*args, "bench.serving_wsgi:application"], root / "gunicorn.out")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log = (root / "gunicorn.log").read_text() if (root / "gunicorn.log").exists() else ""
                raise RuntimeError(f"gunicorn exited {proc.returncode}: {log[-1500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/videos/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer on 127.0.0.1:{port} within {timeout:g} s")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc, signal.SIGINT, 15)  # quick shutdown: the viewers are gone
