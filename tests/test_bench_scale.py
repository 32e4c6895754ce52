"""B6's harness in its quick mode (bench/b6.py): real worker threads running the real job
protocol against PostgreSQL, with a stand-in encoder. Under a role whose CONNECTION LIMIT (2)
is below the number of workers (6), every job still ends done: a worker that cannot connect
waits and retries (`jobs.runner.database_wait`) instead of failing or losing its job.

The role and the database are made on the shared server under unique names and dropped after
(bench/scale_pg.py)."""

import pytest

from bench import b6, scale_pg

MISSING = scale_pg.reachable()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def test_workers_over_a_roles_connection_limit_wait_and_every_job_ends_done():
    result = b6.run_one({**b6.QUICK["role"], "encode": [0.1, 0.2], "timeout": 120})
    b6.check(result)  # every video ready; nothing lost, encoded twice, stuck or failed
    assert result["config"]["role_limit"] == 2 and result["config"]["workers"] == 4
    assert result["states"] == {"done": result["chunks"]} and result["chunks"] == 8
    assert result["failed"] == 0
    assert result["connect_waited_jobs"] > 0  # some did wait for a connection
    assert result["peak_server_connections"] <= 2 + 1  # the role's two, and the harness's own
    assert result["encoded_jobs"] == result["chunks"]  # each chunk encoded once
