"""A video's manifests from its rows: the HLS master playlist and the DASH MPD, naming the
renditions and subtitle tracks that are ready (or, while an encode runs, the renditions whose
EVENT playlists have a first segment). Below both the encode and the captions, which each
write them again when what they name changes.
"""

import posixpath
from fractions import Fraction

from django.db import transaction

from transcoding.conf import settings
from transcoding.media import ffmpeg, manifests
from transcoding.models import PartStatus, Rendition, Subtitle, Video
from transcoding.storage import objects

MASTER_NAME = "master.m3u8"
MPD_NAME = "manifest.mpd"


def _relative(key: str, prefix: str, default: str) -> str:
    """A stored key as a URI relative to the video's manifests. Usually under its own prefix;
    a video reusing another's outputs (same source) names them as ../<other>/..."""
    return posixpath.relpath(key, prefix) if key else default


def _segment_template(row: Rendition, prefix: str) -> str:
    init = _relative(row.init_path, prefix, f"{row.name}/{ffmpeg.INIT_NAME}")
    return posixpath.join(posixpath.dirname(init), "seg_$Number%05d$.m4s")


def _subtitle_tracks(video: Video, exclude: int | None) -> tuple[manifests.SubtitleTrack, ...]:
    prefix = objects.video_prefix(video.pk)
    rows = (
        Subtitle.objects.filter(video=video, status=PartStatus.READY).exclude(pk=exclude).order_by("language")
    )
    return tuple(
        manifests.SubtitleTrack(
            language=s.language,
            name=s.label or s.language,
            playlist_uri=posixpath.relpath(s.playlist_path, prefix),
            vtt_uri=posixpath.relpath(s.vtt_path, prefix),
            default=s.is_default,
            kind=s.kind,
        )
        for s in rows
    )


def write_manifests(video: Video, exclude_subtitle: int | None = None, *, live: bool = False) -> bool:
    """Master playlist and MPD from the renditions and subtitle tracks that are ready.
    `live`: while an encode runs, a master playlist (no MPD) naming the renditions whose EVENT
    playlists have a first segment, once every rendition has one. Returns whether it wrote."""
    with transaction.atomic():
        # One writer at a time per video: an encode and a subtitles job may finish together,
        # and each must write manifests from the other's committed state, not a stale one.
        video = Video.objects.select_for_update().get(pk=video.pk)
        return _write_manifests(video, exclude_subtitle, live)


def _live_rows(video: Video) -> list[Rendition] | None:
    """Renditions to name in a master playlist while the encode runs; None until all can play.
    Their BANDWIDTH is the rung's bitrate cap: the measured peak is known only at the end."""
    rows = [r for r in video.renditions.all() if r.status != PartStatus.SKIPPED]
    for row in rows:
        if row.status != PartStatus.READY:
            if not row.segments or row.status == PartStatus.FAILED:
                return None
            row.peak_bitrate = row.average_bitrate = row.bitrate or row.peak_bitrate or 0
    return rows


def _write_manifests(video: Video, exclude_subtitle: int | None, live: bool = False) -> bool:
    segment_seconds = settings.SEGMENT_SECONDS
    prefix = objects.video_prefix(video.pk)
    if live:
        rows = _live_rows(video)
        if rows is None:
            return False
    else:
        rows = list(video.renditions.filter(status=PartStatus.READY))
    variants = tuple(
        manifests.VideoVariant(
            name=r.name,
            playlist_uri=_relative(r.playlist_path, prefix, f"{r.name}/{ffmpeg.MEDIA_PLAYLIST}"),
            init_uri=_relative(r.init_path, prefix, f"{r.name}/{ffmpeg.INIT_NAME}"),
            media_template=_segment_template(r, prefix),
            segments=tuple(manifests.Segment(u, d) for u, d in r.segments),
            width=r.width,
            height=r.height,
            fps=Fraction(r.fps).limit_denominator(1001),
            codec=r.codec,
            peak_bitrate=r.peak_bitrate,
            average_bitrate=r.average_bitrate,
        )
        for r in sorted(rows, key=lambda r: -(r.height or 0) * (r.width or 0))
        if r.kind == Rendition.Kind.VIDEO
    )
    audio_row = next((r for r in rows if r.kind == Rendition.Kind.AUDIO), None)
    audio = None
    if audio_row is not None:
        audio = manifests.AudioVariant(
            playlist_uri=_relative(
                audio_row.playlist_path, prefix, f"{ffmpeg.AUDIO_DIR}/{ffmpeg.MEDIA_PLAYLIST}"
            ),
            init_uri=_relative(audio_row.init_path, prefix, f"{ffmpeg.AUDIO_DIR}/{ffmpeg.INIT_NAME}"),
            media_template=_segment_template(audio_row, prefix),
            segments=tuple(manifests.Segment(u, d) for u, d in audio_row.segments),
            codec=audio_row.codec,
            peak_bitrate=audio_row.peak_bitrate,
            average_bitrate=audio_row.average_bitrate,
        )
    if not variants:
        return False
    subtitles = _subtitle_tracks(video, exclude_subtitle)
    objects.store_text(f"{prefix}/{MASTER_NAME}", manifests.master_playlist(variants, audio, subtitles))
    if live:
        Video.objects.filter(pk=video.pk).update(hls_path=f"{prefix}/{MASTER_NAME}", output_prefix=prefix)
        return True
    mpd = manifests.dash_mpd(
        video.duration or 0, variants, audio, segment_seconds=segment_seconds, subtitles=subtitles
    )
    objects.store_text(f"{prefix}/{MPD_NAME}", mpd)
    Video.objects.filter(pk=video.pk).update(
        hls_path=f"{prefix}/{MASTER_NAME}", dash_path=f"{prefix}/{MPD_NAME}", output_prefix=prefix
    )
    return True
