"""The real services the Celery tests run against: Redis (127.0.0.1:6379) as the broker and
PostgreSQL (127.0.0.1:5432, user postgres, trust auth), with `celery worker` subprocesses.

A scenario (the module-scoped `scenario` fixture, a pytest plugin) is a fresh PostgreSQL
database migrated by `manage.py migrate`, a media root and a broker key prefix of its own
(kombu's `global_keyprefix`; Redis DB 15 is shared with whoever else runs these tests), with
the environment every subprocess gets: workers, `manage.py ingest` and `manage.py shell` are
subprocesses configured by environment variables, and the test reads the database with
psycopg. Tests marked `real_services` skip, with the reason, when either service is missing.
"""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import ROOT, kill_group, manage, wait_for

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
PG_DSN = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"
LADDER = ["720p", "480p", "360p", "240p"]


def redis_missing() -> str | None:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc})"
    return None if reply.startswith(b"+PONG") else f"Redis at {REDIS_HOST}:{REDIS_PORT} answered {reply!r}"


def _postgres_missing() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -r requirements.txt)"
    try:
        psycopg.connect(f"{PG_DSN} dbname=test").close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at 127.0.0.1:5432 as postgres ({str(exc).strip()})"
    return None


MISSING = redis_missing() or _postgres_missing()
real_services = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


class Scenario:
    """A PostgreSQL database, a media root and a broker key prefix, and the environment
    every subprocess of the scenario gets."""

    def __init__(self, root: Path):
        tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.root = root
        self.dbname = f"videoproject_celery_test_{tag}"
        self.prefix = f"celery-test-{tag}:"
        self.media = root / "media"
        self.broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "videoproject.settings",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.dbname}",
            "MEDIA_ROOT": str(self.media),
            "TRANSCODING_RUN_DIR": str(root / "run"),
            "TRANSCODING_DISPATCH": "celery",
            "CELERY_BROKER_URL": self.broker,
            "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": self.prefix}),
        }
        self._db = None

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{PG_DSN} dbname=test", autocommit=True) as conn:
            conn.execute(sql)

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg

        if self._db is None:
            self._db = psycopg.connect(f"{PG_DSN} dbname={self.dbname}", autocommit=True)
        return self._db.execute(sql, params).fetchall()

    def redis(self):
        import redis

        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)

    def broker_keys(self) -> list[bytes]:
        return list(self.redis().scan_iter(f"{self.prefix}*"))

    def clean_broker(self) -> None:
        keys = self.broker_keys()
        if keys:
            self.redis().delete(*keys)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    s = Scenario(tmp_path_factory.mktemp("celery"))
    s.admin(f'DROP DATABASE IF EXISTS "{s.dbname}" WITH (FORCE)')
    s.admin(f'CREATE DATABASE "{s.dbname}"')
    s.clean_broker()
    try:
        manage(s.env, "migrate", "--verbosity", "0")
        yield s
    finally:
        s.close()
        s.clean_broker()
        s.admin(f'DROP DATABASE IF EXISTS "{s.dbname}" WITH (FORCE)')


def shell(env: dict, code: str, timeout: float = 120):
    """Run `code` in `manage.py shell` against the scenario's database; returns the JSON
    it printed last."""
    out = manage(env, "shell", "--no-imports", "-c", code, timeout=timeout).stdout
    return json.loads(out.strip().splitlines()[-1])


def assert_outputs_in_subprocess(
    env: dict, video_id: int, seconds: float, ladder: list[str] = LADDER
) -> None:
    """The suite's full output checks (tests/support/checks.py), run where the ORM reads PostgreSQL."""
    shell(
        env,
        "from tests.support import checks; from transcoding.models import Video; "
        f"checks.assert_all_outputs(Video.objects.get(pk={video_id}), {seconds}, {ladder!r}, audio=True); "
        "print('true')",
    )


@contextmanager
def celery_worker(env: dict, log: Path, *, concurrency: int = 1, supervised: bool = False):
    """`celery -A videoproject worker` in its own process group, ready on entry; killed (the
    whole group) on exit, whatever happened.

    `supervised`: started again a second after it exits, as systemd's `Restart=always` does in
    production (docs/serving.md). kombu's Redis transport can end the worker with "Unrecoverable
    error" when the broker dies while it restores unacknowledged messages (a known kombu
    race); a deployment's supervisor starts it again, and so does this."""
    command = [
        sys.executable, "-m", "celery", "-A", "videoproject", "worker", "-l", "info",
        "--pool", "prefork", "-c", str(concurrency), "-n", f"{log.stem}-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if supervised:
        restart = 'echo "supervisor: the worker exited ($?), starting it again"; sleep 1'
        loop = f"while true; do {shlex.join(command)}; {restart}; done"
        command = ["sh", "-c", loop]
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: " ready." in log.read_text() or proc.poll() is not None, 30, "worker never ready")
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        kill_group(proc, signal.SIGTERM, wait=10)
        kill_group(proc, signal.SIGKILL, wait=10)


def job_row(scenario: Scenario, video_id: int) -> dict:
    (row,) = scenario.query(
        "SELECT id, state, attempt, lease_expires_at FROM transcoding_processingjob WHERE video_id = %s",
        video_id,
    )
    return dict(zip(("id", "state", "attempt", "lease_expires_at"), row))


def video_row(scenario: Scenario, video_id: int) -> dict:
    (row,) = scenario.query(
        "SELECT status, progress, hls_path, error FROM transcoding_video WHERE id = %s", video_id
    )
    return dict(zip(("status", "progress", "hls_path", "error"), row))


def rendition_attempts(scenario: Scenario, video_id: int) -> dict[str, int]:
    return dict(
        scenario.query("SELECT name, attempts FROM transcoding_rendition WHERE video_id = %s", video_id)
    )


def ingest(env: dict, clip: Path, *args: str) -> dict:
    result = manage(env, "ingest", str(clip), "--json", *args, timeout=180)
    return json.loads(result.stdout)
