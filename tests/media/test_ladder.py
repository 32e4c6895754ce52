"""Ladder planning: table-driven, no ffmpeg."""

from fractions import Fraction

import pytest

from transcoding.media.ladder import (
    PresetSpec,
    RungSpec,
    SourceInfo,
    cap_fps,
    even,
    plan_encode,
    plan_storyboard,
)
from transcoding.models import preset_spec

PRESET = preset_spec(None)  # 1080/720/480/360/240


def source(width=1920, height=1080, fps=30, **kw):
    kw.setdefault("duration", 60.0)
    return SourceInfo(
        container="mp4", width=width, height=height, video_codec="h264", fps=Fraction(fps), **kw
    )


def sizes(plan):
    return [(r.name, r.width, r.height) for r in plan.rungs]


@pytest.mark.parametrize(
    "src, expected",
    [
        (source(1920, 1080), [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480),
                              ("360p", 640, 360), ("240p", 426, 240)]),
        # never upscaled: a 720p source stops at 720p
        (source(1280, 720), [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360),
                             ("240p", 426, 240)]),
        # below the smallest rung: one rung at the source's own (even) size
        (source(320, 180), [("180p", 320, 180)]),
        (source(321, 181), [("180p", 320, 180)]),
        # portrait: the rung number is the short side
        (source(1080, 1920), [("1080p", 1080, 1920), ("720p", 720, 1280), ("480p", 480, 854),
                              ("360p", 360, 640), ("240p", 240, 426)]),
        # rotation 90 turns a landscape-coded phone video into portrait
        (source(1280, 720, rotation=90), [("720p", 720, 1280), ("480p", 480, 854), ("360p", 360, 640),
                                          ("240p", 240, 426)]),
        # anamorphic DVD (720x480 with SAR 32:27 shows as 853x480): square pixels, not wider
        (source(720, 480, sar=Fraction(32, 27)), [("480p", 852, 480), ("360p", 640, 360),
                                                   ("240p", 426, 240)]),
        # odd sizes come out even
        (source(1278, 719), [("480p", 854, 480), ("360p", 640, 360), ("240p", 426, 240)]),
        # 4:3
        (source(640, 480), [("480p", 640, 480), ("360p", 480, 360), ("240p", 320, 240)]),
    ],
)  # fmt: skip
def test_rung_sizes(src, expected):
    plan = plan_encode(src, PRESET)
    assert sizes(plan) == expected
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in plan.rungs)


@pytest.mark.parametrize(
    "fps, cap, expected",
    [
        (Fraction(30), 60, Fraction(30)),
        (Fraction(60), 30, Fraction(30)),
        (Fraction(50), 30, Fraction(25)),
        (Fraction(60000, 1001), 30, Fraction(30000, 1001)),
        (Fraction(120), 60, Fraction(60)),
        (Fraction(120), 30, Fraction(30)),
        (Fraction(24), 30, Fraction(24)),
        (Fraction(0), 30, Fraction(30)),
    ],
)
def test_cap_fps(fps, cap, expected):
    assert cap_fps(fps, cap) == expected


@pytest.mark.parametrize(
    "fps, expected",
    [
        # 60 fps: 60 at 720p and above, 30 below
        (60, {"1080p": 60, "720p": 60, "480p": 30, "360p": 30, "240p": 30}),
        (25, {"1080p": 25, "720p": 25, "480p": 25, "360p": 25, "240p": 25}),
        (120, {"1080p": 60, "720p": 60, "480p": 30, "360p": 30, "240p": 30}),
    ],
)
def test_frame_rate_caps(fps, expected):
    plan = plan_encode(source(fps=fps), PRESET)
    assert {r.name: r.fps for r in plan.rungs} == expected


@pytest.mark.parametrize(
    "fps, seconds, gop", [(30, 4, 120), (25, 4, 100), (Fraction(30000, 1001), 4, 120), (60, 2, 120)]
)
def test_gop_matches_segment_grid(fps, seconds, gop):
    plan = plan_encode(source(fps=fps), PRESET, segment_seconds=seconds)
    assert plan.rungs[0].gop == gop
    assert plan.segment_seconds == seconds


@pytest.mark.parametrize(
    "source_bitrate, expected",
    [
        (None, [6_000_000, 3_000_000, 1_500_000, 800_000, 400_000]),
        # caps never above what the source carries
        (2_000_000, [2_000_000, 2_000_000, 1_500_000, 800_000, 400_000]),
        (500_000, [500_000, 500_000, 500_000, 500_000, 400_000]),
    ],
)
def test_bitrate_caps_follow_source(source_bitrate, expected):
    plan = plan_encode(source(video_bitrate=source_bitrate), PRESET)
    assert [r.max_bitrate for r in plan.rungs] == expected
    assert all(r.bufsize == 2 * r.max_bitrate for r in plan.rungs)


@pytest.mark.parametrize(
    "kw, change_fps",
    [({}, False), ({"vfr": True}, True), ({"fps": 60}, True)],
)
def test_vfr_forces_constant_rate(kw, change_fps):
    plan = plan_encode(source(**kw), PRESET)
    assert plan.rungs[-1].change_fps is change_fps


def test_audio_only_when_source_has_it():
    assert plan_encode(source(audio_codec="aac"), PRESET).audio.bitrate == 128_000
    assert plan_encode(source(), PRESET).audio is None


def test_hdr_is_tonemapped():
    plan = plan_encode(source(hdr=True, color_transfer="smpte2084", bit_depth=10), PRESET)
    assert plan.tonemap and "HDR" in plan.notes[0]


@pytest.mark.parametrize(
    "duration, count, interval",
    [
        (5.0, 20, 0.25),  # short: at least 20 tiles
        (60.0, 30, 2.0),  # one tile every 2 s
        (400.0, 200, 2.0),
        (3600.0, 200, 18.0),  # long: at most 200 tiles
    ],
)
def test_storyboard_tiles(duration, count, interval):
    plan = plan_storyboard(source(duration=duration), PRESET)
    assert plan.count == count
    assert plan.interval == pytest.approx(interval)
    assert plan.tile_width == 160 and plan.tile_height == 90
    assert plan.columns <= 10 and plan.rows <= 10
    assert plan.sheets * plan.per_sheet >= plan.count


def test_storyboard_grid_shrinks_for_few_tiles():
    plan = plan_storyboard(source(duration=5.0), PRESET)
    assert (plan.columns, plan.rows, plan.sheets) == (10, 2, 1)


def test_storyboard_tiles_keep_portrait_aspect():
    plan = plan_storyboard(source(1080, 1920), PRESET)
    assert (plan.tile_width, plan.tile_height) == (160, 284)


@pytest.mark.parametrize(
    "poster_time, expected",
    [(None, None), (3.0, 3.0), (-5.0, 0.0), (999.0, 60.0 - 1 / 30)],
)
def test_poster_time_is_clamped(poster_time, expected):
    plan = plan_encode(source(), PRESET, poster_time=poster_time)
    assert plan.poster.time == (None if expected is None else pytest.approx(expected))
    assert (plan.poster.width, plan.poster.height) == (1920, 1080)


def test_custom_preset_rungs_and_duplicates():
    preset = PresetSpec(
        rungs=(RungSpec(720, 2_000_000), RungSpec(720, 1_000_000), RungSpec(144, 100_000, 30))
    )
    plan = plan_encode(source(1280, 720), preset)
    assert [r.name for r in plan.rungs] == ["720p", "144p"]
    assert plan.rungs[1].crf == 30


@pytest.mark.parametrize("value, expected", [(0, 2), (1, 2), (3, 4), (853.33, 854), (719, 720), (480, 480)])
def test_even(value, expected):
    assert even(value) == expected
