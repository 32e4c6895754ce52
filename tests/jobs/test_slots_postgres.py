"""Concurrency on PostgreSQL, each run in `manage.py shell` on a scenario database:

- the caps hold: claims of encode jobs decide one at a time (an advisory lock), so threads
  racing for the last slot never run more than the cap, and every job ends done, with one
  attempt each (a held claim uses none);
- the video's row lock orders what its jobs' ends, the stitch, the watchdog and a retried
  root write: none deadlocks, and none undoes what another committed."""

from tests.support.services import real_services, scenario, shell  # noqa: F401 (fixture)

pytestmark = real_services


def test_racing_claims_never_pass_the_caps(scenario):  # noqa: F811
    env = {**scenario.env, "TRANSCODING_MAX_CHUNKS_IN_FLIGHT": "3", "TRANSCODING_MAX_ENCODES_IN_FLIGHT": "5"}
    result = shell(env, "from tests.support.slots_race import main; main()", timeout=120)
    assert result["states"] == {"done": 36}
    assert result["attempts"] == [1]
    assert 0 < result["per_video"] <= 3
    assert 0 < result["total"] <= 5
    assert result["held"] > 0  # the caps were reached, not merely never tested


def test_the_watchdog_failing_a_root_while_a_chunk_ends_takes_the_locks_in_order(scenario):  # noqa: F811
    """It locked the stuck root's row, then the chunk's (cancelling it), then the video's; the
    chunk's end holds the video's and wants its own: PostgreSQL failed one of the two with a
    deadlock. Now the watchdog takes the video's lock first, as every writer does."""
    result = shell(scenario.env, "from tests.support.watchdog_race import main; main()", timeout=120)
    assert result["errors"] == {"chunk": [], "watchdog": []}
    assert result["states"] == {"0": "failed", "1": "cancelled"} and result["video"] == "failed"


def test_a_retried_root_starting_while_the_stitch_commits_leaves_the_rungs_ready(scenario):  # noqa: F811
    """The stitch holds the video's lock with the rungs marked ready; the retried root's start
    waits for that lock, then finds them finished (without the lock it read them running and
    set them back to running once the stitch committed: tests/support/retry_race.py)."""
    result = shell(scenario.env, "from tests.support.retry_race import main; main()", timeout=120)
    assert result["errors"] == {"stitch": [], "root": []}
    assert result["started"] == [] and set(result["rungs"].values()) == {"ready"}


def test_a_cancel_while_the_watchdog_requeues_the_root_takes_the_locks_in_order(scenario):  # noqa: F811
    """The cancel wrote its jobs' rows, then wanted the video's lock; the watchdog held that
    lock and wanted the root's row: a deadlock, and the staff's cancel rolled back."""
    result = shell(scenario.env, "from tests.support.watchdog_race import cancel_meets_the_watchdog; "
                   "cancel_meets_the_watchdog()", timeout=120)  # fmt: skip
    assert result == {"errors": {"cancel": [], "watchdog": []}, "job": "cancelled"}
