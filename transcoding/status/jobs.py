"""The life of a ProcessingJob: claim, heartbeat, wait, finish, fail, retry, cancel; and what a job
that ends for good means for its video's parts. Backend-agnostic.

Delivery is at least once on every backend, so a job is claimed by one conditional UPDATE:
whoever changes the row owns the job (under a fresh token), everyone else does nothing. Every
later write is conditional on that token, so a worker whose lease expired and was taken over
cannot overwrite its successor's result. Which jobs are active, stuck or claimable is defined
once, by `ProcessingJobQuerySet` (models.py).
"""

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
from transcoding.models import JobState, ProcessingJob, Video
from transcoding.status import parts, slots, videos
from transcoding.status.events import announce

LOG_TAIL_CHARS = 4000
GAVE_UP = "The worker stopped (lease expired) and no attempts are left."


class JobCancelled(Exception):
    """The job was cancelled or taken over while this worker ran it."""


class JobHeld(Exception):
    """The claim found no slot under the caps on encodes in flight (`status.slots`): the job
    is held until a running one ends."""


def worker_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _ended(job_id: int, video_id: int, old: str, new: str) -> None:
    announce(ProcessingJob, job_id, video_id, "state", old, new)


def job_claim(job_id: int, token: str | None = None) -> ProcessingJob | None:
    """Take the job if it is waiting or its lease expired; None if someone else has it,
    it is finished, or it has used up its attempts (then it is failed here). Raises JobHeld
    when it is an encode and the caps on encodes in flight leave no slot: the claim is given
    back and the job held (`status.slots`)."""
    now = timezone.now()
    token = token or worker_token()
    claimable = ProcessingJob.objects.claimable(now).filter(pk=job_id)
    with transaction.atomic():
        # The state it leaves (queued, or running under a dead worker's lease), for observers;
        # the row lock makes a second claimer wait, then find it taken.
        old = claimable.select_for_update().values_list("state", flat=True).first()
        claimed = old is not None and claimable.update(
            state=JobState.RUNNING,
            held=False,
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
        announce(ProcessingJob, job.pk, job.video_id, "state", old, JobState.RUNNING)
    # The caps are checked once the claim is committed, without a lock (see `status.slots`).
    if job.step == ProcessingJob.Step.ENCODE and slots.over_cap(job.video_id):
        _give_back(job)
        raise JobHeld(f"Job {job_id} waits for a slot (the caps on encodes in flight).")
    if job.attempt > job.max_attempts:
        job_fail(
            job,
            f"Gave up after {job.max_attempts} attempts; the last one stopped without finishing.",
            permanent=True,
        )
        return None
    return job


def _give_back(job: ProcessingJob) -> None:
    """Undo a claim the caps refused: queued and held again, the attempt not counted."""
    given_back = _owned(job).update(
        state=JobState.QUEUED,
        held=True,
        attempt=F("attempt") - 1,
        worker="",
        lease_expires_at=None,
        heartbeat_at=None,
        started_at=None,
    )
    if given_back:
        _ended(job.pk, job.video_id, JobState.RUNNING, JobState.QUEUED)


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


def job_record_result(job: ProcessingJob, **values) -> None:
    """Merge `values` into the job's result while the worker owns it (what a step must find
    again on a later run, before it does what cannot be undone: an outside job's name before
    starting it). Raises JobCancelled when the job is no longer ours."""
    result = {**(job.result or {}), **values}
    if not _owned(job).update(result=result):
        raise JobCancelled(f"Job {job.pk} was cancelled or taken over.")
    job.result = result


def job_record_options(job: ProcessingJob, **values) -> None:
    """Merge `values` into the job's options while the worker owns it: how its next attempt
    must run (a smaller footprint after running out of memory, `errors.smaller_footprint`).
    Options, not the result: a chunk's result is rewritten as its segments are stored. Raises
    JobCancelled when the job is no longer ours."""
    options = {**(job.options or {}), **values}
    if not _owned(job).update(options=options):
        raise JobCancelled(f"Job {job.pk} was cancelled or taken over.")
    job.options = options


def job_wait(job: ProcessingJob, until, note: str = "") -> bool:
    """The step asked to be run again at `until` (`errors.WaitUntil`): back to the queue, due
    then, and every backend delivers it again (Celery with an eta, the local worker when it is
    claimable, Lambda through the watchdog's `jobs_due_unclaimed_ids`). Waiting is not an
    attempt: the one the claim counted is given back, so no number of waits fails a job, and
    its parts stay as they are (running). Returns False when the job was no longer ours."""
    waited = bool(
        _owned(job).update(
            state=JobState.QUEUED,
            attempt=F("attempt") - 1,
            next_attempt_at=until,
            lease_expires_at=None,
            error="",
            log_tail=note[-LOG_TAIL_CHARS:],
        )
    )
    if waited:
        _ended(job.pk, job.video_id, JobState.RUNNING, JobState.QUEUED)
    return waited


def job_finish(job: ProcessingJob, *, log_tail: str = "", cpu_seconds: float | None = None) -> bool:
    finished = bool(
        _owned(job).update(
            state=JobState.DONE,
            finished_at=timezone.now(),
            lease_expires_at=None,
            error="",
            log_tail=log_tail[-LOG_TAIL_CHARS:],
            cpu_seconds=cpu_seconds,
        )
    )
    if finished:
        _ended(job.pk, job.video_id, JobState.RUNNING, JobState.DONE)
    return finished


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
    if _owned(job).update(**fields) and final:
        _ended(job.pk, job.video_id, JobState.RUNNING, JobState.FAILED)
    return final


def job_will_retry(job: ProcessingJob, reason: str) -> None:
    """A transient failure with attempts left: the parts it was making wait for the retry
    (a chunk of several leaves them alone: the other chunks are still making them)."""
    if job.parent_id is not None:
        return
    if job.step == ProcessingJob.Step.SUBTITLES:
        parts.generated_tracks_retrying(job.video_id, reason)
    else:
        parts.parts_retrying(job.video_id, tuple(job.parts), reason)


def job_failed_for_good(job: ProcessingJob, reason: str) -> None:
    """An encode that failed for good fails its video (every waiting part, with the reason; the
    original stays) and stops its other chunks; a subtitles job fails only its track, and a
    download job only its downloads: the video plays on."""
    if job.step == ProcessingJob.Step.SUBTITLES:
        parts.generated_tracks_fail(job.video_id, reason)
        return
    if job.step == ProcessingJob.Step.DOWNLOAD:
        parts.downloads_fail(job.video_id, reason, job.options.get("rungs"))
        return
    chunks_cancel(job, f"Another chunk failed: {reason}")
    videos.video_fail(Video.objects.get(pk=job.video_id), reason)


def _cancel(queryset, reason: str) -> int:
    ids = list(queryset.active().values_list("pk", "video_id", "state"))
    count = (
        queryset.filter(pk__in=[pk for pk, _, _ in ids])
        .active()
        .update(state=JobState.CANCELLED, finished_at=timezone.now(), error=reason[:500])
    )
    for pk, video_id, state in ids:
        _ended(pk, video_id, state, JobState.CANCELLED)
    return count


def jobs_cancel(video_id: int, reason: str, *, step: str | None = None) -> int:
    """Cancel the video's queued and running jobs (of one step, or all). A running worker sees
    it at its next heartbeat and stops. Returns how many."""
    queryset = ProcessingJob.objects.filter(video_id=video_id)
    return _cancel(queryset.filter(step=step) if step else queryset, reason)


def chunks_cancel(job: ProcessingJob, reason: str) -> int:
    """A chunk failed for good: the other chunks' work is wasted, stop it."""
    return _cancel(ProcessingJob.objects.batch(job.parent_id or job.pk).exclude(pk=job.pk), reason)


def jobs_claimable_ids(limit: int = 20) -> list[int]:
    """First chunks first, then the oldest: a new video's start is never stuck behind the
    later chunks of a long one, and the first video uploaded is the first served."""
    return list(
        ProcessingJob.objects.claimable()
        .order_by(Coalesce("chunk", 0), "created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def jobs_requeue_or_fail_stuck() -> tuple[list[int], list[int]]:
    """Stuck jobs go back to the queue; those with no attempts left fail for good, with their
    video (`job_failed_for_good`). Returns the ids changed: (requeued, failed), so the caller
    can dispatch the first again. Each row is changed by a conditional UPDATE, so a job whose
    worker heart-beat meanwhile is left alone.

    Each job in a transaction of its own, after its video's row lock: the order every writer
    keeps (`videos.video_lock`), and one video's lock at a time. Failing a root while holding
    its job rows deadlocked with a chunk's end (which holds the video's lock and wants its
    job's row), and a pass holding many videos' locks, taken in job order, could deadlock with
    another pass or with a duplicate's link (two videos' locks)."""
    now = timezone.now()
    stuck = ProcessingJob.objects.stuck(now)
    requeued, failed = [], []
    for pk, video_id, attempt, max_attempts in stuck.order_by("pk").values_list(
        "pk", "video_id", "attempt", "max_attempts"
    ):
        with transaction.atomic():
            videos.video_lock(video_id)
            row = stuck.filter(pk=pk)
            if attempt >= max_attempts:
                changed = row.filter(attempt__gte=F("max_attempts")).update(
                    state=JobState.FAILED, finished_at=now, lease_expires_at=None, error=GAVE_UP
                )
                if changed:
                    failed.append(pk)
                    _ended(pk, video_id, JobState.RUNNING, JobState.FAILED)
                    job = ProcessingJob.objects.select_related("video").get(pk=pk)
                    job_failed_for_good(job, job.error or GAVE_UP)
                    videos.video_refresh_status(job.video)
            else:
                changed = row.filter(attempt__lt=F("max_attempts")).update(
                    state=JobState.QUEUED, lease_expires_at=None, next_attempt_at=now
                )
                if changed:
                    requeued.append(pk)
    return requeued, failed


def jobs_due_unclaimed_ids(grace_seconds: float | None = None) -> list[int]:
    """Queued jobs that have been due for a while and nobody claimed: their delivery was lost,
    or their retry's backoff or their step's wait (`job_wait`) has passed on a backend that
    does not schedule deliveries (Lambda). Held jobs are not among them: no message was lost,
    they wait for a slot (`slots.release`).
    The grace covers a normal delivery (a Lambda cold start takes tens of seconds)."""
    grace = settings.REDISPATCH_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    waiting = Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True, created_at__lte=cutoff)
    return list(
        ProcessingJob.objects.filter(waiting, state=JobState.QUEUED, held=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
