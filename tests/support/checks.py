"""Assertions on a processed video's stored outputs, shared by the end-to-end tests.
They read the files as a player would: playlists through m3u8, the MPD through mpegdash,
media through PyAV and ffmpeg."""

import subprocess
import tempfile
from pathlib import Path

import av
import m3u8
import webvtt
from django.core.files.storage import default_storage
from mpegdash.parser import MPEGDASHParser

from transcoding.conf import ffmpeg_binary
from transcoding.models import PartStatus, Rendition, Video

DURATION_TOLERANCE = 0.25


def stored(key: str) -> Path:
    return Path(default_storage.path(key))


def concatenated(rendition: Rendition) -> Path:
    """init + segments as one fragmented MP4 file, which is what a player's buffer holds."""
    directory = stored(rendition.playlist_path).parent
    with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as handle:
        handle.write((directory / "init.mp4").read_bytes())
        for uri, _ in rendition.segments:
            handle.write((directory / uri).read_bytes())
    return Path(handle.name)


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(
            float(p.pts * stream.time_base)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        )


def media_duration(path: Path) -> float:
    """Seconds from the first timestamp to the end. Media timestamps start at TIMELINE_OFFSET
    (no edit list), which libavformat counts in `duration` as well."""
    with av.open(str(path)) as container:
        return (container.duration - (container.start_time or 0)) / av.time_base


def decode_errors(url: str) -> str:
    """Decode every stream of a manifest with ffmpeg; returns what ffmpeg printed as errors."""
    result = subprocess.run(
        [
            ffmpeg_binary(),
            "-hide_banner",
            "-v",
            "error",
            "-i",
            url,
            "-map",
            "0",
            "-c:s",
            "copy",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.strip()


def assert_ladder(video: Video, expected_names: list[str]) -> None:
    names = [r.name for r in video.renditions.filter(kind=Rendition.Kind.VIDEO).order_by("-height")]
    assert names == expected_names
    assert all(r.status == PartStatus.READY for r in video.renditions.all() if r.status != PartStatus.SKIPPED)


def assert_playlists_parse(video: Video) -> m3u8.M3U8:
    master = m3u8.load(str(stored(video.hls_path)))
    assert master.is_variant and master.version == 7
    for variant in master.playlists:
        info = variant.stream_info
        assert (
            info.bandwidth and info.average_bandwidth and info.resolution and info.frame_rate and info.codecs
        )
        media = m3u8.load(str(stored(video.hls_path).parent / variant.uri))
        assert media.version == 7 and media.is_independent_segments and media.is_endlist
        assert media.segment_map[0].uri == "init.mp4"
        for segment in media.segments:
            assert (stored(video.hls_path).parent / variant.uri).parent.joinpath(segment.uri).exists()
    for rendition in master.media:
        media = m3u8.load(str(stored(video.hls_path).parent / rendition.uri))
        assert media.segments
    return master


def assert_mpd_parses(video: Video) -> None:
    mpd = MPEGDASHParser.parse(stored(video.dash_path).read_text())
    assert mpd.type == "static"
    base = stored(video.dash_path).parent
    representations = [r for s in mpd.periods[0].adaptation_sets for r in s.representations]
    names = {r.name for r in video.renditions.filter(status=PartStatus.READY)}
    assert {r.id for r in representations} == names
    for rep in representations:
        template = rep.segment_templates[0]
        assert (base / template.initialization).exists()
        count = sum((s.r or 0) + 1 for s in template.segment_timelines[0].Ss)
        for number in range(1, count + 1):
            assert (base / template.media.replace("$Number%05d$", f"{number:05d}")).exists()


def assert_durations_match(video: Video, source_duration: float) -> None:
    for rendition in video.renditions.filter(status=PartStatus.READY):
        assert abs(rendition.duration - source_duration) <= DURATION_TOLERANCE, rendition.name
        path = concatenated(rendition)
        try:
            assert abs(media_duration(path) - source_duration) <= DURATION_TOLERANCE, rendition.name
        finally:
            path.unlink()


def assert_keyframes_on_grid(video: Video, segment_seconds: float) -> None:
    """Every segment starts with a keyframe at a multiple of the segment length, on every rung."""
    grids = []
    for rendition in video.renditions.filter(kind=Rendition.Kind.VIDEO, status=PartStatus.READY):
        path = concatenated(rendition)
        try:
            times = keyframe_times(path)
        finally:
            path.unlink()
        starts, elapsed = [], 0.0
        for _, duration in rendition.segments:
            starts.append(elapsed)
            elapsed += duration
        offset = times[0]  # encoder delay, the same on every rung
        relative = [round(t - offset, 3) for t in times]
        assert relative == [round(s, 3) for s in starts], rendition.name
        # On the grid: the first frame at or after each multiple of the segment length.
        frame = 1 / (rendition.fps or video.fps)
        assert all(-1e-6 < s - round(s / segment_seconds) * segment_seconds < frame for s in starts)
        grids.append(relative)
    assert all(grid == grids[0] for grid in grids)


def assert_storyboard(video: Video) -> None:
    storyboard = video.storyboard
    assert storyboard.status == PartStatus.READY
    cues = list(webvtt.read(str(stored(storyboard.vtt_path))))
    assert cues[0].start_time.in_milliseconds() == 0
    assert abs(cues[-1].end_time.in_milliseconds() / 1000 - video.duration) < 0.002
    for previous, cue in zip(cues, cues[1:]):
        assert previous.end_time.in_milliseconds() == cue.start_time.in_milliseconds()
    sizes = {}
    for path in storyboard.image_paths:
        with av.open(str(stored(path))) as sheet:
            stream = sheet.streams.video[0]
            sizes[Path(path).name] = (stream.codec_context.width, stream.codec_context.height)
    assert 20 <= len(cues) <= 200
    for cue in cues:
        name, _, fragment = cue.text.partition("#xywh=")
        x, y, w, h = (int(v) for v in fragment.split(","))
        width, height = sizes[name]
        assert x >= 0 and x + w <= width and y >= 0 and y + h <= height, cue.text
        assert (w, h) == (storyboard.tile_width, storyboard.tile_height)


def assert_poster(video: Video) -> None:
    poster = video.poster
    assert poster.status == PartStatus.READY
    with av.open(str(stored(poster.path))) as image:
        frame = next(image.decode(video=0))
        assert (frame.width, frame.height) == (poster.width, poster.height)
        plane = bytes(frame.reformat(format="gray").planes[0])
    assert sum(plane) / len(plane) > 16, "poster is black"


def has_audio_stream(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio)


def assert_audio(video: Video, expected: bool) -> None:
    audio = video.renditions.get(kind=Rendition.Kind.AUDIO)
    master = stored(video.hls_path).read_text()
    if expected:
        assert audio.status == PartStatus.READY and audio.codec == "mp4a.40.2"
        path = concatenated(audio)
        try:
            assert has_audio_stream(path)
        finally:
            path.unlink()
        assert "TYPE=AUDIO" in master
    else:
        assert audio.status == PartStatus.SKIPPED
        assert "TYPE=AUDIO" not in master
        assert "mp4a" not in stored(video.dash_path).read_text()
    for rendition in video.renditions.filter(kind=Rendition.Kind.VIDEO):
        path = concatenated(rendition)
        try:
            assert not has_audio_stream(path)  # audio is its own rendition, never muxed in
        finally:
            path.unlink()


def assert_all_outputs(video: Video, source_duration: float, ladder: list[str], audio: bool) -> None:
    assert video.status == "ready" and video.playable and video.progress == 100, video.error
    assert_ladder(video, ladder)
    assert_playlists_parse(video)
    assert_mpd_parses(video)
    assert_durations_match(video, source_duration)
    assert_keyframes_on_grid(video, 4.0)
    assert_storyboard(video)
    assert_poster(video)
    assert_audio(video, audio)
    assert decode_errors(str(stored(video.hls_path))) == ""
    assert decode_errors(str(stored(video.dash_path))) == ""


def packet_times(rendition: Rendition) -> list[float]:
    """Presentation times of every packet of the rendition played as one stream, in order."""
    path = concatenated(rendition)
    try:
        with av.open(str(path)) as container:
            stream = container.streams[0]
            return sorted(
                float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None
            )
    finally:
        path.unlink()


def decoded_frames(rendition: Rendition) -> int:
    path = concatenated(rendition)
    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    finally:
        path.unlink()
