"""Turn what ffmpeg wrote in the work directory into stored, ready parts.

Order matters: a part's files are all stored before the part is marked ready, and the
manifests (`transcoding.packaging`) are written after the parts they name.
"""

from pathlib import Path

import av
import m3u8

from transcoding.errors import SourceRejected
from transcoding.media import ffmpeg, manifests
from transcoding.media.ladder import Plan
from transcoding.models import PartKind, Poster, Rendition, Video
from transcoding.status import parts as part_status
from transcoding.status.parts import part_ready
from transcoding.storage import objects

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


def store_media_playlist(key: str, segments, *, ended: bool) -> int:
    """Store a CMAF rung's media playlist naming `segments` ([uri, duration, ...] each, in
    order): growing (EVENT) while an encode runs, ended (VOD) once whole. Returns its bytes."""
    listed = tuple(manifests.Segment(segment[0], segment[1]) for segment in segments)
    return objects.store_text(key, manifests.media_playlist(ffmpeg.INIT_NAME, listed, ended=ended))


def publish_rendition(
    row: Rendition, segments: list, prefix: str, *, codec: str, init_bytes: int, ended: bool = True
) -> None:
    """A rendition whose segments ([uri, duration, bytes], in order) and init segment are
    stored already: write its media playlist and mark it ready, with what was measured.

    `ended` False keeps the playlist an EVENT one although the rendition is whole: the audio,
    finished while the video's rungs still grow (`end_playlist` ends it at the stitch)."""
    key = f"{prefix}/{row.name}/{ffmpeg.MEDIA_PLAYLIST}"
    written = store_media_playlist(key, segments, ended=ended)
    peak, average = measure_bitrates([s[2] for s in segments], [s[1] for s in segments])
    part_ready(
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
            weights[rung.name] = rung.width * rung.height * float(rung.fps)
    total_video = sum(weights.values()) or 1.0
    for kind, share in ((PartKind.AUDIO, 0.02), (PartKind.STORYBOARD, 0.01), (PartKind.POSTER, 0.01)):
        if kind in parts:
            weights[kind] = total_video * share
    total = sum(weights.values()) or 1.0
    for name, weight in weights.items():
        cpu = round(cpu_seconds * weight / total, 3)
        if name in part_status.PARTS:
            for queryset in part_status.rows(video.pk, [name]):
                queryset.update(cpu_seconds=cpu)
        else:
            Rendition.objects.filter(video=video, name=name).update(cpu_seconds=cpu)


def publish_poster(video: Video, plan: Plan, workdir: Path, prefix: str) -> None:
    path = workdir / ffmpeg.POSTER_NAME
    if not path.exists():
        raise SourceRejected("No frame could be decoded for the poster: the file is damaged.")
    key = f"{prefix}/{ffmpeg.POSTER_NAME}"
    part_ready(
        Poster.objects.get(video=video),
        path=key,
        time=plan.poster.time,
        width=plan.poster.width,
        height=plan.poster.height,
        bytes_written=objects.store_file(path, key),
    )


def publish_audio(video: Video, workdir: Path, stored: dict[str, int], live, *, ended: bool) -> None:
    """The audio is encoded once for the whole video, by the first chunk's job; its segments
    and init segment were stored while it ran (`stitch.LivePublisher`).

    `ended` is False while the video's rungs are still being encoded: players read the
    presentation as live or not from whichever media playlist they parse last (Shaka), so one
    ended playlist among growing ones would stop playback at the end of the first chunk."""
    directory = workdir / ffmpeg.AUDIO_DIR
    if ffmpeg.AUDIO_DIR not in live.inits:
        live.store_init(ffmpeg.AUDIO_DIR)
    publish_rendition(
        video.renditions.get(kind=Rendition.Kind.AUDIO),
        finished_segments(directory, stored),
        objects.video_prefix(video.pk),
        codec=live.codecs[ffmpeg.AUDIO_DIR],
        init_bytes=(directory / ffmpeg.INIT_NAME).stat().st_size,
        ended=ended,
    )


def end_playlist(row: Rendition) -> None:
    """Rewrite a ready rendition's playlist, from the segments it lists, as ended (VOD): the
    stitch ends the audio's with the video's rungs, so every playlist of a video ends at once."""
    store_media_playlist(row.playlist_path, row.segments, ended=True)
