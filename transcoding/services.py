"""Requests for work, used by the admin, the views, the commands and the S3 router: queue a
video's processing, its subtitles or its MP4 downloads, cancel, delete, and edit subtitle
tracks. Every job is dispatched only after the transaction that created it commits.

Status writes are `transcoding.status`'s; creating videos is `transcoding.ingest.create`'s.
"""

import logging

from django.db import transaction
from django.utils import timezone

from transcoding.captions import speech, subtitles
from transcoding.conf import settings
from transcoding.downloads import requests as downloads
from transcoding.errors import InvalidRequest
from transcoding.ingest import url_import
from transcoding.ingest.dedupe import video_link_duplicate, video_unlink
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import (
    ENCODE_PARTS,
    RUNG_NAME,
    JobState,
    PartKind,
    PartStatus,
    Poster,
    Preset,
    ProcessingJob,
    Rendition,
    Storyboard,
    Subtitle,
    Video,
    VideoStatus,
    generates_subtitles,
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


def video_request_processing(
    video: Video, *, parts=None, force: bool = False, generate_subtitles: bool | None = None
) -> ProcessingJob:
    """Queue (re)processing of some or all parts; returns the encode job. One active job per
    video and step: asking again while one is queued or running returns it, unless `force`
    cancels it first.

    Captions on upload: the first request for a video (a new upload, whichever way it came
    in) of every part also queues a generated subtitle track, its own part with its own job,
    when `generates_subtitles(video.preset)` says so (the preset's option, else the setting);
    `generate_subtitles` decides instead when given. A later request (a reprocess) generates
    subtitles only when asked (`parts` naming subtitles, or `generate_subtitles=True`)."""
    kinds = processing_parts(parts)
    # Downloads asked for with new renditions or audio are made from them, after the encode.
    downloads_after = PartKind.DOWNLOADS in kinds and bool({PartKind.RENDITIONS, PartKind.AUDIO} & set(kinds))
    for kind, request in (
        (PartKind.SUBTITLES, subtitle_request_generation),
        (PartKind.DOWNLOADS, None if downloads_after else downloads_request),
    ):
        if kind in kinds:
            job = request(video, force=force) if request else None
            kinds = tuple(k for k in kinds if k != kind)
            if not kinds:
                return job
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video.pk)
        active = video.jobs.active().filter(step=ProcessingJob.Step.ENCODE).first()
        if active is not None and not force:
            return active
        if generate_subtitles is None:
            first = parts is None and not video.jobs.filter(step=ProcessingJob.Step.ENCODE).exists()
            generate_subtitles = first and generates_subtitles(video.preset)
        job = _request_encode(video, kinds, force, downloads_after=downloads_after)
        if generate_subtitles and not _plays_another_video(video):
            subtitle_request_generation(video, force=force)
    return job


def _plays_another_video(video: Video) -> bool:
    """A duplicate linked to another video's outputs (`video_link_duplicate`) has that video's
    tracks, generated ones included; its own manifests are that video's, so nothing is
    generated for it on upload."""
    return Video.objects.filter(pk=video.pk, outputs_from__isnull=False).exists()


def _request_encode(video: Video, kinds: tuple, force: bool, *, downloads_after: bool) -> ProcessingJob:
    """The encode part of `video_request_processing`, under the video's row lock."""
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
    if PartKind.RENDITIONS in kinds or PartKind.AUDIO in kinds:
        downloads.downloads_invalidate(video)  # MP4s of the old segments; the stitch remakes them
    Storyboard.objects.get_or_create(video=video)
    Poster.objects.get_or_create(video=video)
    part_status.parts_queue(video.pk, kinds)
    options = {"downloads": True} if downloads_after else {}
    job = _create_job(video, ProcessingJob.Step.ENCODE, list(kinds), options=options)
    videos.video_queued(video.pk, error="", progress=0, processing_finished_at=None, outputs_from=None)
    return job


EDITABLE_FIELDS = ("title", "description", "published", "private", "poster_time", "preset", "speech_language")


def video_update(video: Video, changes: dict) -> Video:
    """Change a video's details (the API's PATCH; the admin saves its form itself). A new
    preset or poster time applies at the next processing (`video_request_processing`), which
    the caller asks for: changing them never starts an encode by itself."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidRequest(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        setattr(video, name, value)
    video.save(update_fields=[*changes, "updated_at"])


def video_import_url(
    url: str,
    *,
    user=None,
    title: str = "",
    preset: Preset | None = None,
    published: bool = False,
    private: bool | None = None,
    description: str = "",
) -> Video:
    """Create a video whose original the server fetches from `url` (an `import` job,
    dispatched after commit; it then queues the encode). The URL is checked now, so a refused
    one is an InvalidRequest with one line and nothing is created; every hop is checked again
    when it is fetched. `user` is the requester, whose permissions the caller has checked."""
    with transaction.atomic():
        video = url_import.video_create_for_import(
            url,
            title=title,
            description=description,
            preset=preset,
            published=published,
            private=private,
            created_by=user,
        )
        videos.video_queued(video.pk)
        _create_job(video, ProcessingJob.Step.IMPORT, [], options={"key": url_import.new_source_key()})
    video.refresh_from_db(fields=["status"])
    return video


def video_cancel(video: Video) -> int:
    """Cancel queued and running work. A running worker sees it at its next heartbeat and
    stops ffmpeg; finished parts are kept."""
    with transaction.atomic():
        videos.video_lock(video.pk)  # before its jobs' rows, as every writer
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
    """Queue speech recognition for the video: a generated track, queued now
    (`speech.request_track`), and its job. The track's language is the one given, else the
    video's speech language, else detected by the engine. The video's status is derived
    again: a ready video stays ready while its subtitles are made."""
    language = language or video.speech_language
    with transaction.atomic():
        videos.video_lock(video.pk)  # before its jobs' rows, as every writer
        active = video.jobs.active().filter(step=ProcessingJob.Step.SUBTITLES).first()
        if active is not None and not force:
            return active
        if jobs.jobs_cancel(video.pk, REPLACED, step=ProcessingJob.Step.SUBTITLES):
            part_status.generated_tracks_fail(video.pk, REPLACED)  # the replaced job's track
        track = speech.request_track(video)
        options = {"language": language, **({"track": track.pk} if track is not None else {})}
        job = _create_job(video, ProcessingJob.Step.SUBTITLES, [PartKind.SUBTITLES.value], options=options)
        videos.video_refresh_status(video)
    return job


def downloads_request(video: Video, rungs: list[str] | None = None, *, force: bool = False) -> ProcessingJob:
    """Queue MP4 downloads of `rungs` (names such as "720p"; None: what the preset asks for,
    else the highest rung). Downloads already made (since their rendition was) are kept unless
    `force`. Raises InvalidRequest, with one line, for a video whose renditions are not made
    or a rung it does not have."""
    if video.jobs.active().filter(step=ProcessingJob.Step.ENCODE).exists() or (
        video.status == VideoStatus.FAILED and not video.playable
    ):
        raise InvalidRequest(
            f"Video {video.pk} is not ready: downloads are made from its finished renditions."
        )
    ready = downloads.ready_rungs(video)
    if not ready:
        raise InvalidRequest(f"Video {video.pk} is not ready: it has no finished renditions.")
    if rungs is None:
        names = downloads.rungs_for_choice(downloads.preset_choice(video), ready) or ready[:1]
    else:
        if not isinstance(rungs, (list, tuple)) or not rungs:
            raise InvalidRequest('Give a list of rung names, such as ["720p"].')
        unknown = next(
            (n for n in rungs if not isinstance(n, str) or not RUNG_NAME.match(n) or n not in ready), None
        )
        if unknown is not None:
            shown = "".join(c for c in str(unknown)[:20] if c.isprintable())
            raise InvalidRequest(f"Unknown rung {shown!r}: video {video.pk} has {', '.join(ready)}.")
        names = list(dict.fromkeys(rungs))
    job = downloads.downloads_queue(video, names, force=force)
    if job.state != JobState.DONE:
        videos.video_queued(video.pk)
    return job
