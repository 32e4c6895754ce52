"""The embedded default: the ProcessingJob table is the queue, and a worker process on the same
machine (`manage.py worker`) polls it. Nothing to install or run besides Django.

`enqueue` (and `deliver_webhook`) start a worker when none is running, so `manage.py ingest
--wait` or a bare `runserver` work on their own. Besides its job threads, a worker has one
thread that sends the webhook deliveries that are due (a long encode never holds them back):
new ones, retries whose backoff has passed, and those whose worker died mid-delivery (lease
expired). A worker started on demand stays while deliveries are unfinished.

"Running" means holding an exclusive lock on a file in the run directory; the kernel drops
the lock when the process dies, even by SIGKILL.
"""

import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings as django_settings
from django.db import DatabaseError, close_old_connections, connection

from transcoding.conf import settings
from transcoding.jobs import tasks
from transcoding.jobs.dispatch.base import BaseDispatcher
from transcoding.models import JobState, ProcessingJob
from transcoding.status.jobs import jobs_claimable_ids
from transcoding.webhooks.delivery import deliveries_due_ids, deliveries_unfinished

log = logging.getLogger(__name__)

LOCK_NAME = "worker.lock"
# How long Ctrl-C (SIGINT) waits for the worker's threads to finish what they are doing.
STOP_SECONDS = 10.0


def run_dir() -> Path:
    path = Path(settings.RUN_DIR or Path(django_settings.BASE_DIR) / "run")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def worker_lock(block: bool = False):
    """Yields True while this process holds the worker lock, False if another one does."""
    with open(run_dir() / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def worker_running() -> bool:
    with worker_lock() as acquired:
        return not acquired


def start_worker() -> subprocess.Popen:
    """Start `manage.py worker --idle-exit N` detached, logging to run/worker.log."""
    manage = Path(django_settings.BASE_DIR) / "manage.py"
    with open(run_dir() / "worker.log", "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, str(manage), "worker", "--idle-exit", str(settings.LOCAL_IDLE_SECONDS)],
            cwd=str(manage.parent),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class LocalDispatcher(BaseDispatcher):
    # How often a waiting command makes sure a worker still runs.
    kick_seconds = 5.0
    _last_kick = 0.0

    def enqueue(self, job_id: int) -> None:
        # The job is already in the table; it only needs a worker to notice it.
        if not worker_running():
            log.info("no local worker running: starting one for job %s", job_id)
            start_worker()

    def deliver_webhook(self, delivery_id: int) -> None:
        # The delivery is in its table, due now: a worker's delivery thread sends it.
        if not worker_running():
            log.info("no local worker running: starting one for webhook delivery %s", delivery_id)
            start_worker()

    def while_waiting(self, video_ids: list[int]) -> None:
        """A worker started on enqueue exits when idle for a while: make sure one runs while
        these videos still have claimable work."""
        now = time.monotonic()
        if now - LocalDispatcher._last_kick < self.kick_seconds:
            return
        LocalDispatcher._last_kick = now
        job_id = (
            ProcessingJob.objects.claimable()
            .filter(video_id__in=video_ids)
            .values_list("pk", flat=True)
            .first()
        )
        if job_id is not None:
            self.enqueue(job_id)


def _queued() -> bool:
    """Jobs queued for later (a retry's backoff, a step waiting for a service): a worker
    started on demand stays for them, since nothing else would start one when they are due."""
    try:
        return ProcessingJob.objects.filter(state=JobState.QUEUED).exists()
    except DatabaseError:  # the database is away: idle as before, the next enqueue starts one
        return False


def _work_loop(stop: threading.Event, idle_exit: float | None, poll: float) -> None:
    idle_since = time.monotonic()
    while not stop.is_set():
        close_old_connections()
        ran = False
        try:
            for job_id in jobs_claimable_ids():
                if stop.is_set():
                    break
                ran = tasks.process_job(job_id) != "skipped" or ran
        except Exception:  # a lost database connection must not end the worker
            log.exception("worker loop error; retrying in %s s", poll)
            connection.close()
        if ran:
            idle_since = time.monotonic()
        elif idle_exit is not None and time.monotonic() - idle_since > idle_exit:
            if _queued() or _unfinished_deliveries():
                idle_since = time.monotonic()
            else:
                stop.set()
                break
        stop.wait(poll)
    connection.close()


def _unfinished_deliveries() -> bool:
    try:
        return deliveries_unfinished()
    except Exception:  # the database is away: not a reason to stay
        log.exception("could not count webhook deliveries")
        connection.close()
        return False


def _delivery_loop(stop: threading.Event, poll: float) -> None:
    """Send due webhook deliveries, one at a time, until the worker stops."""
    while not stop.is_set():
        close_old_connections()
        try:
            for delivery_id in deliveries_due_ids():
                if stop.is_set():
                    break
                tasks.deliver_webhook(delivery_id)
        except Exception:  # a lost database connection must not end the worker
            log.exception("webhook loop error; retrying in %s s", poll)
            connection.close()
        stop.wait(poll)
    connection.close()


def run_worker(*, concurrency: int = 1, idle_exit: float | None = None, poll: float = 1.0) -> bool:
    """Run jobs until stopped (or idle for `idle_exit` seconds). Returns False at once if
    another worker already holds the lock."""
    with worker_lock() as acquired:
        if not acquired:
            return False
        stop = threading.Event()
        threads = [
            threading.Thread(target=_work_loop, args=(stop, idle_exit, poll), daemon=True, name=f"worker-{i}")
            for i in range(max(1, concurrency))
        ]
        threads.append(
            threading.Thread(target=_delivery_loop, args=(stop, poll), daemon=True, name="webhooks")
        )
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.5)
        except KeyboardInterrupt:
            # One deadline for all the threads (not one each): a stopped worker is gone within
            # STOP_SECONDS however many threads it runs.
            stop.set()
            deadline = time.monotonic() + STOP_SECONDS
            for thread in threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return True
