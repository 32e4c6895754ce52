"""Which rungs get an MP4 download, and the download job that makes them.

A download job (`ProcessingJob.Step.DOWNLOAD`, options `{"rungs": [...]}`) is queued in the
caller's transaction and dispatched after it commits: by the encode's stitch when the preset
asks for downloads (`downloads_after_encode`, so the video is not `ready` before its downloads
are), and by `services.downloads_request`. Re-encoding a video's renditions or audio removes
its downloads first (`downloads_invalidate`): an MP4 of the old segments would not match.
"""

import logging

from django.db import transaction
from django.utils import timezone

from transcoding.conf import settings
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import (
    DownloadRungs,
    JobState,
    PartKind,
    PartStatus,
    ProcessingJob,
    Rendition,
    Video,
)
from transcoding.status import jobs
from transcoding.status import parts as part_status
from transcoding.storage import objects
from transcoding.storage.content_types import DOWNLOADS_DIR

log = logging.getLogger(__name__)

REPLACED = "Replaced by a new download request."
REMOVED = "The renditions are being made again."


def rungs_for_choice(choice: str, names_by_height: list[str]) -> list[str]:
    """The rungs a preset's `download_rungs` picks from a video's rungs (highest first)."""
    if choice == DownloadRungs.ALL:
        return list(names_by_height)
    if choice == DownloadRungs.HIGHEST:
        return list(names_by_height[:1])
    return []


def preset_choice(video: Video) -> str:
    """The video's preset's choice; TRANSCODING_DOWNLOAD_RUNGS for a video without a preset."""
    return video.preset.download_rungs if video.preset_id else str(settings.DOWNLOAD_RUNGS)


def ready_rungs(video: Video) -> list[str]:
    """The names of the video's ready rungs, highest first."""
    rows = video.renditions.filter(kind=Rendition.Kind.VIDEO, status=PartStatus.READY)
    return list(rows.order_by("-height", "name").values_list("name", flat=True))


def _create_job(video: Video, names: list[str], **fields) -> ProcessingJob:
    job = ProcessingJob.objects.create(
        video=video,
        step=ProcessingJob.Step.DOWNLOAD,
        parts=[PartKind.DOWNLOADS.value],
        options={"rungs": names},
        max_attempts=settings.MAX_ATTEMPTS,
        **fields,
    )
    if job.state == JobState.QUEUED:
        transaction.on_commit(lambda: get_dispatcher().enqueue(job.pk), robust=True)
    return job


def downloads_queue(video: Video, names: list[str], *, force: bool = False) -> ProcessingJob:
    """Queue the downloads of `names` (rungs already checked). Without `force`, downloads
    already made since their rendition was, and those an active job is making, are left as
    they are (a job that made nothing is returned, done, when all are); `force` cancels the
    active download jobs and makes all of `names` again (and what those jobs had left)."""
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video.pk)
        active = list(video.jobs.active().filter(step=ProcessingJob.Step.DOWNLOAD).order_by("pk"))
        if force:
            # What the cancelled jobs had not made yet is asked for again, with `names`.
            jobs.jobs_cancel(video.pk, REPLACED, step=ProcessingJob.Step.DOWNLOAD)
            unmade = set(video.downloads.exclude(status=PartStatus.READY).values_list("name", flat=True))
            carried = [n for job in active for n in job.options.get("rungs", []) if n in unmade]
            left = list(dict.fromkeys([*names, *carried]))
        else:
            fresh = _up_to_date(video, names)
            underway = {n for job in active for n in job.options.get("rungs", [])}
            left = [n for n in names if n not in fresh and n not in underway]
            if not left:
                covering = [j for j in active if set(names) & set(j.options.get("rungs", []))]
                if covering:
                    return covering[-1]
                now = timezone.now()
                return _create_job(
                    video, list(names), state=JobState.DONE, started_at=now, finished_at=now,
                    log_tail="Every download asked for is made already.",
                )  # fmt: skip
        part_status.downloads_queue(video.pk, left)
        return _create_job(video, left)


def _up_to_date(video: Video, names: list[str]) -> set[str]:
    """Rungs whose download is ready and made after the rendition and the audio were."""
    renditions = {r.name: r for r in video.renditions.all()}
    audio = next((r for r in renditions.values() if r.kind == Rendition.Kind.AUDIO), None)
    fresh = set()
    for row in video.downloads.filter(name__in=names, status=PartStatus.READY):
        made_from = [renditions.get(row.name), audio]
        if row.finished_at and all(
            p is None or p.finished_at is None or p.finished_at <= row.finished_at for p in made_from
        ):
            fresh.add(row.name)
    return fresh


def downloads_after_encode(video: Video, *, asked: bool = False) -> ProcessingJob | None:
    """The stitch made new renditions: queue the downloads the preset asks for (in the
    stitch's transaction: an active job keeps the video from `ready` until they are made).
    `asked`: the encode's request named downloads too; the highest rung, if the preset asks
    for none."""
    ready = ready_rungs(video)
    names = rungs_for_choice(preset_choice(video), ready) or (ready[:1] if asked else [])
    if not names:
        return None
    log.info("video %s: queueing downloads of %s", video.pk, ", ".join(names))
    return downloads_queue(video, names, force=True)


def downloads_invalidate(video: Video) -> int:
    """The renditions or the audio are made again: stop download jobs, delete the downloads
    (rows, and the files under the video's own prefix). Returns how many rows went."""
    jobs.jobs_cancel(video.pk, REMOVED, step=ProcessingJob.Step.DOWNLOAD)
    count, _ = video.downloads.all().delete()
    objects.delete_prefix(f"{objects.video_prefix(video.pk)}/{DOWNLOADS_DIR}")
    return count
