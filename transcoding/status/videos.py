"""A video's status: every write of `Video.status` and `Video.playable` goes through here, and
each change is announced (`events.status_changed`) once it commits.

Most of a video's status is derived (`video_refresh_status`) from its parts and jobs; the
explicit transitions are the ones a request, an encode or a link makes before its parts say so.
"""

from django.db import transaction
from django.utils import timezone

from transcoding.models import JobState, PartStatus, ProcessingJob, Rendition, Video, VideoStatus
from transcoding.status import parts
from transcoding.status.events import announce

# The error a video being deleted shows: its "failed" status is no outcome of its own.
DELETING = "Deleting."


def _write(video_id: int, **fields) -> None:
    """Update the row and announce what changed of its status and playability, in one
    transaction (what `status_changing` writes commits with the change). Playability first:
    a video that becomes playable and ready in one write was playable before it was ready."""
    with transaction.atomic():
        before = Video.objects.filter(pk=video_id).values("status", "playable").first()
        Video.objects.filter(pk=video_id).update(**fields)
        if before is None:
            return
        for field in ("playable", "status"):
            if field in fields:
                announce(Video, video_id, video_id, field, before[field], fields[field])


def video_queued(video_id: int, **fields) -> None:
    """Work was requested (an encode, subtitles): `fields` reset what the request replaces."""
    _write(video_id, status=VideoStatus.QUEUED, **fields)


def video_processing(video_id: int) -> None:
    """An encode started."""
    _write(video_id, status=VideoStatus.PROCESSING, error="", processing_started_at=timezone.now())


def video_playable(video_id: int) -> None:
    """A master playlist names renditions that play (the first segments are published)."""
    _write(video_id, playable=True)


def video_deleting(video_id: int) -> None:
    """Not ready any more while its files go, so nothing new links to them."""
    _write(video_id, status=VideoStatus.FAILED, playable=False, error=DELETING)


def video_linked(video_id: int, **fields) -> None:
    """Plays another video's outputs (same source bytes): ready at once."""
    now = timezone.now()
    _write(
        video_id, status=VideoStatus.READY, playable=True, progress=100, error="",
        processing_started_at=now, processing_finished_at=now, **fields,
    )  # fmt: skip


def video_unlinked(video_id: int) -> None:
    """Encoded on its own again: nothing of the other video's is named any more."""
    _write(video_id, hls_path="", dash_path="", output_prefix="", outputs_from=None, playable=False)


def video_fail(video: Video, reason: str) -> None:
    """End the video as failed with one sentence, failing the parts that were waiting."""
    parts.parts_fail(video.pk, reason)
    _write(video.pk, status=VideoStatus.FAILED, error=reason[:500], processing_finished_at=timezone.now())


# The steps whose active jobs hold a video back from "ready" (see `derived_status`).
HOLDS_BACK = (ProcessingJob.Step.ENCODE, ProcessingJob.Step.DOWNLOAD)


def video_lock(video_id: int) -> None:
    """Inside a transaction: hold the video's row lock until it ends (the order every writer
    takes: the video's row, then its jobs' and parts' rows)."""
    Video.objects.select_for_update().filter(pk=video_id).values_list("pk").first()


def video_refresh_status(video: Video) -> Video:
    """Derive the video's status, progress and playability from its parts and jobs.

    Under the video's row lock: the chunks of one video finish at the same moment in different
    workers, and a refresh that read "another chunk still running" must not write its stale
    status after the last chunk's refresh wrote "ready"."""
    with transaction.atomic():
        locked = Video.objects.select_for_update().get(pk=video.pk)
        fields = derived_status(locked)
        _write(locked.pk, **fields)
    for key, value in fields.items():
        setattr(locked, key, value)
    return locked


def derived_status(video: Video) -> dict:
    """The fields `video_refresh_status` writes, from the parts and the active jobs.

    A video whose encode parts are all ready is ready, whatever its subtitles jobs are doing:
    a generated track (Amazon Transcribe can take hours) is announced on its own when it is
    published, and never holds back the video. Its MP4 downloads do (they take seconds, and a
    client told "ready" expects `download_urls`). Before that, any active job counts (a video
    never encoded with only a subtitles job running is processing)."""
    all_parts = parts.all_parts(video.pk)
    renditions = [p for p in all_parts if isinstance(p, Rendition) and p.kind == Rendition.Kind.VIDEO]
    audio_ok = all(
        p.status in (PartStatus.READY, PartStatus.SKIPPED)
        for p in all_parts
        if isinstance(p, Rendition) and p.kind == Rendition.Kind.AUDIO
    )
    encoded = bool(renditions) and audio_ok and all(r.status == PartStatus.READY for r in renditions)
    # Two EXISTS, not a list of the active jobs: every chunk's end refreshes the status under
    # the video's row lock, and a long video has a thousand chunks active.
    counted_jobs = video.jobs.active() if not encoded else video.jobs.active().filter(step__in=HOLDS_BACK)
    running = counted_jobs.filter(state=JobState.RUNNING).exists()
    active = running or counted_jobs.exists()
    counted = [p for p in all_parts if p.status != PartStatus.SKIPPED]
    # Playable once a master playlist names renditions that can play: ready ones, or ones an
    # encode is publishing as EVENT playlists (they have segments).
    playable = bool(video.hls_path) and any(
        r.status == PartStatus.READY or (r.segments and r.status in (PartStatus.QUEUED, PartStatus.RUNNING))
        for r in renditions
    )
    progress = round(sum(p.progress for p in counted) / len(counted)) if counted else 0
    fields = {"playable": playable, "progress": min(progress, 100)}
    if running:
        fields["status"] = VideoStatus.PROCESSING
    elif active:
        fields["status"] = (
            VideoStatus.PROCESSING if video.status == VideoStatus.PROCESSING else VideoStatus.QUEUED
        )
    elif video.status != VideoStatus.FAILED or playable:
        if encoded:
            fields.update(status=VideoStatus.READY, progress=100, error="")
        elif any(p.status in (PartStatus.QUEUED, PartStatus.RUNNING) for p in all_parts):
            fields["status"] = VideoStatus.QUEUED
        elif all_parts:
            failed = next((p for p in all_parts if p.status == PartStatus.FAILED), None)
            if failed is None and not renditions:
                # Never encoded (only, say, a subtitles job ran): nothing has failed.
                fields["status"] = VideoStatus.UPLOADED
            else:
                fields.update(status=VideoStatus.FAILED, error=failed.error if failed else video.error)
        if fields.get("status") in (VideoStatus.READY, VideoStatus.FAILED):
            fields["processing_finished_at"] = video.processing_finished_at or timezone.now()
    return fields
