"""What a call costs the database, in units that do not depend on the machine's speed: the
queries it sends, and the SQLite virtual machine instructions they run (rows read and written,
index seeks). A cost that grows with the number of rows a video has is visible here without
timing anything."""

from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection
from django.test.utils import CaptureQueriesContext


@dataclass
class Cost:
    queries: int = 0
    steps: int = 0  # SQLite VM instructions, in units of STEP


STEP = 100


@contextmanager
def measured():
    """Yields a Cost filled in when the block ends (SQLite only: the suite's fast tier)."""
    assert connection.vendor == "sqlite", "instruction counts are SQLite's"
    connection.ensure_connection()
    raw = connection.connection
    cost = Cost()

    def tick() -> int:
        cost.steps += 1
        return 0  # go on

    raw.set_progress_handler(tick, STEP)
    try:
        with CaptureQueriesContext(connection) as queries:
            yield cost
    finally:
        raw.set_progress_handler(None, STEP)
    cost.queries = len(queries)
