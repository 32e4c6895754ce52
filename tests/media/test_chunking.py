"""Chunk planning and the chunk's ffmpeg command: pure, table-driven."""

from fractions import Fraction

import pytest

from transcoding.encoding.results import ChunkResult
from transcoding.encoding.stitch import _check_joins
from transcoding.errors import StitchError
from transcoding.media import ffmpeg
from transcoding.media.chunking import ChunkSpan, chunk_containing, plan_chunks
from transcoding.media.containers import source_input
from transcoding.media.ladder import PresetSpec, RungSpec, SourceInfo, plan_encode

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    "duration, fps, chunk, threshold, starts, segments, first_segments",
    [
        # Not longer than the threshold: one chunk, the whole source.
        (10.0, Fraction(30), 8, 12, [0.0], [3], [1]),
        # 24 s in 8 s chunks of two 4 s segments.
        (24.0, Fraction(30), 8, 12, [0.0, 8.0, 16.0], [2, 2, 2], [1, 3, 5]),
        # A short last chunk keeps the remainder.
        (26.0, Fraction(30), 8, 12, [0.0, 8.0, 16.0, 24.0], [2, 2, 2, 1], [1, 3, 5, 7]),
        # A sliver (under a quarter chunk) joins the chunk before it.
        (82.0, Fraction(25), 40, 60, [0.0, 40.0], [10, 11], [1, 11]),
        # NTSC: cuts move to the next frame (frame 240 is at 8.008 s).
        (24.0, NTSC, 8, 12, [0.0, 8.008, 16.016], [2, 2, 2], [1, 3, 5]),
        # The chunk length is rounded to whole segments (11 s -> 3 segments of 4 s).
        (30.0, Fraction(30), 11, 12, [0.0, 12.0, 24.0], [3, 3, 2], [1, 4, 7]),
    ],
)
def test_plan_chunks(duration, fps, chunk, threshold, starts, segments, first_segments):
    spans = plan_chunks(duration, fps, segment_seconds=4.0, chunk_seconds=chunk, threshold_seconds=threshold)
    assert [s.start for s in spans] == starts
    assert [s.segments for s in spans] == segments
    assert [s.first_segment for s in spans] == first_segments
    assert all(s.count == len(spans) for s in spans)
    # Chunks tile the video: each ends where the next starts, the last at the duration.
    assert [s.end for s in spans] == [*starts[1:], duration]
    assert spans[0].cut_start == 0.0 and spans[-1].cut_end is None


def test_cuts_sit_a_quarter_frame_before_the_first_frame():
    spans = plan_chunks(24.0, NTSC, segment_seconds=4.0, chunk_seconds=8, threshold_seconds=12)
    quarter = float(Fraction(1, 4) / NTSC)
    for before, after in zip(spans, spans[1:]):
        assert after.cut_start == pytest.approx(after.start - quarter, abs=1e-6)
        assert before.cut_end == after.cut_start  # no frame in two chunks, none in neither


@pytest.mark.parametrize(
    "interval, count, first_tiles, tiles",
    [
        (2.0, 12, [0, 4, 8], [4, 4, 4]),
        (3.0, 8, [0, 3, 6], [3, 3, 2]),  # tiles at 0,3,6 | 9,12,15 | 18,21
        (5.0, 5, [0, 2, 4], [2, 2, 1]),  # tiles at 0,5 | 10,15 | 20
    ],
)
def test_storyboard_tiles_are_split_by_their_time(interval, count, first_tiles, tiles):
    spans = plan_chunks(
        24.0, Fraction(30), segment_seconds=4.0, chunk_seconds=8, threshold_seconds=12,
        tile_interval=interval, tile_count=count,
    )  # fmt: skip
    assert [s.first_tile for s in spans] == first_tiles
    assert [s.tiles for s in spans] == tiles
    assert sum(s.tiles for s in spans) == count


def test_chunk_containing_and_json_round_trip():
    spans = plan_chunks(24.0, Fraction(30), segment_seconds=4.0, chunk_seconds=8, threshold_seconds=12)
    assert [chunk_containing(spans, t).index for t in (0, 7.99, 8.0, 23.9, 99)] == [0, 0, 1, 2, 2]
    assert all(ChunkSpan.from_json(s.to_json()) == s for s in spans)


SRC = source_input("/src.mp4", "mov,mp4,m4a,3gp,3g2,mj2")


def _plan(duration=24.0):
    info = SourceInfo(
        container="mov,mp4", duration=duration, width=1280, height=720, video_codec="h264", fps=Fraction(30),
        audio_codec="aac", audio_channels=2, audio_sample_rate=48000,
    )  # fmt: skip
    spec = PresetSpec(rungs=(RungSpec(720, 3_000_000), RungSpec(360, 800_000)))
    return plan_encode(info, spec, segment_seconds=4.0)


def _option(args, name, occurrence=0):
    found = [i for i, a in enumerate(args) if a == name]
    return args[found[occurrence] + 1]


def test_chunk_command_reads_only_its_range_and_numbers_segments_globally():
    plan = _plan()
    sb = plan.storyboard
    spans = plan_chunks(
        24.0, Fraction(30), segment_seconds=4.0, chunk_seconds=8, threshold_seconds=12,
        tile_interval=sb.interval, tile_count=sb.count,
    )  # fmt: skip
    args = ffmpeg.build_encode_args("ffmpeg", SRC, plan, "/w", ("renditions", "storyboard"), spans[1])
    assert args.count("-i") == 1  # input seeking: no second read of the source
    seek = args.index("-ss")
    assert args[seek : seek + 4] == ["-ss", f"{spans[1].cut_start:.6f}", "-to", f"{spans[1].cut_end:.6f}"]
    assert seek < args.index("-i")  # input seeking
    assert "-copyts" in args and "-start_at_zero" in args
    assert _option(args, "-start_number") == "3"
    assert _option(args, "-force_key_frames") == "expr:gte(t,(n_forced+2)*4)"
    assert _option(args, "-hls_segment_options") == "movflags=+frag_discont"
    assert "/w/360p/index.m3u8" in args
    assert "sheet_c001_%04d.jpg" in " ".join(args)
    # The chunk's tiles continue the video's grid: the first at the first tile time >= 8 s.
    assert spans[1].first_tile * sb.interval >= 8.0 > (spans[1].first_tile - 1) * sb.interval
    assert f"start_time={spans[1].first_tile * sb.interval:.6f}" in _option(args, "-filter_complex")


def test_a_chunk_never_makes_the_audio_its_own_process_does():
    """The audio of a chunked video is one process over the whole source, beside chunk 0."""
    plan = _plan()
    spans = plan_chunks(24.0, Fraction(30), segment_seconds=4.0, chunk_seconds=8, threshold_seconds=12)
    with pytest.raises(ValueError):
        ffmpeg.build_encode_args("ffmpeg", SRC, plan, "/w", ffmpeg.ALL_PARTS, spans[0])
    args = ffmpeg.build_audio_args("ffmpeg", SRC, plan, "/w")
    # The whole file, to its planned end (a header's duration cannot make it read on).
    assert args.count("-i") == 1 and "-ss" not in args and _option(args, "-to") == f"{24.0 + 0.5:.6f}"
    assert args[args.index("-i") + 1] == SRC.location and "-filter_complex" not in args
    audio = args.index("-c:a")
    assert args[audio - 2 : audio] == ["-map", "0:a:0"]
    assert args[-1] == "/w/audio/index.m3u8" and _option(args, "-output_ts_offset") == "10"


def test_one_chunk_is_the_plain_command():
    plan = _plan(10.0)
    (span,) = plan_chunks(10.0, Fraction(30), segment_seconds=4.0, chunk_seconds=8, threshold_seconds=12)
    args = ffmpeg.build_encode_args("ffmpeg", SRC, plan, "/w", ffmpeg.ALL_PARTS, span)
    assert args.count("-i") == 1 and "-ss" not in args and _option(args, "-to") == f"{10.0 + 0.5:.6f}"
    assert _option(args, "-force_key_frames") == "expr:gte(t,n_forced*4)"
    assert "sheet_%04d.jpg" in " ".join(args)


def _result(first: int, count: int, init: str = "same") -> ChunkResult:
    names = [f"seg_{n:05d}.m4s" for n in range(first, first + count)]
    return ChunkResult(inits={"720p": init}, segments={"720p": [[name, 4.0, 1000] for name in names]})


@pytest.mark.parametrize(
    "results, error",
    [
        ([_result(1, 2), _result(3, 2)], None),
        ([_result(1, 2), _result(3, 2, init="other")], "different init segments"),
        ([_result(1, 2), _result(4, 2)], "gap in the segment numbers"),
        ([_result(1, 2), ChunkResult()], "different init segments"),
    ],
)
def test_chunks_join_only_with_one_init_segment_and_no_gap(results, error):
    if error is None:
        assert [s[0] for s in _check_joins("720p", results)][-1] == "seg_00004.m4s"
    else:
        with pytest.raises(StitchError, match=error):
            _check_joins("720p", results)
