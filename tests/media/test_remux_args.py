"""The download's remux command (`ffmpeg.build_remux_args`): table-driven, no ffmpeg run. Only
the two local track files are inputs, each through the forced `mov` demuxer over `file`;
packets are copied; the index goes first; both tracks move back by the timeline offset."""

import pytest

from transcoding.media import ffmpeg
from transcoding.media.chunking import TIMELINE_OFFSET
from transcoding.media.containers import FORMAT_WHITELIST, source_input

VIDEO = source_input("/w/video.mp4", ffmpeg.TRACK_CONTAINER)
AUDIO = source_input("/w/audio.mp4", ffmpeg.TRACK_CONTAINER)


def inputs(args: list[str]) -> list[list[str]]:
    """The options of each input, from the previous input (or -copyts) to its -i and path."""
    found, start = [], args.index("-copyts") + 1
    for at, arg in enumerate(args):
        if arg == "-i":
            found.append(args[start : at + 2])
            start = at + 2
    return found


def after(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


@pytest.mark.parametrize(
    "audio, offset, maps, locations",
    [
        (AUDIO, TIMELINE_OFFSET, ["0:v:0", "1:a:0"], ["file:/w/video.mp4", "file:/w/audio.mp4"]),
        (None, TIMELINE_OFFSET, ["0:v:0"], ["file:/w/video.mp4"]),
        (AUDIO, 0, ["0:v:0", "1:a:0"], ["file:/w/video.mp4", "file:/w/audio.mp4"]),
        (AUDIO, 2.5, ["0:v:0", "1:a:0"], ["file:/w/video.mp4", "file:/w/audio.mp4"]),
    ],
)
def test_remux_copies_the_tracks_into_one_faststart_mp4(audio, offset, maps, locations):
    args = ffmpeg.build_remux_args("ffmpeg", VIDEO, audio, "/w/out.mp4", offset=offset)
    assert args[0] == "ffmpeg" and args[-1] == "/w/out.mp4"
    assert after(args, "-map") == maps
    assert after(args, "-c") == ["copy"] and not {"-c:v", "-c:a", "-vf", "-filter_complex"} & set(args)
    assert after(args, "-movflags") == ["+faststart"]
    assert after(args, "-f")[-1] == "mp4"
    assert "-copyts" in args
    tracks = inputs(args)
    assert [t[-1] for t in tracks] == locations
    for track in tracks:
        assert after(track, "-itsoffset") == [f"{-offset:g}"]
        assert after(track, "-protocol_whitelist") == ["file"]
        assert after(track, "-format_whitelist") == [FORMAT_WHITELIST]
        assert after(track, "-f") == ["mov"]
        assert after(track, "-enable_drefs") == ["0"] and after(track, "-use_absolute_path") == ["0"]
    assert not any("concat" in a or a.endswith((".m3u8", ".txt", ".mpd")) for a in args)


@pytest.mark.parametrize(
    "track, message",
    [
        (source_input("/w/video.mp4"), "demuxer the probe found"),  # never a guessed demuxer
    ],
)
def test_an_unforced_track_is_refused(track, message):
    with pytest.raises(ValueError, match=message):
        ffmpeg.build_remux_args("ffmpeg", track, None, "/w/out.mp4")
