"""Run one job, as every dispatch backend's task does: claim it, run its step with a heartbeat,
record how it ended, and derive the video's status again.

Whether a failure is retried is decided by what failed (`errors.is_transient`): the network,
the storage and the database retry with backoff; bad input, a passed limit and program errors
fail at once, since the same code on the same input would fail the same way again.

An encode that ran out of memory is retried once with a smaller footprint, recorded in the job's
options before the retry (`errors.smaller_footprint`), with the reason in the job's error.

A worker that cannot connect to the database (a role's connection limit, a pool or a proxy
out of connections, a server restarting) waits for it (`database_wait`) before the claim: the
job stays queued meanwhile, so a crowd of workers larger than the database's budget delays
jobs, it never fails or loses one (docs/database.md).

A step may also ask to be run again later (`errors.WaitUntil`: an outside service is working
for it): the job waits in the queue, due then, without counting an attempt (`job_wait`).
"""

import logging
import time
from datetime import timedelta
from functools import partial

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from transcoding.conf import settings
from transcoding.encoding.fanout import dispatch_released
from transcoding.errors import (
    RUNGS_PER_PROCESS,
    EncodeError,
    PermanentError,
    WaitUntil,
    is_transient,
    one_line,
    smaller_footprint,
)
from transcoding.jobs.steps import run_step
from transcoding.models import ProcessingJob
from transcoding.status import jobs, videos

log = logging.getLogger(__name__)


class Heartbeat:
    """Extends the job's lease at most every quarter lease (at least every second's call is
    cheap); raises JobCancelled once the job is no longer ours. A renewal the database refused
    is tried again at the next call."""

    def __init__(self, job: ProcessingJob):
        self.job, self.last = job, 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= max(1.0, settings.LEASE_SECONDS / 4):
            jobs.job_heartbeat(self.job)
            self.last = now  # only once renewed: a failed one is tried again at the next call


def database_wait(limit: float | None = None) -> float:
    """Connect this thread to the database, retrying with jittered exponential backoff (from
    0.1 s, at most 5 s apart) for up to `TRANSCODING_DB_CONNECT_WAIT_SECONDS`; returns the
    seconds waited. Past the limit the last error is raised: nothing was claimed, so the job
    is still queued and the backend delivers it again (Celery retries database errors, Lambda
    its failed invocations, the watchdog what is due and unclaimed). Only connecting is
    retried here: an error once connected is the step's to classify."""
    limit = settings.DB_CONNECT_WAIT_SECONDS if limit is None else limit
    started, attempt = time.monotonic(), 0
    while True:
        try:
            connection.ensure_connection()
            waited = time.monotonic() - started
            if attempt:
                log.info("database reachable after %.1f s (%d attempts)", waited, attempt + 1)
            return waited
        except OperationalError as exc:
            waited = time.monotonic() - started
            if waited >= limit:
                raise
            attempt += 1
            delay = min(jobs.retry_delay(attempt, base=0.1, cap=5.0), limit - waited)
            if attempt == 1:
                log.warning("cannot connect to the database, waiting: %s", one_line(exc))
            time.sleep(delay)


def job_run(job_id: int, token: str | None = None) -> str:
    """Claim and run one job. Returns what happened: "done", "retry", "waiting" (due again at
    its `next_attempt_at`), "failed", "held" (an encode with no slot under the caps on encodes
    in flight: dispatched again when one ends) or "skipped" (not ours to run: a duplicate
    delivery, or cancelled meanwhile)."""
    database_wait()
    try:
        job = jobs.job_claim(job_id, token)
    except jobs.JobHeld:
        log.info("job %s: held until an encode in flight ends (the caps on encodes in flight)", job_id)
        dispatch_released()  # claims racing for the last slot may all have given it back
        return "held"
    if job is None:
        return "skipped"
    outcome = _run(job)
    if job.step == ProcessingJob.Step.ENCODE:
        dispatch_released()  # this encode's slot goes to a held one (else the watchdog does)
    return outcome


def _run(job: ProcessingJob) -> str:
    try:
        cpu = run_step(job, Heartbeat(job))
    except jobs.JobCancelled:
        log.info("job %s: cancelled or taken over; stopped", job.pk)
        return "skipped"
    except WaitUntil as wait:
        end = partial(_waited, job, wait)
    except Exception as exc:
        end = partial(_failed, job, exc)
    else:
        end = partial(_finished, job, cpu)
    # How the job ended and the video's status it leaves commit together: nobody reads a job
    # done under a video still "processing". The video's row lock first, as the stitch takes
    # it (video, then jobs), so a chunk ending beside another's stitch cannot deadlock.
    # (Deriving the status only at the last job's end, to spare long videos this lock, broke
    # playback across the joins while later chunks encode: tests/scenarios/test_browser.py.)
    with transaction.atomic():
        videos.video_lock(job.video_id)
        outcome = end()
        videos.video_refresh_status(job.video)
    return outcome


def _finished(job: ProcessingJob, cpu: float) -> str:
    jobs.job_finish(job, cpu_seconds=cpu)
    return "done"


def _waited(job: ProcessingJob, wait: WaitUntil) -> str:
    until = timezone.now() + timedelta(seconds=wait.seconds)
    if not jobs.job_wait(job, until, wait.note):
        return "skipped"
    log.info("job %s: waiting until %s: %s", job.pk, until.isoformat(), wait.note)
    return "waiting"


def _failed(job: ProcessingJob, exc: Exception) -> str:
    """Record a failed attempt: transient failures retry with backoff; everything else fails
    the job at once, bad input and limits with their own sentence, program errors with their
    type (and a traceback in the log)."""
    transient = is_transient(exc)
    reason = one_line(exc)
    footprint = smaller_footprint(exc)
    if footprint and job.attempt < job.max_attempts:
        try:
            jobs.job_record_options(job, **footprint)
        except jobs.JobCancelled:
            return "skipped"
        if footprint.get(RUNGS_PER_PROCESS) == 1:
            reason = f"{reason} Retrying with one rung per ffmpeg process."
    if transient:
        log.warning("job %s: attempt %s failed (transient): %s", job.pk, job.attempt, reason)
    elif not isinstance(exc, (PermanentError, EncodeError)):
        log.exception("job %s: program error, not retried", job.pk)
        reason = f"Internal error (not retried): {reason}"
    if not jobs.job_fail(job, reason, permanent=not transient):
        jobs.job_will_retry(job, reason)
        return "retry"
    if transient:
        reason = f"Processing failed after {job.attempt} attempts: {reason}"
    jobs.job_failed_for_good(job, reason)
    return "failed"
