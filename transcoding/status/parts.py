"""The parts of a video, and every change of their status.

A video's outputs are *parts*: each rendition (the video rungs, and the audio), the storyboard
and the poster, made by encode jobs, each subtitle track, uploaded or made by a subtitles
job, and each MP4 download, made by a download job. `PARTS` is the one registry of the parts
made from the renditions' rows (encode parts and downloads): the model that holds each kind
and the filter that picks its rows. Everything that changes a part's status goes through here.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from transcoding.models import (
    ENCODE_PARTS,
    PART_DONE,
    Download,
    PartKind,
    PartStatus,
    Poster,
    Rendition,
    Storyboard,
    Subtitle,
)
from transcoding.status.events import announce


@dataclass(frozen=True)
class PartSpec:
    model: type
    filters: dict


PARTS: dict[str, PartSpec] = {
    PartKind.RENDITIONS: PartSpec(Rendition, {"kind": Rendition.Kind.VIDEO}),
    PartKind.AUDIO: PartSpec(Rendition, {"kind": Rendition.Kind.AUDIO}),
    PartKind.STORYBOARD: PartSpec(Storyboard, {}),
    PartKind.POSTER: PartSpec(Poster, {}),
    PartKind.DOWNLOADS: PartSpec(Download, {}),
}


def rows(video_id: int, kinds=ENCODE_PARTS) -> list[QuerySet]:
    """The rows of these part kinds of the video, one queryset per kind."""
    return [
        PARTS[kind].model.objects.filter(video_id=video_id, **PARTS[kind].filters)
        for kind in kinds
        if kind in PARTS
    ]


def all_parts(video_id: int) -> list:
    """Every part of the video: renditions, storyboard, poster, subtitle tracks."""
    return [
        *Rendition.objects.filter(video_id=video_id),
        *Storyboard.objects.filter(video_id=video_id),
        *Poster.objects.filter(video_id=video_id),
        *Subtitle.objects.filter(video_id=video_id),
    ]


# --- encode parts ----------------------------------------------------------------------------
def parts_queue(video_id: int, kinds) -> None:
    """Requested: waiting for a job."""
    for queryset in rows(video_id, kinds):
        queryset.update(status=PartStatus.QUEUED, progress=0, error="")


def parts_start(video_id: int, kinds) -> None:
    """An encode begins making them (skipped parts stay skipped)."""
    now = timezone.now()
    for queryset in rows(video_id, kinds):
        queryset.exclude(status=PartStatus.SKIPPED).update(
            status=PartStatus.RUNNING, started_at=now, finished_at=None, attempts=F("attempts") + 1
        )


def parts_progress(video_id: int, kinds, percent: int, *, running_only: bool = False) -> None:
    for queryset in rows(video_id, kinds):
        queryset = queryset.filter(status=PartStatus.RUNNING) if running_only else queryset
        queryset.exclude(status=PartStatus.SKIPPED).update(progress=percent)


def parts_retrying(video_id: int, kinds, reason: str) -> None:
    """A transient failure with attempts left: the unfinished parts wait for the retry."""
    for queryset in rows(video_id, kinds):
        queryset.filter(status=PartStatus.RUNNING).update(
            status=PartStatus.QUEUED, error=f"Will retry: {reason}"[:500]
        )


def parts_fail(video_id: int, reason: str) -> None:
    """Every encode part not done yet fails, with the reason."""
    for queryset in rows(video_id):
        queryset.exclude(status__in=PART_DONE).update(
            status=PartStatus.FAILED, error=reason[:500], finished_at=timezone.now()
        )


def parts_cancel(video_id: int, reason: str) -> None:
    """Staff cancelled: waiting and running parts (subtitle tracks and downloads too) fail with
    the reason."""
    now = timezone.now()
    extra = [Subtitle.objects.filter(video_id=video_id), Download.objects.filter(video_id=video_id)]
    for queryset in [*rows(video_id), *extra]:
        queryset.filter(status__in=[PartStatus.QUEUED, PartStatus.RUNNING]).update(
            status=PartStatus.FAILED, error=reason[:500], finished_at=now
        )


def part_ready(part, **fields) -> None:
    """A part whose files are all stored: ready, with what was measured (`fields`)."""
    part.status, part.progress, part.error = PartStatus.READY, 100, ""
    part.finished_at = timezone.now()
    for key, value in fields.items():
        setattr(part, key, value)
    part.save()


def finished_since(video_id: int, since) -> set[str]:
    """Part kinds finished since `since` (an earlier attempt of a job): a retry skips them.
    Renditions count only when every rung is."""
    done = set()
    for kind, queryset in zip(PARTS, rows(video_id, tuple(PARTS))):
        finished = queryset.filter(status=PartStatus.READY, finished_at__gte=since)
        if kind == PartKind.RENDITIONS:
            if queryset.exists() and not queryset.exclude(pk__in=finished).exists():
                done.add(str(kind))
        elif finished.exists():
            done.add(str(kind))
    return done


# --- subtitle tracks -------------------------------------------------------------------------
def _track_status(track: Subtitle, status: str, *, whole: bool = False, **fields) -> None:
    """Set the track's status and `fields`, saving only those (`whole`, or a new track: the
    whole row, with whatever else the caller changed)."""
    with transaction.atomic():  # the change and what `status_changing` writes, together
        old = (
            Subtitle.objects.filter(pk=track.pk).values_list("status", flat=True).first()
            if track.pk
            else None
        )
        track.status = status
        for key, value in fields.items():
            setattr(track, key, value)
        track.save(update_fields=None if old is None or whole else ["status", *fields])
        announce(Subtitle, track.pk, track.video_id, "status", old, status)


def track_queued(track: Subtitle) -> None:
    """A track edited with a new uploaded file (saved whole): published now or by the encode."""
    _track_status(track, PartStatus.QUEUED, whole=True, origin=Subtitle.Origin.UPLOADED, error="", progress=0)


def track_requested(track: Subtitle) -> None:
    """A generated track asked for (on upload, or by staff): waiting for its subtitles job."""
    _track_status(
        track, PartStatus.QUEUED, origin=Subtitle.Origin.GENERATED, error="", progress=0, finished_at=None
    )


def track_running(track: Subtitle, *, progress: int = 0, started_at=None) -> None:
    """A subtitles job starts this track (or carries on in it, from `started_at`)."""
    _track_status(
        track, PartStatus.RUNNING, progress=progress, error="", started_at=started_at or timezone.now(),
        finished_at=None, attempts=track.attempts + 1,
    )  # fmt: skip


def track_ready(track: Subtitle, **fields) -> None:
    """Published (saved whole, with what the caller measured, its CPU time say)."""
    _track_status(
        track, PartStatus.READY, whole=True, progress=100, error="", finished_at=timezone.now(), **fields
    )


def track_ended(track: Subtitle, status: str, error: str, **fields) -> None:
    """Failed or skipped, with the reason."""
    _track_status(track, status, error=error[:500], progress=0, finished_at=timezone.now(), **fields)


def generated_tracks_retrying(video_id: int, reason: str) -> None:
    Subtitle.objects.filter(
        video_id=video_id, origin=Subtitle.Origin.GENERATED, status=PartStatus.RUNNING
    ).update(status=PartStatus.QUEUED, error=f"Will retry: {reason}"[:500])


def generated_tracks_fail(video_id: int, reason: str) -> None:
    for track in Subtitle.objects.filter(
        video_id=video_id,
        origin=Subtitle.Origin.GENERATED,
        status__in=[PartStatus.QUEUED, PartStatus.RUNNING],
    ):
        track_ended(track, PartStatus.FAILED, reason)


# --- MP4 downloads ---------------------------------------------------------------------------
def downloads_queue(video_id: int, names) -> list[Download]:
    """Requested: a row per rung (made once: the unique constraint), waiting for its job."""
    queued = []
    for name in names:
        row, _ = Download.objects.get_or_create(video_id=video_id, name=name)
        Download.objects.filter(pk=row.pk).update(status=PartStatus.QUEUED, progress=0, error="")
        queued.append(row)
    return queued


def download_start(row: Download) -> None:
    """A download job begins making it (or tries again)."""
    row.status, row.progress, row.error = PartStatus.RUNNING, 0, ""
    row.started_at, row.finished_at, row.attempts = timezone.now(), None, row.attempts + 1
    row.save(update_fields=["status", "progress", "error", "started_at", "finished_at", "attempts"])


def downloads_fail(video_id: int, reason: str, names=None) -> None:
    """The download job failed for good: its unfinished downloads fail; the video plays on."""
    queryset = Download.objects.filter(video_id=video_id).exclude(status__in=PART_DONE)
    if names is not None:
        queryset = queryset.filter(name__in=list(names))
    queryset.update(status=PartStatus.FAILED, error=reason[:500], finished_at=timezone.now())
