"""Manifest writers: output parses with m3u8 and mpegdash, and says what it should."""

import random
from fractions import Fraction

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from transcoding.media import manifests
from transcoding.media.ladder import StoryboardPlan

SEGMENTS = (manifests.Segment("seg_00001.m4s", 4.0), manifests.Segment("seg_00002.m4s", 4.0),
            manifests.Segment("seg_00003.m4s", 1.5))  # fmt: skip
AUDIO_SEGMENTS = tuple(
    manifests.Segment(f"seg_{i:05d}.m4s", d) for i, d in enumerate((4.010667, 3.989333, 1.5), 1)
)


def variant(name, width, height, peak):
    return manifests.VideoVariant(
        name=name, playlist_uri=f"{name}/index.m3u8", init_uri=f"{name}/init.mp4",
        media_template=f"{name}/seg_$Number%05d$.m4s", segments=SEGMENTS, width=width, height=height,
        fps=Fraction(30000, 1001), codec="avc1.64001f", peak_bitrate=peak, average_bitrate=peak // 2,
    )  # fmt: skip


VARIANTS = (variant("720p", 1280, 720, 3_000_000), variant("360p", 640, 360, 800_000))
AUDIO = manifests.AudioVariant(
    playlist_uri="audio/index.m3u8", init_uri="audio/init.mp4", media_template="audio/seg_$Number%05d$.m4s",
    segments=AUDIO_SEGMENTS, codec="mp4a.40.2", peak_bitrate=130_000, average_bitrate=128_000,
)  # fmt: skip


def test_media_playlist_is_v7_cmaf():
    text = manifests.media_playlist("init.mp4", SEGMENTS)
    playlist = m3u8.loads(text)
    assert playlist.version == 7
    assert playlist.target_duration == 4
    assert playlist.is_endlist and playlist.playlist_type == "vod"
    assert playlist.is_independent_segments
    assert playlist.segment_map[0].uri == "init.mp4"
    assert [s.duration for s in playlist.segments] == [4.0, 4.0, 1.5]


def test_event_playlist_has_no_endlist():
    playlist = m3u8.loads(manifests.media_playlist("init.mp4", SEGMENTS[:1], ended=False))
    assert not playlist.is_endlist and playlist.playlist_type == "event"


@pytest.mark.parametrize("durations, target", [((4.0, 4.0), 4), ((4.49,), 4), ((4.5,), 5), ((0.2,), 1)])
def test_target_duration_rounds_like_rfc8216(durations, target):
    assert manifests.target_duration(tuple(manifests.Segment("x", d) for d in durations)) == target


def test_master_playlist_attributes():
    playlist = m3u8.loads(manifests.master_playlist(VARIANTS, AUDIO))
    assert playlist.is_variant and playlist.version == 7
    first = playlist.playlists[0]
    info = first.stream_info
    assert info.bandwidth == 3_130_000  # video peak + audio peak
    assert info.average_bandwidth == 1_628_000
    assert info.resolution == (1280, 720)
    assert info.frame_rate == pytest.approx(29.97)
    assert info.codecs == "avc1.64001f,mp4a.40.2"
    assert first.uri == "720p/index.m3u8"
    audio = playlist.media[0]
    assert (audio.type, audio.group_id, audio.uri, audio.default) == (
        "AUDIO",
        "audio",
        "audio/index.m3u8",
        "YES",
    )
    assert all(p.stream_info.audio == "audio" for p in playlist.playlists)


def test_master_without_audio():
    playlist = m3u8.loads(manifests.master_playlist(VARIANTS, None))
    assert not playlist.media
    assert playlist.playlists[0].stream_info.codecs == "avc1.64001f"


def test_mpd_parses_and_references_the_same_segments():
    mpd = MPEGDASHParser.parse(manifests.dash_mpd(9.5, VARIANTS, AUDIO))
    assert mpd.type == "static" and mpd.media_presentation_duration == "PT9.500S"
    video_set, audio_set = mpd.periods[0].adaptation_sets
    assert [r.id for r in video_set.representations] == ["720p", "360p"]
    template = video_set.representations[0].segment_templates[0]
    assert template.initialization == "720p/init.mp4"
    assert template.media == "720p/seg_$Number%05d$.m4s"
    timeline = template.segment_timelines[0].Ss
    # Media timestamps start at TIMELINE_OFFSET (10 s at 90 kHz); presentationTimeOffset maps it to 0.
    assert template.presentation_time_offset == 900000
    assert [(s.t, s.d, s.r) for s in timeline] == [(900000, 360000, 1), (None, 135000, None)]
    assert audio_set.representations[0].codecs == "mp4a.40.2"


def test_timeline_rounding_never_drifts():
    segments = tuple(manifests.Segment("x", 4.010667) for _ in range(1000))
    timeline = manifests.segment_timeline(segments, 48000)
    total = sum(int(s.get("d")) * (int(s.get("r", 0)) + 1) for s in timeline)
    assert total == round(4.010667 * 1000 * 48000)


def sb_plan(count=25, columns=10, rows=2, interval=2.0):
    return StoryboardPlan(
        interval=interval, tile_width=160, tile_height=90, columns=columns, rows=rows, count=count
    )


def test_storyboard_vtt_covers_duration_and_tiles_lie_in_sheets():
    plan = sb_plan()
    vtt = manifests.storyboard_vtt(plan, 49.0, ["sheet_0001.jpg", "sheet_0002.jpg"])
    cues = [block.splitlines() for block in vtt.split("\n\n")[1:] if block.strip()]
    assert len(cues) == 25
    assert cues[0] == ["00:00:00.000 --> 00:00:02.000", "sheet_0001.jpg#xywh=0,0,160,90"]
    assert cues[19][1] == "sheet_0001.jpg#xywh=1440,90,160,90"
    assert cues[20][1] == "sheet_0002.jpg#xywh=0,0,160,90"
    assert cues[-1][0] == "00:00:48.000 --> 00:00:49.000"


@pytest.mark.parametrize(
    "seconds, text", [(0, "00:00:00.000"), (61.5, "00:01:01.500"), (3725.0004, "01:02:05.000")]
)
def test_vtt_timestamp(seconds, text):
    assert manifests.vtt_timestamp(seconds) == text


def test_webvtt_segments_hold_every_overlapping_cue_in_order():
    """Against the plain definition (every cue overlapping each segment's range), on cues of
    every length, overlapping and out of order."""
    rng = random.Random(7)
    cues = []
    for n in range(300):
        start = rng.uniform(0, 100)
        cues.append(manifests.Cue(round(start, 3), round(start + rng.choice([0.1, 1, 3, 9, 40]), 3), f"c{n}"))
    durations = [4.0] * 24 + [2.5]
    got = list(manifests.webvtt_segments(cues, durations))
    bounds = [sum(durations[:i]) for i in range(len(durations) + 1)]
    ordered = sorted(cues, key=lambda c: c.start)
    for index, text in enumerate(got):
        start, end = bounds[index], bounds[index + 1] if index < len(durations) - 1 else float("inf")
        expected = [c.text for c in ordered if c.start < end and c.end > start]
        assert [line for line in text.splitlines() if line.startswith("c")] == expected, index
