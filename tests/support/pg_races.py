"""Helpers for the races that tests/jobs/test_slots_postgres.py drives on PostgreSQL, in
threads of one `manage.py shell`: each side runs on its own connection, records what it
raised, and a side holding a lock waits until the other is blocked on it."""

import threading
import time

from django.db import connection


def waiting_on_a_lock() -> bool:
    """Whether a session of this database waits for a lock (read fresh: inside a transaction
    PostgreSQL would answer from the snapshot of its first read)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def until_another_waits(seconds: float = 10) -> None:
    """Hold on (with whatever locks are held) until another session is blocked on a lock."""
    deadline = time.monotonic() + seconds
    while not waiting_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.05)


def side(errors: dict, name: str, function):
    """A thread's target: `function`, with what it raised recorded as one line under `name`,
    and its connection closed."""
    errors.setdefault(name, [])

    def run():
        try:
            function()
        except Exception as exc:
            errors[name].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            connection.close()

    return run


def run_together(*targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
