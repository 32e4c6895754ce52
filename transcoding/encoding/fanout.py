"""Fan-out: a long video is encoded in chunks (`media.chunking` plans them), each its own job.

The encode job a request creates (the root) plans the chunks, creates one ProcessingJob per
further chunk (once: a retried root finds them), dispatches those the caps on encodes in flight
allow (`status.slots`) in time order after commit and holds the rest, and encodes chunk 0
itself, so the start of the video never waits for a dispatch.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Avg, Q
from django.utils import timezone

from transcoding.conf import chunk_seconds, chunk_threshold_seconds, settings
from transcoding.errors import LimitExceeded
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.media import chunking
from transcoding.media.ladder import Plan, SourceInfo
from transcoding.models import PartKind, ProcessingJob, Video
from transcoding.status import parts as part_status
from transcoding.status import slots, videos

log = logging.getLogger(__name__)

# Parts that are made chunk by chunk; audio and the poster are made once.
CHUNKED_PARTS = (PartKind.RENDITIONS, PartKind.STORYBOARD)


def plan_spans(plan: Plan, info: SourceInfo, parts: tuple[str, ...]) -> tuple[chunking.ChunkSpan, ...]:
    """Chunks only when renditions are encoded: a storyboard or poster alone is one pass. A
    plan of more chunk jobs than `TRANSCODING_MAX_CHUNKS` is refused before any is created."""
    threshold = chunk_threshold_seconds() if PartKind.RENDITIONS in parts else float("inf")
    spans = chunking.plan_chunks(
        plan.duration,
        info.fps,
        segment_seconds=plan.segment_seconds,
        chunk_seconds=chunk_seconds(),
        threshold_seconds=threshold,
        tile_interval=plan.storyboard.interval,
        tile_count=plan.storyboard.count,
    )
    if len(spans) > settings.MAX_CHUNKS:
        raise LimitExceeded(
            f"The video would need {len(spans)} chunk jobs, beyond the {settings.MAX_CHUNKS} limit "
            "(TRANSCODING_MAX_CHUNKS)."
        )
    return spans


def _poster_chunk(plan: Plan, spans) -> int:
    """The chunk that makes the poster: the one holding the chosen time, else the first (its
    frames stand for the video; the poster is then ready as early as anything)."""
    return 0 if plan.poster.time is None else chunking.chunk_containing(spans, plan.poster.time).index


def chunk_parts(parts: tuple[str, ...], plan: Plan, spans, index: int) -> tuple[str, ...]:
    """What chunk `index` makes of the requested parts."""
    made = []
    for part in parts:
        if (
            part in CHUNKED_PARTS
            or (part == PartKind.AUDIO and index == 0)
            or (part == PartKind.POSTER and index == _poster_chunk(plan, spans))
        ):
            made.append(part)
    return tuple(made)


def fan_out(root: ProcessingJob, spans, plan: Plan, parts: tuple[str, ...]) -> list[int]:
    """Create the jobs of chunks 1..n (once: a retried root finds them) and dispatch the new
    ones, in time order, after commit. Returns their ids.

    In a few queries whatever the count (one INSERT for the missing chunks, in batches): a
    job per chunk made one by one was two queries a chunk, and a thousand chunks kept the root
    from heart-beating long enough for its lease to expire. The root's row, updated first, is
    locked until commit, so a second fan-out of the same root waits and then finds the jobs.
    After the video's row lock, the order every writer keeps (`videos.video_lock`): the new
    rows' key on the video waits for that lock anyway, with the root's row held."""
    with transaction.atomic():
        videos.video_lock(root.video_id)
        options = {**root.options, "span": spans[0].to_json(), "chunks": len(spans)}
        ProcessingJob.objects.filter(pk=root.pk).update(chunk=0, options=options)
        root.chunk, root.options = 0, options
        existing = set(ProcessingJob.objects.filter(parent=root).values_list("chunk", flat=True))
        new_jobs = ProcessingJob.objects.bulk_create(
            [
                ProcessingJob(
                    parent=root,
                    chunk=span.index,
                    video_id=root.video_id,
                    step=ProcessingJob.Step.ENCODE,
                    parts=list(chunk_parts(parts, plan, spans, span.index)),
                    options={"span": span.to_json(), "chunks": len(spans)},
                    max_attempts=root.max_attempts,
                )
                for span in spans[1:]
                if span.index not in existing
            ],
            batch_size=500,
        )
        created = [job.pk for job in new_jobs]
        # Every new chunk job is held, then those that fit under the caps on encodes in
        # flight are released: the others wait for a running encode to hand its slot on.
        slots.hold(created)
        released = dispatch_released()
    if created:
        log.info(
            "video %s: %d chunks; dispatched %d, held %d",
            root.video_id, len(spans), len(released), len(set(created) - set(released)),
        )  # fmt: skip
    return created


def dispatch_released() -> list[int]:
    """Release the held encode jobs that fit under the caps now (`status.slots.release`) and
    dispatch them after commit: called by the fan-out, by every encode's end (its slot is
    handed on) and by the watchdog. Returns their ids."""
    with transaction.atomic():
        released = slots.release()
        dispatcher = get_dispatcher()
        for job_id in released:
            transaction.on_commit(lambda job_id=job_id: dispatcher.enqueue(job_id), robust=True)
    return released


def chunk_count(job: ProcessingJob) -> int:
    return int(job.options.get("chunks", 1))


def record_progress(job: ProcessingJob, root_id: int, parts: tuple[str, ...], percent: int) -> int | None:
    """This chunk's own progress, and the chunked parts' progress as the mean over chunks.
    Returns the video's progress, or None when another chunk wrote it less than
    `TRANSCODING_PROGRESS_INTERVAL` ago.

    The mean reads every chunk of the video, so it is written at most once per interval per
    video (a conditional UPDATE on the root job elects the writer), not on every chunk's
    write: with a thousand chunks a write costs two queries, not a read of a thousand rows and
    writes to the video's hot rows. A complete chunk's 100 (`stitch.finish_chunk`) is never
    overwritten by a late write of a worker that was taken over."""
    ProcessingJob.objects.filter(pk=job.pk, progress__lt=100).update(progress=percent)
    now = timezone.now()
    due = Q(progress_aggregated_at__isnull=True) | Q(
        progress_aggregated_at__lte=now - timedelta(seconds=settings.PROGRESS_INTERVAL)
    )
    if not ProcessingJob.objects.filter(due, pk=root_id).update(progress_aggregated_at=now):
        return None
    mean = round(ProcessingJob.objects.batch(root_id).aggregate(mean=Avg("progress"))["mean"] or 0)
    chunked = tuple(p for p in parts if p in CHUNKED_PARTS)
    part_status.parts_progress(job.video_id, chunked, mean, running_only=True)
    Video.objects.filter(pk=job.video_id).update(progress=mean)
    return mean
