"""The encode step (`encode`), as a short sequence: what is left to make, probe, plan, fan out
the chunks (the root job), make this job's chunk (`session.ChunkSession`), or, when an earlier
attempt made it already, only try the stitch.

Everything is written to a temporary work directory first and stored as ffmpeg finishes it; a
part is marked ready only once all its files are stored.
"""

import logging
from collections.abc import Callable

from django.db import transaction

from transcoding.conf import settings
from transcoding.encoding import fanout, stitch
from transcoding.encoding.results import ChunkResult
from transcoding.encoding.session import ChunkSession
from transcoding.ingest.source import probe_and_record, probe_as_recorded
from transcoding.media.chunking import ChunkSpan
from transcoding.media.ladder import Plan, plan_encode
from transcoding.models import (
    PartKind,
    PartStatus,
    Poster,
    ProcessingJob,
    Rendition,
    Storyboard,
    Video,
    preset_spec,
)
from transcoding.status import parts as part_status
from transcoding.status import videos
from transcoding.storage import objects

log = logging.getLogger(__name__)

NO_AUDIO = "The source has no audio."


def encode(job: ProcessingJob, heartbeat: Callable[[], None]) -> float:
    """Run one encode job: the root plans the chunks, fans them out and makes chunk 0 (with
    the audio, and the poster); a chunk job makes its time range. The last chunk to finish
    stitches. Returns the ffmpeg CPU seconds. Raises SourceRejected for input that can never
    work, EncodeError or storage errors otherwise."""
    video = Video.objects.select_related("preset").get(pk=job.video_id)
    is_root = job.parent_id is None
    root_id = job.pk if is_root else job.parent_id
    if is_root:
        # Under the video's lock, which the stitch holds while it marks the rungs ready: a
        # retried root that finds everything made leaves a ready video as it is. Decided again
        # after the probe (`_start_parts`), since the last chunk may stitch meanwhile.
        with transaction.atomic():
            videos.video_lock(video.pk)
            parts = _left_to_make(video, job)
            if parts:
                videos.video_processing(video.pk)
                Storyboard.objects.get_or_create(video=video)
                Poster.objects.get_or_create(video=video)
    else:
        parts = tuple(job.parts)
    if not parts:
        return 0.0

    info = probe_and_record(video) if is_root else probe_as_recorded(video)
    plan = plan_encode(
        info,
        preset_spec(video.preset),
        segment_seconds=settings.SEGMENT_SECONDS,
        poster_time=video.poster_time,
    )
    if is_root:
        # Planned from the job's parts, not what is left of them: a retry plans the same chunks
        # (and finds their jobs already there).
        spans = fanout.plan_spans(plan, info, tuple(job.parts))
        parts = _start_parts(video, job, plan)
        if not parts:
            return 0.0
        fanout.fan_out(job, spans, plan, tuple(job.parts))
        span, mine = spans[0], fanout.chunk_parts(parts, plan, spans, 0)
    else:
        span, mine = ChunkSpan.from_json(job.options["span"]), parts

    if ChunkResult.from_json(job.result).complete:
        # An earlier attempt made and recorded this chunk; what is left is the stitch, and
        # whatever failed after it (the poster).
        mine = tuple(p for p in mine if p not in fanout.CHUNKED_PARTS)
    if not mine:
        stitch.fan_in(job, root_id, plan)
        return 0.0
    return ChunkSession(video, job, root_id, plan, span, mine, heartbeat).run()


def _start_parts(video: Video, job: ProcessingJob, plan: Plan) -> tuple[str, ...]:
    """Set the rows of what is left to make queued to the plan, then running; returns those
    parts. Decided again under the video's row lock, which the stitch holds while it marks
    the rungs ready: a retried root whose earlier attempt had recorded its chunk can start
    while the last chunk stitches, and from what it read before the lock it would set the
    ready rungs back to running, for good."""
    with transaction.atomic():
        videos.video_lock(video.pk)
        parts = _left_to_make(video, job)
        sync_renditions(video, plan, parts)
        part_status.parts_start(video.pk, parts)
    return parts


def _left_to_make(video: Video, job: ProcessingJob) -> tuple[str, ...]:
    """The job's parts, less those an earlier attempt of it finished: a retry never redoes them."""
    parts = tuple(job.parts)
    if job.attempt <= 1:
        return parts
    done = part_status.finished_since(video.pk, job.created_at)
    if done:
        log.info(
            "video %s: attempt %s skips %s, finished before", video.pk, job.attempt, ", ".join(sorted(done))
        )
    return tuple(p for p in parts if p not in done)


def sync_renditions(video: Video, plan: Plan, parts: tuple[str, ...]) -> None:
    """Make the Rendition rows match the plan (queued); rungs no longer planned go, files
    first (a row gone with its files left would leave them to nobody); the audio is skipped,
    with the reason, for a silent source."""
    if PartKind.RENDITIONS in parts:
        planned = {r.name for r in plan.rungs}
        for stale in video.renditions.filter(kind=Rendition.Kind.VIDEO).exclude(name__in=planned):
            objects.delete_prefix(f"{objects.video_prefix(video.pk)}/{stale.name}")
            stale.delete()
        for rung in plan.rungs:
            Rendition.objects.update_or_create(
                video=video,
                name=rung.name,
                defaults={
                    "kind": Rendition.Kind.VIDEO,
                    "width": rung.width,
                    "height": rung.height,
                    "fps": round(float(rung.fps), 3),
                    "crf": rung.crf,
                    "bitrate": rung.max_bitrate,
                    "status": PartStatus.QUEUED,
                    "progress": 0,
                    "error": "",
                },
            )
    if PartKind.AUDIO in parts:
        audio, _ = Rendition.objects.get_or_create(
            video=video, name="audio", defaults={"kind": Rendition.Kind.AUDIO}
        )
        silent = plan.audio is None
        audio.status = PartStatus.SKIPPED if silent else PartStatus.QUEUED
        audio.error, audio.progress = (NO_AUDIO if silent else ""), 0
        audio.bitrate = None if silent else plan.audio.bitrate
        audio.codec = "" if silent else "mp4a.40.2"
        audio.save()
