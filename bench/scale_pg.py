"""B6's PostgreSQL side: a throwaway database on the shared server (unique name, dropped after),
an optional role with a CONNECTION LIMIT, a PgBouncer in transaction pooling mode on a spare
port (standing in for RDS Proxy), and a sampler of the server's connections (pg_stat_activity).

Only 127.0.0.1; the shared server is never reconfigured: everything here is created for one
run and removed at its end.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PGBOUNCER = "/usr/sbin/pgbouncer"


def admin(sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def reachable() -> str | None:
    """None when the shared server answers, else why not."""
    try:
        admin("SELECT 1")
    except Exception as exc:  # psycopg missing or server down: the benchmark is skipped
        return f"PostgreSQL is not reachable at 127.0.0.1:5432 as postgres ({str(exc).strip()})"
    return None


def max_connections() -> int:
    return int(admin("SHOW max_connections")[0][0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Database:
    """`bench_scale_<pid>_<hex>`, created on entry and dropped (with its connections) on exit;
    with `role_limit`, also a login role of that CONNECTION LIMIT owning it."""

    def __init__(self, role_limit: int | None = None):
        tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.name = f"bench_scale_{tag}"
        self.role = f"bench_scale_role_{tag}" if role_limit else None
        self.role_limit = role_limit

    def __enter__(self):
        admin(f'CREATE DATABASE "{self.name}"')
        if self.role:
            admin(f'CREATE ROLE "{self.role}" LOGIN CONNECTION LIMIT {int(self.role_limit)}')
            admin(f'GRANT ALL ON DATABASE "{self.name}" TO "{self.role}"')
            admin(f'ALTER DATABASE "{self.name}" OWNER TO "{self.role}"')
        return self

    def __exit__(self, *exc):
        admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        if self.role:
            admin(f'DROP ROLE IF EXISTS "{self.role}"')

    def grant(self) -> None:
        """After migrating as postgres: the limited role may read and write every table."""
        import psycopg

        dsn = ADMIN_DSN.replace("dbname=postgres", f"dbname={self.name}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{self.role}"')
            conn.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{self.role}"')

    def url(self, user: str = "postgres", host: str = "127.0.0.1", port: int = 5432) -> str:
        return f"postgres://{user}@{host}:{port}/{self.name}"

    def server_connections(self) -> int:
        """Backends connected to this database now (the workers', PgBouncer's and ours)."""
        return int(admin(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.name}'")[0][0])


class PgBouncer:
    """Debian's pgbouncer on a spare port, transaction pooling, `pool_size` server connections
    to the one database; clients (up to `max_clients`) connect without a password as any user,
    and are all the database's owner on the server side."""

    def __init__(self, database: Database, pool_size: int, max_clients: int):
        self.database, self.pool_size, self.max_clients = database, pool_size, max_clients
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        user = self.database.role or "postgres"
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"{self.database.name} = host=127.0.0.1 port=5432 dbname={self.database.name} user={user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"max_client_conn = {self.max_clients}\ndefault_pool_size = {self.pool_size}\n"
            f"max_db_connections = {self.pool_size}\nreserve_pool_size = 0\n"
            "server_reset_query =\nignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
            "log_connections = 0\nlog_disconnections = 0\n"
        )
        command = [PGBOUNCER, str(ini)]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root: it drops to nobody
            os.chmod(self.dir, 0o777)
            os.chmod(ini, 0o644)
            command[1:1] = ["-u", "nobody"]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        log = (self.dir / "pgbouncer.log").read_text() if (self.dir / "pgbouncer.log").exists() else ""
        self.__exit__()
        raise RuntimeError(f"pgbouncer did not start: {log[-500:]}")

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self) -> str:
        return self.database.url(user=self.database.role or "postgres", port=self.port)


class Sampler:
    """Samples the database's server connections every `interval` seconds in a thread."""

    def __init__(self, database: Database, interval: float = 0.5):
        self.database, self.interval = database, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pg-sampler")

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((time.time(), self.database.server_connections()))
            except Exception:  # a sample missed under load is not a result
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((n for _, n in self.samples), default=0)
