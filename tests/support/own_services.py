"""A PostgreSQL and a Redis of the test's own, on spare ports, that a test may kill -9 and
start again: the outage tests cannot touch the machine's shared instances (5432, 6379), which
other tests and people use. Both run from Debian's binaries in a temporary directory and are
stopped and removed at the end, whatever happened.

- `OwnPostgres`: `initdb` into the directory, `postgres` in a process group of its own (a
  kill takes the postmaster and every backend at once, as a crashed machine would), trust
  authentication on 127.0.0.1 only. Run as the `postgres` user when the test runs as root
  (initdb refuses root).
- `OwnRedis`: `redis-server` with the append-only file on (`appendfsync always`): the broker's
  messages survive a kill -9, as docs/faults.md says a production broker must be set up.

`own_services_missing()` says why they cannot run here (a binary missing), for a skip.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.processes import manage

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = Path("/usr/bin/redis-server")


def own_services_missing() -> str | None:
    for binary in (PG_BIN / "initdb", PG_BIN / "postgres", REDIS_SERVER):
        if not binary.exists():
            return f"{binary} is not installed (Debian's postgresql-15 and redis-server)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run initdb as"
    return None


def spare_port() -> int:
    """A port nobody listens on now (the kernel's choice, released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")


class _Service:
    """A server process in a process group of its own, killed with its group."""

    proc: subprocess.Popen | None = None
    port: int

    def kill(self) -> None:
        """kill -9 the whole group, and wait until the port is free."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self.proc = None
        _wait(lambda: not _listening(self.port), 10, f"port {self.port} closing")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class OwnPostgres(_Service):
    def __init__(self, root: Path):
        self.root, self.port = root, spare_port()
        self.data, self.log = root / "pgdata", root / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        root.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(root, self.user)
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, user=self.user, cwd=root,
        )  # fmt: skip

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=3"

    def start(self) -> None:
        """Start (again after a kill: PostgreSQL replays its WAL, as after a crash)."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", "fsync=off", "-c", "max_connections=60", "-c", "shared_buffers=16MB"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, user=self.user, cwd=self.root,
            )  # fmt: skip
        _wait(self._accepts, 30, "PostgreSQL accepting connections")

    def _accepts(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.dsn()).close()
            return True
        except psycopg.Error:
            return False

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute(sql)


class OwnRedis(_Service):
    def __init__(self, root: Path):
        self.root, self.port = root, spare_port()
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start (again after a kill: it reloads its append-only file)."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                 "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        _wait(self._pong, 20, "Redis answering PING")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class OwnServices:
    """Both, in one temporary directory, removed by `close`."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="own-services-"))
        self.root.chmod(0o755)  # the postgres user must reach its data directory
        self.postgres = OwnPostgres(self.root / "pg")
        self.redis = OwnRedis(self.root / "redis")

    def start(self) -> "OwnServices":
        self.postgres.start()
        self.redis.start()
        return self

    def close(self) -> None:
        for service in (self.postgres, self.redis):
            try:
                service.kill()
            except AssertionError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


class OwnScenario:
    """A database on the own PostgreSQL, migrated, a media root and the environment of every
    subprocess (workers, `manage.py`), with the broker on the own Redis."""

    def __init__(self, services: OwnServices):
        self.services, self.root = services, services.root
        self.media = self.root / "media"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "videoproject.settings",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": services.postgres.url("videoproject"),
            "MEDIA_ROOT": str(self.media),
            "TRANSCODING_RUN_DIR": str(self.root / "run"),
            "TRANSCODING_DISPATCH": "celery",
            "CELERY_BROKER_URL": services.redis.url(),
        }
        self._db = None

    def query(self, sql: str, *params) -> list[tuple]:
        """A query on the scenario's database; reconnects after an outage."""
        import psycopg

        for tries in range(2):
            try:
                if self._db is None or self._db.closed:
                    self._db = psycopg.connect(self.services.postgres.dsn("videoproject"), autocommit=True)
                return self._db.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._db = None
                if tries:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@pytest.fixture(scope="module")
def own_scenario():
    """Own PostgreSQL and Redis, started, with a migrated database; all removed at the end.
    Skips, with the reason, where Debian's binaries are missing."""
    missing = own_services_missing()
    if missing:
        pytest.skip(missing)
    services = OwnServices()
    scenario = None
    try:
        services.start()
        services.postgres.execute("CREATE DATABASE videoproject")
        scenario = OwnScenario(services)
        manage(scenario.env, "migrate", "--verbosity", "0")
        yield scenario
    finally:
        if scenario is not None:
            scenario.close()
        services.close()
