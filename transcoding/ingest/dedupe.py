"""Content addressing: a video whose source bytes were encoded already (same SHA-256, size,
preset and poster time) plays the other video's outputs instead of being encoded again."""

import logging

from django.db import transaction
from django.utils import timezone

from transcoding.models import (
    Download,
    PartStatus,
    Poster,
    Rendition,
    Storyboard,
    Subtitle,
    Video,
    VideoStatus,
)
from transcoding.storage import objects

log = logging.getLogger(__name__)


def video_find_duplicate(video: Video) -> Video | None:
    """A ready video with the same source bytes (SHA-256 and size), encoded the same way (same
    preset and poster time), whose outputs this video can play instead of encoding again."""
    if not video.source_sha256 or video.source_size is None:
        return None
    return (
        Video.objects.filter(
            source_sha256=video.source_sha256,
            source_size=video.source_size,
            preset_id=video.preset_id,
            poster_time=video.poster_time,
            status=VideoStatus.READY,
            playable=True,
            # Only a video that owns its outputs: linking to a link would name a third video's
            # files, whose own rules the access checks would not see.
            outputs_from__isnull=True,
        )
        .exclude(pk=video.pk)
        .exclude(hls_path="")
        .order_by("pk")
        .first()
    )


def _copied(row, **overrides) -> dict:
    fields = {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}
    for name in ("id", "video_id"):
        fields.pop(name, None)
    return {**fields, **overrides}


def video_unlink(video: Video) -> None:
    """Forget another video's outputs before this one is encoded on its own: the rows copied
    from it (they name its files) go, and the video is not playable until its own encode
    publishes. Without this the copied rows would go on naming the other video's files after
    `outputs_from` no longer says whose they are."""
    video.renditions.all().delete()
    video.downloads.all().delete()
    Storyboard.objects.filter(video=video).delete()
    Poster.objects.filter(video=video).delete()
    own = objects.video_prefix(video.pk) + "/"
    for track in video.subtitles.exclude(vtt_path=""):
        if not track.vtt_path.startswith(own):
            track.delete()
    Video.objects.filter(pk=video.pk).update(
        hls_path="", dash_path="", output_prefix="", outputs_from=None, playable=False
    )


def video_link_duplicate(video: Video) -> bool:
    """Content addressing: when a ready video has the same source (`video_find_duplicate`),
    make this one play its outputs instead of encoding again, and return True. The parts'
    rows (renditions, storyboard, poster, ready subtitle tracks and MP4 downloads) are copied with their keys,
    which stay under the other video's prefix; `outputs_from` records the link. Deleting
    either video keeps keys the other still names (`cleanup.video_delete_outputs`).
    A video that has subtitle tracks of its own is not linked (its manifests must name them)."""
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video.pk)
        if video.subtitles.exists():
            return False
        match = video_find_duplicate(video)
        # Locked: a concurrent delete of the match cannot remove what is being linked.
        source = (
            match and Video.objects.select_for_update().filter(pk=match.pk, status=VideoStatus.READY).first()
        )
        if source is None:
            return False
        now = timezone.now()
        part = {"cpu_seconds": 0.0, "bytes_written": 0, "attempts": 0, "started_at": now, "finished_at": now}
        names = list(source.renditions.values_list("name", flat=True))
        video.renditions.exclude(name__in=names).delete()
        for rendition in source.renditions.all():
            Rendition.objects.update_or_create(
                video=video, name=rendition.name, defaults=_copied(rendition, **part)
            )
        for model in (Storyboard, Poster):
            row = model.objects.filter(video=source).first()
            if row is not None:
                model.objects.update_or_create(video=video, defaults=_copied(row, **part))
        for track in source.subtitles.filter(status=PartStatus.READY):
            Subtitle.objects.create(video=video, **_copied(track, file="", **part))
        video.downloads.all().delete()
        for download in source.downloads.filter(status=PartStatus.READY):
            Download.objects.create(video=video, **_copied(download, **part))
        probed = ("duration", "width", "height", "container", "video_codec", "audio_codec", "fps", "probe")
        Video.objects.filter(pk=video.pk).update(
            **{name: getattr(source, name) for name in probed},
            hls_path=source.hls_path,
            dash_path=source.dash_path,
            output_prefix=source.output_prefix or source.hls_path.rpartition("/")[0],
            outputs_from=source,
            status=VideoStatus.READY,
            playable=True,
            progress=100,
            error="",
            processing_started_at=now,
            processing_finished_at=now,
        )
    log.info("video %s: same source as video %s, plays its outputs", video.pk, source.pk)
    return True
