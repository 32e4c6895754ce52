"""Writes used by the admin, views, commands and tasks: creating videos, requesting and
cancelling work, and deriving a video's overall status from its parts."""

import hashlib
import logging
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from transcoding.conf import settings
from transcoding.ingest.dedupe import (  # noqa: F401 (the services API)
    video_find_duplicate,
    video_link_duplicate,
    video_unlink,
)
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import (
    ENCODE_PARTS,
    PART_DONE,
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
)
from transcoding.storage import objects as outputs

log = logging.getLogger(__name__)

ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)


class InvalidRequest(ValueError):
    """A request that cannot be carried out, with the reason for the user."""


def default_preset() -> Preset | None:
    return Preset.objects.filter(is_default=True).first() or Preset.objects.order_by("pk").first()


def video_create(
    *,
    source: File | str | Path,
    title: str = "",
    description: str = "",
    preset: Preset | None = None,
    poster_time: float | None = None,
    published: bool = False,
    original_filename: str = "",
) -> Video:
    """Store the original and create the video. `source` is an open File or a local path."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidRequest(f"No such file: {path}")
        with open(path, "rb") as handle:
            return video_create(
                source=File(handle, name=path.name),
                title=title or path.stem,
                description=description,
                preset=preset,
                poster_time=poster_time,
                published=published,
                original_filename=original_filename or path.name,
            )
    name = original_filename or Path(getattr(source, "name", "") or "video").name
    video = Video(
        title=title or Path(name).stem or "Untitled video",
        description=description,
        preset=preset or default_preset(),
        poster_time=poster_time,
        published=published,
        original_filename=name,
    )
    hashing = HashingFile(source)
    video.source.save(name, hashing, save=False)
    video.source_size = video.source.size
    video.source_sha256 = getattr(source, "sha256", "") or hashing.hexdigest()
    video.save()
    return video


def video_create_from_stored(name: str, *, title: str = "", preset: Preset | None = None) -> Video | None:
    """A video whose original is the already stored object `name` (an S3 drop folder): nothing
    is copied. None when a video with that original exists already (events arrive at least
    once)."""
    from django.core.files.storage import default_storage

    with transaction.atomic():
        if Video.objects.filter(source=name).exists():
            return None
        filename = Path(name).name
        video = Video(
            title=title or Path(filename).stem or "Untitled video",
            preset=preset or default_preset(),
            original_filename=filename[:255],
            source_size=default_storage.size(name),
        )
        video.source.name = name
        video.save()
    return video


class HashingFile(File):
    """A File that hashes the bytes storage reads while saving it: the content address costs
    no second read. Hashes in read() (chunks() reads through it; S3 uploads call read()), and
    only bytes read for the first time, so a storage that rewinds does not count twice. (A
    storage that moves a temporary file instead of reading it leaves the hash empty; the
    upload handlers hashed those bytes already.)"""

    def __init__(self, file):
        super().__init__(file, name=getattr(file, "name", None))
        self._digest = hashlib.sha256()
        self._hashed = 0

    def read(self, *args):
        start = self.file.tell()
        data = self.file.read(*args)
        if start <= self._hashed < start + len(data):
            self._digest.update(data[self._hashed - start :])
            self._hashed = start + len(data)
        return data

    def hexdigest(self) -> str:
        """The SHA-256, or "" unless storage read every byte."""
        return self._digest.hexdigest() if self._hashed and self._hashed == self.size else ""


def _parts_for(kinds) -> tuple[str, ...]:
    try:
        kinds = tuple(PartKind(k) for k in (kinds or ENCODE_PARTS))
    except ValueError as exc:
        raise InvalidRequest(f"Unknown part: {exc}")
    return tuple(k.value for k in kinds)


def _part_querysets(video: Video, kinds) -> list:
    querysets = []
    if PartKind.RENDITIONS in kinds:
        querysets.append(video.renditions.filter(kind=Rendition.Kind.VIDEO))
    if PartKind.AUDIO in kinds:
        querysets.append(video.renditions.filter(kind=Rendition.Kind.AUDIO))
    if PartKind.STORYBOARD in kinds:
        querysets.append(Storyboard.objects.filter(video=video))
    if PartKind.POSTER in kinds:
        querysets.append(Poster.objects.filter(video=video))
    return querysets


def video_request_processing(video: Video, *, parts=None, force: bool = False) -> ProcessingJob:
    """Queue (re)processing of some or all parts. One active job per video: asking again
    while one is queued or running returns it, unless `force` cancels it first.
    The job is dispatched only after the transaction commits."""
    kinds = _parts_for(parts)
    if PartKind.SUBTITLES in kinds:
        job = subtitle_request_generation(video, force=force)
        kinds = tuple(k for k in kinds if k != PartKind.SUBTITLES)
        if not kinds:
            return job
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video.pk)
        encoding = video.jobs.filter(step=ProcessingJob.Step.ENCODE, state__in=ACTIVE_JOB_STATES)
        active = encoding.first()
        if active is not None and not force:
            return active
        if not force and set(ENCODE_PARTS) <= set(kinds) and video_link_duplicate(video):
            # The same bytes were processed already: reuse those outputs, encode nothing.
            video.refresh_from_db(fields=["outputs_from"])
            now = timezone.now()
            return ProcessingJob.objects.create(
                video=video, step=ProcessingJob.Step.ENCODE, parts=list(kinds), state=JobState.DONE,
                max_attempts=settings.MAX_ATTEMPTS, started_at=now, finished_at=now,
                log_tail=f"Same source as video {video.outputs_from_id}: its outputs are reused.",
            )  # fmt: skip
        if video.output_prefix not in ("", outputs.video_prefix(video.pk)):
            # Linked to another video's outputs: any reprocessing encodes everything, its own,
            # and nothing of the other video's stays named meanwhile.
            kinds = tuple(dict.fromkeys([*(k.value for k in ENCODE_PARTS), *kinds]))
            video_unlink(video)
        if active is not None:
            encoding.update(
                state=JobState.CANCELLED, finished_at=timezone.now(), error="Replaced by a new request."
            )
        Storyboard.objects.get_or_create(video=video)
        Poster.objects.get_or_create(video=video)
        for queryset in _part_querysets(video, kinds):
            queryset.update(status=PartStatus.QUEUED, progress=0, error="")
        job = ProcessingJob.objects.create(
            video=video,
            step=ProcessingJob.Step.ENCODE,
            parts=list(kinds),
            max_attempts=settings.MAX_ATTEMPTS,
        )
        Video.objects.filter(pk=video.pk).update(
            status=VideoStatus.QUEUED, error="", progress=0, processing_finished_at=None, outputs_from=None
        )
        transaction.on_commit(lambda: get_dispatcher().enqueue(job.pk), robust=True)
    return job


def video_cancel(video: Video) -> int:
    """Cancel queued and running work. A running worker sees it at its next heartbeat and
    stops ffmpeg; finished parts are kept."""
    now = timezone.now()
    with transaction.atomic():
        count = video.jobs.filter(state__in=ACTIVE_JOB_STATES).update(
            state=JobState.CANCELLED, finished_at=now, error="Cancelled by staff."
        )
        for model in (Rendition, Storyboard, Poster, Subtitle):
            model.objects.filter(video=video, status__in=[PartStatus.QUEUED, PartStatus.RUNNING]).update(
                status=PartStatus.FAILED, error="Cancelled by staff.", finished_at=now
            )
        video_refresh_status(video)
    return count


def video_delete(video: Video) -> None:
    """Delete the video with every stored output (S3: listed and deleted in batches of 1000)
    and its original. Outputs that another video plays (a duplicate linked to them by
    `video_link_duplicate`) stay until the last video using them is deleted."""
    from transcoding.storage import references as cleanup

    video_cancel(video)
    # Not ready any more, so no new duplicate links to outputs about to go.
    Video.objects.filter(pk=video.pk).update(status=VideoStatus.FAILED, playable=False, error="Deleting.")
    cleanup.video_delete_outputs(video)
    if video.source:
        video.source.delete(save=False)
    for subtitle in video.subtitles.all():
        if subtitle.file:
            subtitle.file.delete(save=False)
    video.delete()


def video_fail(video: Video, reason: str) -> None:
    """End the video as failed with one sentence, failing the parts that were waiting."""
    now = timezone.now()
    for model in (Rendition, Storyboard, Poster):
        model.objects.filter(video=video).exclude(status__in=PART_DONE).update(
            status=PartStatus.FAILED, error=reason[:500], finished_at=now
        )
    Video.objects.filter(pk=video.pk).update(
        status=VideoStatus.FAILED, error=reason[:500], processing_finished_at=now
    )


def _all_parts(video: Video) -> list:
    parts = list(video.renditions.all())
    parts += list(Storyboard.objects.filter(video=video)) + list(Poster.objects.filter(video=video))
    return parts + list(Subtitle.objects.filter(video=video))


def video_refresh_status(video: Video) -> Video:
    """Derive the video's status, progress and playability from its parts and jobs.

    Under the video's row lock: the chunks of one video finish at the same moment in different
    workers, and a refresh that read "another chunk still running" must not write its stale
    status after the last chunk's refresh wrote "ready"."""
    with transaction.atomic():
        return _refresh_status(Video.objects.select_for_update().get(pk=video.pk))


def _refresh_status(video: Video) -> Video:
    active = set(video.jobs.filter(state__in=ACTIVE_JOB_STATES).values_list("state", flat=True))
    parts = _all_parts(video)
    renditions = [p for p in parts if isinstance(p, Rendition) and p.kind == Rendition.Kind.VIDEO]
    counted = [p for p in parts if p.status != PartStatus.SKIPPED]
    # Playable once a master playlist names renditions that can play: ready ones, or ones an
    # encode is publishing as EVENT playlists (they have segments).
    playable = bool(video.hls_path) and any(
        r.status == PartStatus.READY or (r.segments and r.status in (PartStatus.QUEUED, PartStatus.RUNNING))
        for r in renditions
    )
    progress = round(sum(p.progress for p in counted) / len(counted)) if counted else 0
    fields = {"playable": playable, "progress": min(progress, 100)}
    if JobState.RUNNING in active:
        fields["status"] = VideoStatus.PROCESSING
    elif active:
        fields["status"] = (
            VideoStatus.PROCESSING if video.status == VideoStatus.PROCESSING else VideoStatus.QUEUED
        )
    elif video.status != VideoStatus.FAILED or playable:
        audio_ok = all(
            p.status in (PartStatus.READY, PartStatus.SKIPPED)
            for p in parts
            if isinstance(p, Rendition) and p.kind == Rendition.Kind.AUDIO
        )
        if renditions and audio_ok and all(r.status == PartStatus.READY for r in renditions):
            fields.update(status=VideoStatus.READY, progress=100, error="")
        elif any(p.status in (PartStatus.QUEUED, PartStatus.RUNNING) for p in parts):
            fields["status"] = VideoStatus.QUEUED
        elif parts:
            failed = next((p for p in parts if p.status == PartStatus.FAILED), None)
            if failed is None and not renditions:
                # Never encoded (only, say, a subtitles job ran): nothing has failed.
                fields["status"] = VideoStatus.UPLOADED
            else:
                fields.update(status=VideoStatus.FAILED, error=failed.error if failed else video.error)
        if fields.get("status") in (VideoStatus.READY, VideoStatus.FAILED):
            fields["processing_finished_at"] = video.processing_finished_at or timezone.now()
    Video.objects.filter(pk=video.pk).update(**fields)
    for key, value in fields.items():
        setattr(video, key, value)
    return video


def videos_requeue_filter(*, failed: bool = False, stuck: bool = False) -> Q:
    """Which videos `reprocess --failed/--stuck` selects."""
    query = Q(pk__in=[])
    if failed:
        query |= Q(status=VideoStatus.FAILED)
    if stuck:
        query |= Q(jobs__state=JobState.RUNNING, jobs__lease_expires_at__lt=timezone.now()) | Q(
            status__in=[VideoStatus.QUEUED, VideoStatus.PROCESSING], jobs__isnull=True
        )
    return query


def jobs_recover_stuck() -> tuple[list[int], list[int], list[int]]:
    """The watchdog (`manage.py requeue_stuck`, a Celery beat entry, a Zappa event): running
    jobs whose lease expired go back to the queue; those with no attempts left fail, and so do
    the parts they were making. Queued jobs nobody has claimed although they are due (a retry
    whose backoff has passed, a dispatch lost on the way) are dispatched again, unless the
    backend's queue holds them (`keeps_messages`); claiming makes a duplicate harmless.
    Returns the job ids (requeued, failed, redispatched)."""
    from transcoding.encoding.encode import mark_failed
    from transcoding.status.jobs import jobs_due_unclaimed_ids, jobs_requeue_stuck_ids

    with transaction.atomic():
        requeued, failed = jobs_requeue_stuck_ids()
        for job in ProcessingJob.objects.filter(pk__in=failed).select_related("video"):
            mark_failed(job, job.error or "The worker stopped and no attempts are left.")
            video_refresh_status(job.video)
        due = [] if get_dispatcher().keeps_messages else jobs_due_unclaimed_ids()
        due = [pk for pk in due if pk not in requeued]
        for job_id in [*requeued, *due]:
            transaction.on_commit(lambda job_id=job_id: get_dispatcher().enqueue(job_id), robust=True)
    return requeued, failed, due


def processing_parts(parts=None) -> tuple[str, ...]:
    """The part kinds `video_request_processing` would queue for `parts` (None: all that can
    be made); raises InvalidRequest for kinds that cannot be processed yet."""
    return _parts_for(parts)


def video_store_upload(video: Video) -> Video:
    """Save a video whose `source` a form has just set to an upload (the admin's upload form):
    a new video, or a replaced original. Records the file's name and size, forgets what was
    learned from a previous original (deleted once the transaction commits), and queues
    processing, replacing any job still working on the old file. Storage streams the upload:
    a temporary file on disk is moved or copied in chunks, never read into memory."""
    name = Path(video.source.name).name
    previous = Video.objects.filter(pk=video.pk).values_list("source", flat=True).first() if video.pk else ""
    if video.pk is None and video.preset is None:
        video.preset = default_preset()
    video.title = video.title or Path(name).stem or "Untitled video"
    video.original_filename = name[:255]
    video.source_size = video.source.size
    video.source_sha256 = getattr(video.source.file, "sha256", "")  # hashed as it streamed in
    video.container = video.video_codec = video.audio_codec = ""
    video.duration = video.width = video.height = video.fps = None
    video.probe = {}
    video.save()
    if previous and previous != video.source.name:
        storage = video.source.storage
        transaction.on_commit(lambda: storage.delete(previous))
    video_request_processing(video, force=True)
    return video


def subtitle_save(subtitle: Subtitle) -> Subtitle:
    """Save a track edited in the admin. A new uploaded file (already validated by
    `subtitles.parse`) is published now when the video has renditions to segment it on,
    otherwise by the encode; an edit of a published track's language, label or default
    republishes it so the manifests say the same."""
    from transcoding.captions import subtitles

    previous = Subtitle.objects.filter(pk=subtitle.pk).first() if subtitle.pk else None
    new_file = subtitle.file and (previous is None or previous.file.name != subtitle.file.name)
    with transaction.atomic():
        if subtitle.is_default:
            Subtitle.objects.filter(video=subtitle.video).exclude(pk=subtitle.pk).update(is_default=False)
        if new_file:
            subtitle.origin = Subtitle.Origin.UPLOADED
            subtitle.status, subtitle.error, subtitle.progress = PartStatus.QUEUED, "", 0
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
            subtitle.status, subtitle.error = PartStatus.FAILED, str(exc)
            subtitle.save(update_fields=["status", "error"])
    return subtitle


def subtitle_delete(subtitle: Subtitle) -> None:
    from transcoding.captions import subtitles

    subtitles.unpublish_track(subtitle)
    if subtitle.file:
        subtitle.file.delete(save=False)
    subtitle.delete()


def subtitle_request_generation(video: Video, *, language: str = "", force: bool = False) -> ProcessingJob:
    """Queue speech recognition for the video. The track's language is the one given, else
    the video's speech language, else detected by the engine."""
    language = language or video.speech_language
    with transaction.atomic():
        active = video.jobs.filter(step=ProcessingJob.Step.SUBTITLES, state__in=ACTIVE_JOB_STATES).first()
        if active is not None and not force:
            return active
        video.jobs.filter(step=ProcessingJob.Step.SUBTITLES, state__in=ACTIVE_JOB_STATES).update(
            state=JobState.CANCELLED, finished_at=timezone.now(), error="Replaced by a new request."
        )
        job = ProcessingJob.objects.create(
            video=video,
            step=ProcessingJob.Step.SUBTITLES,
            parts=[PartKind.SUBTITLES.value],
            max_attempts=settings.MAX_ATTEMPTS,
            options={"language": language},
        )
        Video.objects.filter(pk=video.pk).update(status=VideoStatus.QUEUED)
        transaction.on_commit(lambda: get_dispatcher().enqueue(job.pk), robust=True)
    return job
