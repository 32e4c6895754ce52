"""Resource bombs: small files that claim hours of work or huge frames, and ffmpeg processes
that run too long or grow too large. Each limit (conf.py, SECURITY.md) fails the video fast,
with one line that names it, at the first attempt, before any chunk job exists."""

import struct
from fractions import Fraction

import pytest

from tests.support.media import ffmpeg, make_clip
from transcoding import services
from transcoding.conf import ffmpeg_binary
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.media.ffmpeg_process import peak_resident_bytes, run_ffmpeg
from transcoding.media.ladder import SourceInfo
from transcoding.media.probe import SourceLimits, Timestamps, validate_source, validate_timestamps
from transcoding.models import ProcessingJob, Video

pytestmark = [pytest.mark.django_db]


def timestamp_bomb(path, last_frame_at: float):
    """60 frames of 320x240, then one frame stamped `last_frame_at` seconds in (Matroska keeps
    the timestamps as given): a few KB that claim that long."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2.04",
        "-vf", f"setpts='if(eq(N,60),{last_frame_at}/TB,PTS)'", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", str(path),
    )  # fmt: skip
    return path


def lying_header(path, every: float = 50.0, sparse: int = 1000) -> float:
    """60 frames, then one every `every` seconds (each gap inside the gap limit), with the
    Matroska header's Duration rewritten to say 10 s. Returns the real last frame's time."""
    frames = 60 + sparse
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:duration={frames / 30:.4f}",
        "-vf", f"setpts='if(lt(N,60),N/30,2+(N-59)*{every})/TB'", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", str(path),
    )  # fmt: skip
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # EBML Duration, an 8-byte float in milliseconds
    data[at + 3 : at + 11] = struct.pack(">d", 10_000.0)
    path.write_bytes(bytes(data))
    return 2 + sparse * every


def growing_frames(path, tmp_path, big: int = 12000):
    """Motion JPEG: 60 frames of 320x240 (what the probe reads), then three of big x big."""
    frames = tmp_path / "frames"
    frames.mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-frames:v", "60", "-c:v", "mjpeg",
           "-q:v", "5", str(frames / "f%04d.jpg"))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", f"color=c=gray:size={big}x{big}", "-frames:v", "1", "-c:v", "mjpeg",
           "-pix_fmt", "yuvj420p", str(tmp_path / "big.jpg"))  # fmt: skip
    for n in range(61, 64):
        (frames / f"f{n:04d}.jpg").write_bytes((tmp_path / "big.jpg").read_bytes())
    ffmpeg("-framerate", "30", "-i", str(frames / "f%04d.jpg"), "-c:v", "copy", str(path))
    return path


def aspect_ratio_bomb(path):
    """4000x2000 coded, with pixels 100 times wider than tall: 400000x2000 as displayed."""
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=gray:size=4000x2000:rate=5:duration=0.4", "-vf", "setsar=100",
        "-c:v", "libx264", "-preset", "ultrafast", str(path),
    )  # fmt: skip
    return path


def process(path, capture) -> Video:
    with capture(execute=True):
        video = video_create(source=path)
        services.video_request_processing(video)
    return video


def assert_refused(video: Video, reason: str) -> Video:
    video = Video.objects.get(pk=video.pk)
    assert video.status == "failed", (video.status, video.error)
    assert video.error.startswith(reason), video.error
    assert "\n" not in video.error and len(video.error) < 240
    jobs = ProcessingJob.objects.filter(video=video)
    assert jobs.count() == 1  # no chunk job was created
    assert jobs.get().state == "failed" and jobs.get().attempt == 1  # and nothing retried
    return video


def test_a_frame_stamped_hours_ahead_is_refused_by_the_duration_limit(
    tmp_path, django_capture_on_commit_callbacks
):
    bomb = timestamp_bomb(tmp_path / "bomb.mkv", 100_000)
    assert bomb.stat().st_size < 300_000
    video = process(bomb, django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(video, "The video is 27 h 46 min long, beyond the 12 h 00 min limit.")


def test_a_gap_between_frames_is_refused(tmp_path, django_capture_on_commit_callbacks):
    """Within the duration limit, but 50 minutes of it are one frame repeated."""
    video = process(timestamp_bomb(tmp_path / "gap.mkv", 3000), django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(video, "The video's timestamps jump 2998 s ahead after 2.0 s (a gap between frames")


def test_a_header_that_understates_the_duration_is_not_believed(tmp_path, django_capture_on_commit_callbacks):
    """The header says 10 s; the frames run to 50002 s, no two of them further apart than the
    gap limit allows: the duration is the last frame's, and the limit refuses it."""
    bomb = tmp_path / "short-claim.mkv"
    assert lying_header(bomb) > 12 * 3600
    video = process(bomb, django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(video, "The video is 13 h 53 min long, beyond the 12 h 00 min limit.")


def test_frames_that_grow_after_the_probe_are_refused(tmp_path, django_capture_on_commit_callbacks):
    video = process(growing_frames(tmp_path / "growing.mkv", tmp_path), django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(video, "A frame of the video is larger than the size limit")  # refused, never allocated


def test_stretched_pixels_are_held_to_the_size_limit_as_displayed(
    tmp_path, django_capture_on_commit_callbacks
):
    video = process(aspect_ratio_bomb(tmp_path / "wide.mp4"), django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(
        video,
        "The video is 400000x2000 as displayed (pixel aspect ratio 100:1), beyond the 8K limit (7680x4320).",
    )


def test_too_many_chunk_jobs_are_refused_before_any_is_created(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_CHUNK_SECONDS = 8
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 12
    settings.TRANSCODING_MAX_CHUNKS = 2
    clip = make_clip(tmp_path / "long.mp4", seconds=24, size="320x240", audio=False)
    video = process(clip, django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(video, "The video would need 3 chunk jobs, beyond the 2 limit (TRANSCODING_MAX_CHUNKS).")


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting, value, reason",
    [
        ("TRANSCODING_FFMPEG_TIMEOUT_SECONDS", 0.3, "ffmpeg ran longer than the 0.3 s limit"),
        # Memory: retried once with a smaller footprint (tests/scenarios/test_out_of_memory.py).
    ],
    ids=["wall-time"],
)
def test_an_ffmpeg_process_over_its_limit_is_stopped_and_not_retried(
    setting, value, reason, settings, clips, django_capture_on_commit_callbacks
):
    setattr(settings, setting, value)
    video = process(clips["720p"], django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    assert_refused(video, reason)


# --- the rules, table-driven ---------------------------------------------------------------------


def source(**kw) -> SourceInfo:
    fields = dict(
        container="mov", duration=60.0, width=1920, height=1080, video_codec="h264", fps=Fraction(30)
    )
    return SourceInfo(**{**fields, **kw})


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({}, None),
        ({"width": 7680, "height": 4320}, None),
        ({"width": 4320, "height": 7680}, None),  # portrait 8K
        ({"width": 7681, "height": 1000}, "The video is 7681x1000, beyond the 8K limit"),
        ({"width": 1920, "height": 1080, "sar": Fraction(5)}, "The video is 9600x1080 as displayed"),
        ({"width": 1440, "height": 1080, "sar": Fraction(4, 3)}, None),  # HDV: 1920x1080 as displayed
        ({"width": 4000, "height": 2000, "sar": Fraction(100)}, "The video is 400000x2000 as displayed"),
        ({"width": 4000, "height": 4000, "sar": Fraction(1, 2)}, None),  # 2000x4000: portrait, inside
        ({"duration": 12 * 3600.0}, None),
        ({"duration": 12 * 3600.0 + 1}, "The video is 12 h 00 min long, beyond the 12 h 00 min limit."),
        ({"fps": Fraction(1000)}, None),
        ({"fps": Fraction(90000)}, "The video's frame rate (90000 fps) is beyond the 1000 fps limit."),
    ],
)
def test_validate_source(kw, reason):
    if reason is None:
        validate_source(source(**kw))
    else:
        with pytest.raises(Exception, match=reason.replace("(", r"\(").replace(")", r"\)")):
            validate_source(source(**kw))


@pytest.mark.parametrize(
    "limits, gap, refused",
    [(SourceLimits(), 60.0, False), (SourceLimits(), 60.5, True), (SourceLimits(max_gap=5), 6, True)],
)
def test_validate_timestamps(limits, gap, refused):
    seen = Timestamps(largest_gap=gap, gap_at=1.0)
    if refused:
        with pytest.raises(Exception, match="a gap between frames"):
            validate_timestamps(seen, limits)
    else:
        validate_timestamps(seen, limits)


def test_ffmpeg_peak_memory_is_its_own_not_the_worker_that_started_it():
    """wait4's ru_maxrss of a forked child includes the parent's RSS from before exec; the
    runner reports ffmpeg's own high-water mark, so a small encode is far below this process."""
    args = [
        ffmpeg_binary(), "-hide_banner", "-nostdin",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=1",  # 1 s: sampled
        "-c:v", "libx264", "-preset", "ultrafast", "-f", "null", "-",
        "-progress", "pipe:1", "-stats_period", "0.1",
    ]  # fmt: skip
    ballast = bytearray(300 * 1024 * 1024)  # this process: at least 300 MiB resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1

    run = run_ffmpeg(args, lambda _progress: None)

    assert 0 < run.peak_rss_bytes < 200 * 1024 * 1024
    assert peak_resident_bytes() > 300 * 1024 * 1024
