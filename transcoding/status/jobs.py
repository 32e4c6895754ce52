"""The life of a ProcessingJob: claim, heartbeat, finish, fail, retry. Backend-agnostic.

Delivery is at least once on every backend, so a job is claimed by one conditional UPDATE:
whoever changes the row owns the job (under a fresh token), everyone else does nothing. Every
later write is conditional on that token, so a worker whose lease expired and was taken over
cannot overwrite its successor's result.
"""

import logging
import os
import random
import socket
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from transcoding.conf import settings
from transcoding.errors import EncodeError, PermanentError, is_transient, one_line
from transcoding.models import JobState, ProcessingJob

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 4000


class JobCancelled(Exception):
    """The job was cancelled or taken over while this worker ran it."""


def worker_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claimable_q(now=None) -> Q:
    now = now or timezone.now()
    waiting = Q(state=JobState.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    abandoned = Q(state=JobState.RUNNING, lease_expires_at__lt=now)
    return waiting | abandoned


def job_claim(job_id: int, token: str | None = None) -> ProcessingJob | None:
    """Take the job if it is waiting or its lease expired; None if someone else has it,
    it is finished, or it has used up its attempts (then it is failed here)."""
    now = timezone.now()
    token = token or worker_token()
    claimed = ProcessingJob.objects.filter(claimable_q(now), pk=job_id).update(
        state=JobState.RUNNING,
        attempt=F("attempt") + 1,
        worker=token,
        lease_expires_at=now + timedelta(seconds=settings.LEASE_SECONDS),
        heartbeat_at=now,
        started_at=now,
        next_attempt_at=None,
    )
    if not claimed:
        return None
    job = ProcessingJob.objects.select_related("video").get(pk=job_id)
    if job.attempt > job.max_attempts:
        job_fail(
            job,
            f"Gave up after {job.max_attempts} attempts; the last one stopped without finishing.",
            permanent=True,
        )
        return None
    return job


def _owned(job: ProcessingJob):
    return ProcessingJob.objects.filter(pk=job.pk, state=JobState.RUNNING, worker=job.worker)


def job_heartbeat(job: ProcessingJob) -> None:
    """Extend the lease; raises JobCancelled when the job is no longer ours."""
    now = timezone.now()
    updated = _owned(job).update(
        heartbeat_at=now, lease_expires_at=now + timedelta(seconds=settings.LEASE_SECONDS)
    )
    if not updated:
        raise JobCancelled(f"Job {job.pk} was cancelled or taken over.")


def job_finish(job: ProcessingJob, *, log_tail: str = "", cpu_seconds: float | None = None) -> bool:
    return bool(
        _owned(job).update(
            state=JobState.DONE,
            finished_at=timezone.now(),
            lease_expires_at=None,
            error="",
            log_tail=log_tail[-LOG_TAIL_CHARS:],
            cpu_seconds=cpu_seconds,
        )
    )


def retry_delay(attempt: int, base: float | None = None, cap: float = 900.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
    base = settings.RETRY_BASE_SECONDS if base is None else base
    return random.uniform(0, min(cap, base * 2 ** max(attempt - 1, 0)))


def job_fail(job: ProcessingJob, error: str, *, permanent: bool, log_tail: str = "") -> bool:
    """Record a failure. Transient failures with attempts left go back to the queue after a
    backoff; returns True when the job is finally failed."""
    now = timezone.now()
    final = permanent or job.attempt >= job.max_attempts
    fields = {"error": error[:500], "log_tail": log_tail[-LOG_TAIL_CHARS:], "lease_expires_at": None}
    if final:
        fields.update(state=JobState.FAILED, finished_at=now)
    else:
        fields.update(
            state=JobState.QUEUED,
            next_attempt_at=now + timedelta(seconds=retry_delay(job.attempt)),
        )
    with transaction.atomic():
        _owned(job).update(**fields)
    return final


def jobs_claimable_ids(limit: int = 20) -> list[int]:
    """First chunks first, then the oldest: a new video's start is never stuck behind the
    later chunks of a long one, and the first video uploaded is the first served."""
    return list(
        ProcessingJob.objects.filter(claimable_q())
        .order_by(Coalesce("chunk", 0), "created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def jobs_requeue_stuck() -> tuple[int, int]:
    """Requeue running jobs whose lease expired; fail those with no attempts left.
    Returns (requeued, failed)."""
    now = timezone.now()
    stuck = ProcessingJob.objects.filter(state=JobState.RUNNING, lease_expires_at__lt=now)
    failed = stuck.filter(attempt__gte=F("max_attempts")).update(
        state=JobState.FAILED,
        finished_at=now,
        lease_expires_at=None,
        error="The worker stopped (lease expired) and no attempts are left.",
    )
    requeued = stuck.update(state=JobState.QUEUED, lease_expires_at=None, next_attempt_at=now)
    return requeued, failed


def job_run(job_id: int, token: str | None = None) -> str:
    """Claim and run one job; what every backend's task calls. Returns what happened:
    "done", "retry", "failed" or "skipped" (not ours to run: a duplicate delivery)."""
    from transcoding import services
    from transcoding.encoding import encode as pipeline

    job = job_claim(job_id, token)
    if job is None:
        return "skipped"
    last_beat = [0.0]

    def heartbeat():
        import time

        now = time.monotonic()
        if now - last_beat[0] >= max(1.0, settings.LEASE_SECONDS / 4):
            last_beat[0] = now
            job_heartbeat(job)

    try:
        cpu = pipeline.run_step(job, heartbeat)
    except JobCancelled:
        log.info("job %s: cancelled or taken over; stopped", job_id)
        return "skipped"
    except Exception as exc:
        outcome = _failed(job, exc)
    else:
        job_finish(job, cpu_seconds=cpu)
        outcome = "done"
    services.video_refresh_status(job.video)
    return outcome


def _failed(job: ProcessingJob, exc: Exception) -> str:
    """Record a failed attempt. Transient failures (network, storage, database: `errors.
    is_transient`) retry with backoff; everything else fails the job at once: bad input and
    limits with their own sentence, program errors with their type (and a traceback in the
    log), since the same code on the same input would fail the same way again."""
    from transcoding.encoding import encode as pipeline

    transient = is_transient(exc)
    reason = one_line(exc)
    if transient:
        log.warning("job %s: attempt %s failed (transient): %s", job.pk, job.attempt, reason)
    elif not isinstance(exc, (PermanentError, EncodeError)):
        log.exception("job %s: program error, not retried", job.pk)
        reason = f"Internal error (not retried): {reason}"
    final = job_fail(job, reason, permanent=not transient)
    if not final:
        pipeline.mark_retrying(job, reason)
        return "retry"
    if transient:
        reason = f"Processing failed after {job.attempt} attempts: {reason}"
    pipeline.mark_failed(job, reason)
    return "failed"


def jobs_requeue_stuck_ids() -> tuple[list[int], list[int]]:
    """Like `jobs_requeue_stuck`, but returns the ids it changed: (requeued, failed), so the
    caller can dispatch the requeued jobs again and fail the videos of the others. Each row is
    changed by a conditional UPDATE, so a job whose worker heart-beat meanwhile is left alone."""
    now = timezone.now()
    stuck = ProcessingJob.objects.filter(state=JobState.RUNNING, lease_expires_at__lt=now)
    requeued, failed = [], []
    for pk, attempt, max_attempts in stuck.order_by("pk").values_list("pk", "attempt", "max_attempts"):
        row = stuck.filter(pk=pk)
        if attempt >= max_attempts:
            changed = row.filter(attempt__gte=F("max_attempts")).update(
                state=JobState.FAILED,
                finished_at=now,
                lease_expires_at=None,
                error="The worker stopped (lease expired) and no attempts are left.",
            )
            if changed:
                failed.append(pk)
        else:
            changed = row.filter(attempt__lt=F("max_attempts")).update(
                state=JobState.QUEUED, lease_expires_at=None, next_attempt_at=now
            )
            if changed:
                requeued.append(pk)
    return requeued, failed


def jobs_due_unclaimed_ids(grace_seconds: float | None = None) -> list[int]:
    """Queued jobs that have been due for a while and nobody claimed: their delivery was lost,
    or their retry's backoff has passed on a backend that does not schedule retries (Lambda).
    The grace covers a normal delivery (a Lambda cold start takes tens of seconds)."""
    grace = settings.REDISPATCH_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    waiting = Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True, created_at__lte=cutoff)
    return list(
        ProcessingJob.objects.filter(waiting, state=JobState.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
