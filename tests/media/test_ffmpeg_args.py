"""argv building and output parsing: table-driven, no ffmpeg run."""

from fractions import Fraction

import pytest

from transcoding.media import ffmpeg
from transcoding.media.containers import source_input
from transcoding.media.ladder import SourceInfo, plan_encode
from transcoding.models import preset_spec


def plan(width=1280, height=720, fps=30, audio="aac", duration=10.0, **kw):
    src = SourceInfo(
        container="mp4", width=width, height=height, video_codec="h264", fps=Fraction(fps),
        duration=duration, audio_codec=audio, **kw,
    )  # fmt: skip
    return plan_encode(src, preset_spec(None), segment_seconds=4.0, poster_time=kw.pop("poster_time", None))


SRC = source_input("/in.mp4", "mov,mp4,m4a,3gp,3g2,mj2")


def value_after(args, flag, occurrence=0):
    positions = [i for i, a in enumerate(args) if a == flag]
    return args[positions[occurrence] + 1]


def test_one_process_writes_every_part():
    p = plan()
    args = ffmpeg.build_encode_args("ffmpeg", SRC, p, "/w")
    assert args.count("-i") == 1  # decode once
    assert args.count("-filter_complex") == 1
    graph = value_after(args, "-filter_complex")
    assert graph.startswith("[0:v:0]split=6")  # 4 rungs + storyboard + poster
    outputs = [a for a in args if a.endswith((".m3u8", ".jpg"))]
    assert outputs == [
        "/w/720p/index.m3u8", "/w/480p/index.m3u8", "/w/360p/index.m3u8", "/w/240p/index.m3u8",
        "/w/storyboard/sheet_%04d.jpg", "/w/poster.jpg", "/w/audio/index.m3u8",
    ]  # fmt: skip
    assert args.count("libx264") == 4 and args.count("aac") == 1


@pytest.mark.parametrize(
    "parts, labels, has_audio_output",
    [
        (("renditions",), ["v720p", "v480p", "v360p", "v240p"], False),
        (("storyboard",), ["sb"], False),
        (("poster",), ["poster"], False),
        (("audio",), [], True),
        (("storyboard", "poster"), ["sb", "poster"], False),
    ],
)
def test_only_requested_parts(parts, labels, has_audio_output):
    p = plan()
    args = ffmpeg.build_encode_args("ffmpeg", SRC, p, "/w", parts)
    _, got = ffmpeg.filter_graph(p, parts)
    assert got == labels
    assert ("-filter_complex" in args) == bool(labels)
    assert ("/w/audio/index.m3u8" in args) == has_audio_output


def test_no_audio_output_for_silent_source():
    args = ffmpeg.build_encode_args("ffmpeg", SRC, plan(audio=""), "/w")
    assert "0:a:0" not in args and "-c:a" not in args


def test_rung_keyframes_on_segment_grid():
    p = plan()
    args = ffmpeg.rung_output_args(p.rungs[0], p, "/w")
    assert value_after(args, "-g") == "120"
    assert value_after(args, "-keyint_min") == "120"
    assert value_after(args, "-sc_threshold") == "0"
    assert value_after(args, "-force_key_frames") == "expr:gte(t,n_forced*4)"
    assert value_after(args, "-hls_time") == "4"
    assert value_after(args, "-hls_segment_type") == "fmp4"
    assert value_after(args, "-profile:v") == "high"
    assert value_after(args, "-pix_fmt") == "yuv420p"
    assert value_after(args, "-crf") == "23"
    assert value_after(args, "-maxrate") == "3000000"
    assert value_after(args, "-bufsize") == "6000000"


def test_audio_is_aac_lc_stereo():
    p = plan()
    args = ffmpeg.audio_output_args(p, "/w")
    assert value_after(args, "-c:a") == "aac"
    assert value_after(args, "-profile:a") == "aac_low"
    assert value_after(args, "-ac") == "2"
    assert value_after(args, "-b:a") == "128000"


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, "scale=1280:720:flags=bicubic:out_range=tv,setsar=1,format=yuv420p"),
        ({"fps": 60}, "scale=1280:720:flags=bicubic:out_range=tv,setsar=1,format=yuv420p"),  # 720p keeps 60
        ({"vfr": True}, "fps=30,scale=1280:720:flags=bicubic:out_range=tv,setsar=1,format=yuv420p"),
        ({"fps": Fraction(120)}, "fps=60,scale=1280:720:flags=bicubic:out_range=tv,setsar=1,format=yuv420p"),
    ],
)
def test_top_rung_filter(kw, expected):
    assert ffmpeg.rung_filter(plan(**kw).rungs[0]) == expected


def test_low_rung_halves_60fps():
    assert ffmpeg.rung_filter(plan(fps=60).rungs[-1]).startswith("fps=30,")


def test_hdr_source_is_tonemapped_before_split():
    graph, _ = ffmpeg.filter_graph(plan(hdr=True, color_transfer="smpte2084", bit_depth=10), ffmpeg.ALL_PARTS)
    assert graph.startswith("[0:v:0]zscale=t=linear") and "tonemap=tonemap=hable" in graph.split("split")[0]


def test_storyboard_and_poster_filters():
    p = plan(duration=10.0)
    assert ffmpeg.storyboard_filter(p) == "fps=1000/500,scale=160:90,setsar=1,tile=10x2"
    assert ffmpeg.poster_filter(p) == "fps=2.400000,scale=1280:720,setsar=1,thumbnail=24"


def test_poster_at_chosen_time():
    src = SourceInfo(
        container="mp4", width=1280, height=720, video_codec="h264", fps=Fraction(30), duration=10
    )
    p = plan_encode(src, preset_spec(None), poster_time=3.5)
    assert ffmpeg.poster_filter(p).startswith("select='gte(t\\,3.500)'")


@pytest.mark.parametrize(
    "block, frame, out_time, done",
    [
        ("frame=90\nout_time_us=3000000\nspeed=2.1x\nprogress=continue\n", 90, 3.0, False),
        ("frame=0\nout_time_us=N/A\nprogress=continue\n", 0, 0.0, False),
        ("frame=300\nout_time_us=10000000\nprogress=end\n", 300, 10.0, True),
        ("garbage\n", 0, 0.0, False),
    ],
)
def test_parse_progress(block, frame, out_time, done):
    progress = ffmpeg.parse_progress(block)
    assert (progress.frame, progress.out_time, progress.done) == (frame, out_time, done)


def test_progress_fraction_counts_first_output_frames():
    p = plan(duration=10.0)
    assert ffmpeg.progress_fraction(ffmpeg.Progress(150, 99.0, "", False), p) == pytest.approx(0.5)
    assert ffmpeg.progress_fraction(ffmpeg.Progress(0, 0.0, "", True), p) == 1.0


@pytest.mark.parametrize(
    "stderr, expected",
    [
        ("", "ffmpeg failed without an error message."),
        (
            "foo\nin.mp4: Invalid data found when processing input\n",
            "in.mp4: Invalid data found when processing input",
        ),
        ("a\nlast line\n", "last line"),
        ("[mov] title \x1b[2J\x1b]0;owned\x07 error: bad\n", "[mov] title [2J]0;owned error: bad"),
    ],
)
def test_parse_error(stderr, expected):
    assert ffmpeg.parse_error(stderr) == expected


@pytest.mark.parametrize(
    "avcc, expected",
    [
        (bytes([1, 0x64, 0x00, 0x1F, 0xFF]), "avc1.64001f"),
        (bytes([1, 0x4D, 0x40, 0x28]), "avc1.4d4028"),
        (b"", "avc1.640028"),
    ],
)
def test_avc_codec_string(avcc, expected):
    assert ffmpeg.avc_codec_string(avcc) == expected


ALL = ("renditions", "audio", "storyboard", "poster")


@pytest.mark.parametrize(
    "per_process, parts, expected",
    [
        (None, ALL, [(["720p", "480p", "360p", "240p"], ALL)]),
        (4, ALL, [(["720p", "480p", "360p", "240p"], ALL)]),
        (8, ALL, [(["720p", "480p", "360p", "240p"], ALL)]),
        (
            1,
            ALL,
            [
                (["720p"], ("renditions",)),
                (["480p"], ("renditions",)),
                (["360p"], ("renditions",)),
                (["240p"], ALL),
            ],
        ),  # fmt: skip
        (2, ALL, [(["720p", "480p"], ("renditions",)), (["360p", "240p"], ALL)]),
        (3, ("renditions",), [(["720p", "480p", "360p"], ("renditions",)), (["240p"], ("renditions",))]),
        (1, ("storyboard", "poster"), [(["720p", "480p", "360p", "240p"], ("storyboard", "poster"))]),
    ],
)
def test_encode_passes_split_the_rungs_and_keep_the_rest_for_the_last(per_process, parts, expected):
    passes = ffmpeg.encode_passes(plan(), parts, per_process)
    assert [([r.name for r in p.rungs], pp) for p, pp in passes] == expected


def test_a_rung_encoded_alone_gets_the_same_arguments_as_in_the_whole_ladder():
    """The smaller footprint makes the same files: each rung's output arguments are the same."""
    p = plan()
    whole = ffmpeg.build_encode_args("ffmpeg", SRC, p, "/w")
    alone = [
        ffmpeg.build_encode_args("ffmpeg", SRC, q, "/w", parts)
        for q, parts in ffmpeg.encode_passes(p, ALL, 1)
    ]
    for rung in p.rungs:
        args = ffmpeg.rung_output_args(rung, p, "/w")
        assert any(args == a[i : i + len(args)] for a in alone for i in range(len(a))), rung.name
        assert any(args == whole[i : i + len(args)] for i in range(len(whole))), rung.name
    assert sum(a.count("/w/poster.jpg") + a.count("/w/audio/index.m3u8") for a in alone) == 2
