"""Requests for work, used by the admin, the views, the commands and the S3 router: queue a
video's processing or its subtitles, cancel, delete, and edit subtitle tracks. Every job is
dispatched only after the transaction that created it commits.

Status writes are `transcoding.status`'s; creating videos is `transcoding.ingest.create`'s.
"""

import logging

from django.db import transaction
from django.utils import timezone

from transcoding.captions import subtitles
from transcoding.conf import settings
from transcoding.errors import InvalidRequest
from transcoding.ingest.dedupe import video_link_duplicate, video_unlink
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import (
    ENCODE_PARTS,
    JobState,
    PartKind,
    PartStatus,
    Poster,
    ProcessingJob,
    Rendition,
    Storyboard,
    Subtitle,
    Video,
)
from transcoding.status import jobs, videos
from transcoding.status import parts as part_status
from transcoding.storage import references
from transcoding.storage.objects import video_prefix
from transcoding.webhooks import events as webhook_events

log = logging.getLogger(__name__)

REPLACED = "Replaced by a new request."
CANCELLED = "Cancelled by staff."


def processing_parts(parts=None) -> tuple[str, ...]:
    """The part kinds `video_request_processing` would queue for `parts` (None: all that can
    be made); raises InvalidRequest for kinds that cannot be processed."""
    try:
        kinds = tuple(PartKind(k) for k in (parts or ENCODE_PARTS))
    except ValueError as exc:
        raise InvalidRequest(f"Unknown part: {exc}")
    return tuple(k.value for k in kinds)


def _create_job(video: Video, step: str, parts: list[str], **fields) -> ProcessingJob:
    """A job for the video, dispatched once the transaction commits (unless already done)."""
    job = ProcessingJob.objects.create(
        video=video, step=step, parts=parts, max_attempts=settings.MAX_ATTEMPTS, **fields
    )
    if job.state == JobState.QUEUED:
        transaction.on_commit(lambda: get_dispatcher().enqueue(job.pk), robust=True)
    return job


def video_request_processing(video: Video, *, parts=None, force: bool = False) -> ProcessingJob:
    """Queue (re)processing of some or all parts. One active job per video: asking again
    while one is queued or running returns it, unless `force` cancels it first."""
    kinds = processing_parts(parts)
    if PartKind.SUBTITLES in kinds:
        job = subtitle_request_generation(video, force=force)
        kinds = tuple(k for k in kinds if k != PartKind.SUBTITLES)
        if not kinds:
            return job
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video.pk)
        active = video.jobs.active().filter(step=ProcessingJob.Step.ENCODE).first()
        if active is not None and not force:
            return active
        if not force and set(ENCODE_PARTS) <= set(kinds) and video_link_duplicate(video):
            # The same bytes were processed already: reuse those outputs, encode nothing.
            video.refresh_from_db(fields=["outputs_from"])
            now = timezone.now()
            reused = f"Same source as video {video.outputs_from_id}: its outputs are reused."
            return _create_job(
                video, ProcessingJob.Step.ENCODE, list(kinds), state=JobState.DONE, started_at=now,
                finished_at=now, log_tail=reused,
            )  # fmt: skip
        if video.output_prefix not in ("", video_prefix(video.pk)):
            # Linked to another video's outputs: any reprocessing encodes everything, its own,
            # and nothing of the other video's stays named meanwhile.
            kinds = tuple(dict.fromkeys([*(k.value for k in ENCODE_PARTS), *kinds]))
            video_unlink(video)
        jobs.jobs_cancel(video.pk, REPLACED, step=ProcessingJob.Step.ENCODE)
        Storyboard.objects.get_or_create(video=video)
        Poster.objects.get_or_create(video=video)
        part_status.parts_queue(video.pk, kinds)
        job = _create_job(video, ProcessingJob.Step.ENCODE, list(kinds))
        videos.video_queued(video.pk, error="", progress=0, processing_finished_at=None, outputs_from=None)
    return job


def video_cancel(video: Video) -> int:
    """Cancel queued and running work. A running worker sees it at its next heartbeat and
    stops ffmpeg; finished parts are kept."""
    with transaction.atomic():
        count = jobs.jobs_cancel(video.pk, CANCELLED)
        part_status.parts_cancel(video.pk, CANCELLED)
        videos.video_refresh_status(video)
    return count


def video_delete(video: Video) -> None:
    """Delete the video with every stored output (S3: deleted in batches of 1000) and its
    original. Outputs that another video plays (a duplicate linked to them by
    `video_link_duplicate`) stay until the last video using them is deleted. The
    `video.deleted` webhook carries the document as it was before anything went, and is
    written in the transaction that deletes the row."""
    document = webhook_events.video_deleting_document(video.pk)
    video_cancel(video)
    videos.video_deleting(video.pk)  # not ready any more: nothing new links to outputs about to go
    references.video_delete_outputs(video)
    if video.source:
        video.source.delete(save=False)
    for subtitle in video.subtitles.all():
        if subtitle.file:
            subtitle.file.delete(save=False)
    with transaction.atomic():
        webhook_events.video_deleted(video.pk, document)
        video.delete()


def subtitle_save(subtitle: Subtitle) -> Subtitle:
    """Save a track edited in the admin. A new uploaded file (already validated by
    `subtitles.parse`) is published now when the video has renditions to segment it on,
    otherwise by the encode; an edit of a published track's language, label or default
    republishes it so the manifests say the same."""
    previous = Subtitle.objects.filter(pk=subtitle.pk).first() if subtitle.pk else None
    new_file = subtitle.file and (previous is None or previous.file.name != subtitle.file.name)
    with transaction.atomic():
        if subtitle.is_default:
            Subtitle.objects.filter(video=subtitle.video).exclude(pk=subtitle.pk).update(is_default=False)
        if new_file:
            part_status.track_queued(subtitle)
        else:
            subtitle.save()
    has_grid = subtitle.video.renditions.filter(kind=Rendition.Kind.VIDEO, status=PartStatus.READY).exists()
    publish = has_grid and (new_file or subtitle.status == PartStatus.READY)
    cues = subtitles.track_cues(subtitle) if publish else None  # before old files go
    if previous is not None and (previous.language, previous.kind) != (subtitle.language, subtitle.kind):
        subtitles.unpublish_track(previous)
    if previous is not None and previous.file and new_file:
        previous.file.delete(save=False)
    if publish:
        try:
            subtitles.publish_track(subtitle, cues)
        except subtitles.SubtitleInvalid as exc:  # the form parsed it; the video's grid refuses it
            part_status.track_ended(subtitle, PartStatus.FAILED, str(exc))
    return subtitle


def subtitle_delete(subtitle: Subtitle) -> None:
    subtitles.unpublish_track(subtitle)
    if subtitle.file:
        subtitle.file.delete(save=False)
    subtitle.delete()


def subtitle_request_generation(video: Video, *, language: str = "", force: bool = False) -> ProcessingJob:
    """Queue speech recognition for the video. The track's language is the one given, else
    the video's speech language, else detected by the engine."""
    language = language or video.speech_language
    with transaction.atomic():
        active = video.jobs.active().filter(step=ProcessingJob.Step.SUBTITLES).first()
        if active is not None and not force:
            return active
        jobs.jobs_cancel(video.pk, REPLACED, step=ProcessingJob.Step.SUBTITLES)
        job = _create_job(
            video, ProcessingJob.Step.SUBTITLES, [PartKind.SUBTITLES.value], options={"language": language}
        )
        videos.video_queued(video.pk)
    return job
