"""Turn what ffmpeg wrote in the work directory into stored parts and manifests.

Order matters: a part's files are all stored before the part is marked ready, and the master
playlist and MPD are (re)written last from the renditions that are ready, so a player never
sees a manifest that names a missing file.
"""

import posixpath
from fractions import Fraction
from pathlib import Path

import av
import m3u8
from django.db import transaction
from django.utils import timezone

from transcoding.conf import settings
from transcoding.errors import SourceRejected
from transcoding.media import ffmpeg, manifests
from transcoding.media.ladder import Plan
from transcoding.models import PartKind, PartStatus, Poster, Rendition, Storyboard, Subtitle, Video
from transcoding.storage import objects as outputs

MASTER_NAME = "master.m3u8"
MPD_NAME = "manifest.mpd"
# A rung shorter than this share of the source means ffmpeg hit the end of a damaged file.
MIN_DECODED_SHARE = 0.9


def read_segments(directory: Path) -> tuple[manifests.Segment, ...]:
    playlist = m3u8.load(str(directory / ffmpeg.MEDIA_PLAYLIST))
    return tuple(manifests.Segment(uri=s.uri, duration=float(s.duration)) for s in playlist.segments)


def measure_bitrates(sizes: list[int], durations: list[float]) -> tuple[int, int]:
    """(peak, average) in bits/s from the stored bytes: HLS BANDWIDTH is the peak segment
    bitrate, AVERAGE-BANDWIDTH the whole stream's."""
    total_bytes, total_seconds, peak = 0, 0.0, 0.0
    for duration, size in zip(durations, sizes):
        total_bytes += size
        total_seconds += duration
        if duration > 0.5:
            peak = max(peak, size * 8 / duration)
    average = total_bytes * 8 / total_seconds if total_seconds else 0
    return int(max(peak, average)), int(average)


def video_codec_string(init_path: Path) -> str:
    with av.open(str(init_path)) as container:
        return ffmpeg.avc_codec_string(bytes(container.streams.video[0].codec_context.extradata or b""))


def finished_segments(directory: Path, stored: dict[str, int]) -> list[list]:
    """[[uri, duration, bytes], ...] of the segments ffmpeg has listed as finished in its
    playlist and that are stored, from the first, in order."""
    playlist = directory / ffmpeg.MEDIA_PLAYLIST
    if not playlist.exists():
        return []
    found = []
    for segment in m3u8.loads(playlist.read_text()).segments:
        size = stored.get(f"{directory.name}/{segment.uri}")
        if size is None:
            break
        found.append([segment.uri, float(segment.duration), size])
    return found


def publish_rendition(row: Rendition, segments: list, prefix: str, *, codec: str, init_bytes: int) -> None:
    """A rendition whose segments ([uri, duration, bytes], in order) and init segment are
    stored already: write its VOD media playlist and mark it ready, with what was measured."""
    listed = tuple(manifests.Segment(uri, duration) for uri, duration, _ in segments)
    key = f"{prefix}/{row.name}/{ffmpeg.MEDIA_PLAYLIST}"
    written = outputs.store_text(key, manifests.media_playlist(ffmpeg.INIT_NAME, listed))
    peak, average = measure_bitrates([s[2] for s in segments], [s[1] for s in segments])
    mark_ready(
        row,
        codec=codec,
        segments=[[uri, duration] for uri, duration, _ in segments],
        duration=round(sum(s[1] for s in segments), 6),
        peak_bitrate=peak,
        average_bitrate=average,
        playlist_path=key,
        init_path=f"{prefix}/{row.name}/{ffmpeg.INIT_NAME}",
        bytes_written=written + sum(s[2] for s in segments) + init_bytes,
    )


def mark_ready(part, **extra) -> None:
    part.status, part.progress, part.error = PartStatus.READY, 100, ""
    part.finished_at = timezone.now()
    for key, value in extra.items():
        setattr(part, key, value)
    part.save()


def check_complete(plan: Plan, workdir: Path) -> None:
    """A damaged file can decode partway and still let ffmpeg exit 0: refuse it then."""
    top = plan.rungs[0]
    decoded = sum(s.duration for s in read_segments(workdir / top.name))
    if decoded < plan.duration * MIN_DECODED_SHARE:
        raise SourceRejected(
            f"The file is truncated or damaged: only {decoded:.1f} s of {plan.duration:.1f} s "
            "could be decoded (a gap in its timestamps does this too)."
        )


def apportion_cpu(video: Video, parts: tuple[str, ...], cpu_seconds: float, plan: Plan) -> None:
    """One process made every part, so its measured CPU time is shared out by pixel rate
    (audio, storyboard and poster get a token share): an estimate, documented as such."""
    weights = {}
    if PartKind.RENDITIONS in parts:
        for rung in plan.rungs:
            weights[("r", rung.name)] = rung.width * rung.height * float(rung.fps)
    total_video = sum(weights.values()) or 1.0
    for key, share in (("audio", 0.02), ("storyboard", 0.01), ("poster", 0.01)):
        if key in parts:
            weights[(key, key)] = total_video * share
    total = sum(weights.values()) or 1.0
    for (kind, name), weight in weights.items():
        cpu = round(cpu_seconds * weight / total, 3)
        if kind == "r":
            Rendition.objects.filter(video=video, name=name).update(cpu_seconds=cpu)
        elif kind == "audio":
            Rendition.objects.filter(video=video, kind=Rendition.Kind.AUDIO).update(cpu_seconds=cpu)
        elif kind == "storyboard":
            Storyboard.objects.filter(video=video).update(cpu_seconds=cpu)
        else:
            Poster.objects.filter(video=video).update(cpu_seconds=cpu)


def publish_poster(video: Video, plan: Plan, workdir: Path, prefix: str) -> None:
    path = workdir / ffmpeg.POSTER_NAME
    if not path.exists():
        raise SourceRejected("No frame could be decoded for the poster: the file is damaged.")
    key = f"{prefix}/{ffmpeg.POSTER_NAME}"
    mark_ready(
        Poster.objects.get(video=video),
        path=key,
        time=plan.poster.time,
        width=plan.poster.width,
        height=plan.poster.height,
        bytes_written=outputs.store_file(path, key),
    )


def _relative(key: str, prefix: str, default: str) -> str:
    """A stored key as a URI relative to the video's manifests. Usually under its own prefix;
    a video reusing another's outputs (same source) names them as ../<other>/..."""
    return posixpath.relpath(key, prefix) if key else default


def _segment_template(row: Rendition, prefix: str) -> str:
    init = _relative(row.init_path, prefix, f"{row.name}/{ffmpeg.INIT_NAME}")
    return posixpath.join(posixpath.dirname(init), "seg_$Number%05d$.m4s")


def _subtitle_tracks(video: Video, exclude: int | None) -> tuple[manifests.SubtitleTrack, ...]:
    prefix = outputs.video_prefix(video.pk)
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
    prefix = outputs.video_prefix(video.pk)
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
    outputs.store_text(f"{prefix}/{MASTER_NAME}", manifests.master_playlist(variants, audio, subtitles))
    if live:
        Video.objects.filter(pk=video.pk).update(hls_path=f"{prefix}/{MASTER_NAME}", output_prefix=prefix)
        return True
    mpd = manifests.dash_mpd(
        video.duration or 0, variants, audio, segment_seconds=segment_seconds, subtitles=subtitles
    )
    outputs.store_text(f"{prefix}/{MPD_NAME}", mpd)
    Video.objects.filter(pk=video.pk).update(
        hls_path=f"{prefix}/{MASTER_NAME}", dash_path=f"{prefix}/{MPD_NAME}", output_prefix=prefix
    )
    return True


def publish_audio(video: Video, workdir: Path, stored: dict[str, int], live) -> None:
    """The audio is encoded once for the whole video, by the first chunk's job; its segments
    and init segment were stored while it ran (`stitch.LivePublisher`)."""
    directory = workdir / ffmpeg.AUDIO_DIR
    if ffmpeg.AUDIO_DIR not in live.inits:
        live.store_init(ffmpeg.AUDIO_DIR)
    publish_rendition(
        video.renditions.get(kind=Rendition.Kind.AUDIO),
        finished_segments(directory, stored),
        outputs.video_prefix(video.pk),
        codec=live.codecs[ffmpeg.AUDIO_DIR],
        init_bytes=(directory / ffmpeg.INIT_NAME).stat().st_size,
    )
