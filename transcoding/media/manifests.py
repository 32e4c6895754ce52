"""Write the HLS master and media playlists, the DASH MPD and the storyboard WebVTT. Pure.

Both manifests reference one set of CMAF segments: each rendition's `init.mp4` and
`seg_NNNNN.m4s`. URIs are relative to the manifest that names them, so the same text works
from local disk, S3, a CDN, or rewritten to signed URLs.
"""

import math
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from transcoding.media.chunking import TIMELINE_OFFSET
from transcoding.media.ladder import StoryboardPlan


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True)
class VideoVariant:
    name: str
    playlist_uri: str
    init_uri: str
    media_template: str  # DASH SegmentTemplate@media, e.g. "720p/seg_$Number%05d$.m4s"
    segments: tuple[Segment, ...]
    width: int
    height: int
    fps: Fraction
    codec: str
    peak_bitrate: int
    average_bitrate: int


@dataclass(frozen=True)
class AudioVariant:
    playlist_uri: str
    init_uri: str
    media_template: str
    segments: tuple[Segment, ...]
    codec: str
    peak_bitrate: int
    average_bitrate: int
    channels: int = 2
    sample_rate: int = 48_000
    language: str = "und"
    name: str = "Default"


@dataclass(frozen=True)
class SubtitleTrack:
    language: str
    name: str
    playlist_uri: str  # segmented WebVTT media playlist, for HLS
    vtt_uri: str  # the whole track, for DASH
    default: bool = False
    kind: str = "subtitles"  # or "captions"


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


AUDIO_GROUP = "audio"
SUBTITLE_GROUP = "subs"


def _format_fps(fps: Fraction) -> str:
    return f"{float(fps):.3f}"


def target_duration(segments: tuple[Segment, ...]) -> int:
    """RFC 8216: every EXTINF rounded to the nearest integer is at most the target."""
    return max([1, *(int(math.floor(s.duration + 0.5)) for s in segments)])


def media_playlist(init_uri: str | None, segments: tuple[Segment, ...], *, ended: bool = True) -> str:
    """A media playlist; `init_uri` None for WebVTT segments, which need no init section."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target_duration(segments)}",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-PLAYLIST-TYPE:VOD" if ended else "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if init_uri is not None:
        lines.append(f'#EXT-X-MAP:URI="{init_uri}"')
    for segment in segments:
        lines += [f"#EXTINF:{segment.duration:.6f},", segment.uri]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    """A quoted-string attribute value (RFC 8216 4.2): no double quote, and no control
    character, since a CR or LF would end the tag line and start a line of the attacker's."""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in value)
    return " ".join(text.replace('"', "'").split())


def master_playlist(
    variants: tuple[VideoVariant, ...],
    audio: AudioVariant | None,
    subtitles: tuple[SubtitleTrack, ...] = (),
) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for track in subtitles:
        characteristics = (
            ',CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,'
            'public.accessibility.describes-music-and-sound"'
            if track.kind == "captions"
            else ""
        )
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLE_GROUP}",NAME="{_quoted(track.name)}",'
            f'LANGUAGE="{_quoted(track.language)}",DEFAULT={"YES" if track.default else "NO"},'
            f"AUTOSELECT={'YES' if track.default else 'NO'},FORCED=NO{characteristics},"
            f'URI="{track.playlist_uri}"'
        )
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="{audio.name}",'
            f'LANGUAGE="{audio.language}",DEFAULT=YES,AUTOSELECT=YES,'
            f'CHANNELS="{audio.channels}",URI="{audio.playlist_uri}"'
        )
    for v in variants:
        codecs = v.codec if audio is None else f"{v.codec},{audio.codec}"
        peak = v.peak_bitrate + (audio.peak_bitrate if audio else 0)
        average = v.average_bitrate + (audio.average_bitrate if audio else 0)
        attrs = [
            f"BANDWIDTH={peak}",
            f"AVERAGE-BANDWIDTH={average}",
            f"RESOLUTION={v.width}x{v.height}",
            f"FRAME-RATE={_format_fps(v.fps)}",
            f'CODECS="{codecs}"',
        ]
        if audio is not None:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        if subtitles:
            attrs.append(f'SUBTITLES="{SUBTITLE_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.playlist_uri]
    return "\n".join(lines) + "\n"


def iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def segment_timeline(segments: tuple[Segment, ...], timescale: int, offset: float = 0.0) -> ET.Element:
    """<SegmentTimeline> with run-length coded durations, starting at `offset` seconds. Start
    times are rounded from the running sum, so rounding never accumulates into drift against
    the media timestamps."""
    timeline = ET.Element("SegmentTimeline")
    starts = [round(offset * timescale)]
    elapsed = offset
    for segment in segments:
        elapsed += segment.duration
        starts.append(round(elapsed * timescale))
    durations = [b - a for a, b in zip(starts, starts[1:])]
    index = 0
    while index < len(durations):
        run = 1
        while index + run < len(durations) and durations[index + run] == durations[index]:
            run += 1
        attrs = {"d": str(durations[index])}
        if index == 0:
            attrs = {"t": str(starts[0]), **attrs}
        if run > 1:
            attrs["r"] = str(run - 1)
        ET.SubElement(timeline, "S", attrs)
        index += run
    return timeline


def _segment_template(init_uri: str, media: str, segments, timescale: int) -> ET.Element:
    """The media timestamps start at TIMELINE_OFFSET; presentationTimeOffset maps that to 0."""
    offset = str(round(TIMELINE_OFFSET * timescale))
    template = ET.Element(
        "SegmentTemplate",
        {
            "timescale": str(timescale),
            "presentationTimeOffset": offset,
            "initialization": init_uri,
            "media": media,
            "startNumber": "1",
        },
    )
    template.append(segment_timeline(segments, timescale, TIMELINE_OFFSET))
    return template


def dash_mpd(
    duration: float,
    variants: tuple[VideoVariant, ...],
    audio: AudioVariant | None,
    *,
    segment_seconds: float = 4.0,
    subtitles: tuple[SubtitleTrack, ...] = (),
) -> str:
    mpd = ET.Element(
        "MPD",
        {
            "xmlns": "urn:mpeg:dash:schema:mpd:2011",
            "profiles": "urn:mpeg:dash:profile:isoff-live:2011",
            "type": "static",
            "mediaPresentationDuration": iso_duration(duration),
            "minBufferTime": iso_duration(segment_seconds),
        },
    )
    period = ET.SubElement(mpd, "Period", {"id": "0", "start": "PT0S"})
    video_set = ET.SubElement(
        period,
        "AdaptationSet",
        {
            "id": "0",
            "contentType": "video",
            "mimeType": "video/mp4",
            "segmentAlignment": "true",
            "startWithSAP": "1",
            "maxWidth": str(max(v.width for v in variants)),
            "maxHeight": str(max(v.height for v in variants)),
        },
    )
    for v in variants:
        rep = ET.SubElement(
            video_set,
            "Representation",
            {
                "id": v.name,
                "bandwidth": str(v.peak_bitrate),
                "codecs": v.codec,
                "width": str(v.width),
                "height": str(v.height),
                "frameRate": f"{v.fps.numerator}/{v.fps.denominator}",
                "sar": "1:1",
            },
        )
        rep.append(_segment_template(v.init_uri, v.media_template, v.segments, 90_000))
    if audio is not None:
        audio_set = ET.SubElement(
            period,
            "AdaptationSet",
            {
                "id": "1",
                "contentType": "audio",
                "mimeType": "audio/mp4",
                "lang": audio.language,
                "segmentAlignment": "true",
                "startWithSAP": "1",
            },
        )
        rep = ET.SubElement(
            audio_set,
            "Representation",
            {
                "id": "audio",
                "bandwidth": str(audio.peak_bitrate),
                "codecs": audio.codec,
                "audioSamplingRate": str(audio.sample_rate),
            },
        )
        ET.SubElement(
            rep,
            "AudioChannelConfiguration",
            {
                "schemeIdUri": "urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
                "value": str(audio.channels),
            },
        )
        rep.append(_segment_template(audio.init_uri, audio.media_template, audio.segments, audio.sample_rate))
    for index, track in enumerate(subtitles, start=2):
        text_set = ET.SubElement(
            period,
            "AdaptationSet",
            {"id": str(index), "contentType": "text", "mimeType": "text/vtt", "lang": track.language},
        )
        role = "caption" if track.kind == "captions" else "subtitle"
        ET.SubElement(text_set, "Role", {"schemeIdUri": "urn:mpeg:dash:role:2011", "value": role})
        ET.SubElement(text_set, "Label").text = _quoted(track.name)  # XML 1.0 has no control characters
        rep = ET.SubElement(
            text_set, "Representation", {"id": f"text-{track.language}-{track.kind}", "bandwidth": "256"}
        )
        ET.SubElement(rep, "BaseURL").text = track.vtt_uri
    ET.indent(mpd)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(mpd, encoding="unicode") + "\n"


def vtt_timestamp(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def storyboard_vtt(plan: StoryboardPlan, duration: float, sheet_uris: list[str]) -> str:
    """One cue per tile; the cues cover [0, duration] without gaps."""
    tiles = [(sheet_uris[i // plan.per_sheet], i % plan.per_sheet) for i in range(plan.count)]
    return storyboard_vtt_tiles(plan, duration, tiles)


def storyboard_vtt_tiles(plan: StoryboardPlan, duration: float, tiles: list[tuple[str, int]]) -> str:
    """One cue per tile, given each tile's (sheet URI, position in the sheet) in time order:
    the sheets of a chunked encode are each chunk's own."""
    lines = ["WEBVTT", ""]
    for index, (sheet_uri, position) in enumerate(tiles):
        start = index * plan.interval
        if start >= duration:
            break
        end = duration if index == len(tiles) - 1 else min((index + 1) * plan.interval, duration)
        row, column = divmod(position, plan.columns)
        x, y = column * plan.tile_width, row * plan.tile_height
        lines += [
            f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}",
            f"{sheet_uri}#xywh={x},{y},{plan.tile_width},{plan.tile_height}",
            "",
        ]
    return "\n".join(lines)


def cue_text(text: str) -> str:
    """Cue text that stays one cue (WebVTT 4.1): line breaks kept, but no blank line (it would
    end the cue, and what follows could be read as cues of someone else's), no "-->", and no
    control characters."""
    text = "".join(c for c in text.replace("\r", "\n") if c == "\n" or unicodedata.category(c)[0] != "C")
    lines = [line.strip() for line in text.replace("-->", "->").split("\n")]
    return "\n".join(line for line in lines if line)


def webvtt(cues: tuple[Cue, ...] | list[Cue]) -> str:
    lines = ["WEBVTT", ""]
    for cue in cues:
        text = cue_text(cue.text)
        if text:
            lines += [f"{vtt_timestamp(cue.start)} --> {vtt_timestamp(cue.end)}", text, ""]
    return "\n".join(lines)


# RFC 8216 section 3.5: cue times are local; this header maps local 0 to the media's first
# timestamp (TIMELINE_OFFSET, in 90 kHz units).
TIMESTAMP_MAP = f"X-TIMESTAMP-MAP=MPEGTS:{TIMELINE_OFFSET * 90_000},LOCAL:00:00:00.000"


def webvtt_segments(cues: list[Cue], durations: list[float]) -> Iterator[str]:
    """Split a track on the video's segment boundaries (RFC 8216 section 3.5): each segment
    holds the cues that overlap its time range, so a cue crossing a boundary is in both.
    Yields one segment at a time (the caller can stop early). One pass over cues sorted by
    start, keeping those still running: the cost is the cues plus what the segments hold, not
    cues times segments."""
    ordered = sorted(cues, key=lambda c: c.start)
    start, following, running = 0.0, 0, []
    for index, duration in enumerate(durations):
        end = start + duration if index < len(durations) - 1 else float("inf")
        while following < len(ordered) and ordered[following].start < end:
            running.append(ordered[following])
            following += 1
        running = [c for c in running if c.end > start]
        text = webvtt([c for c in running if c.start < end])
        yield text.replace("WEBVTT\n", f"WEBVTT\n{TIMESTAMP_MAP}\n", 1)
        start += duration
