"""End to end with real ffmpeg: upload, one encode job, stored outputs checked as a player
would read them."""

import pytest

from tests.support import checks
from tests.support.media import ffmpeg, make_clip
from transcoding import services
from transcoding.encoding.encode import encode
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import outbox, run_recorded
from transcoding.models import PartStatus, Rendition, Video
from transcoding.status import jobs

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def process(path, **kw) -> Video:
    video = video_create(source=path, **kw)
    services.video_request_processing(video)
    return video


def run(video) -> Video:
    assert run_recorded() == ["done"]
    return Video.objects.get(pk=video.pk)


def test_generated_clip(clips, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = process(clips["720p"], title="Test pattern")
    assert len(outbox) == 1  # dispatched once, after commit
    video = run(video)
    checks.assert_all_outputs(video, 6.0, ["720p", "480p", "360p", "240p"], audio=True)
    assert video.source_sha256 and len(video.source_sha256) == 64
    assert (video.width, video.height, video.fps) == (1280, 720, 30.0)
    job = video.jobs.get()
    assert job.state == "done" and job.attempt == 1 and job.cpu_seconds > 0
    top = video.renditions.get(name="720p")
    assert top.bytes_written > 0 and top.cpu_seconds > 0 and top.average_bitrate > 0
    assert top.peak_bitrate >= top.average_bitrate and top.codec.startswith("avc1.64")


def test_real_footage_big_buck_bunny(bunny, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = process(bunny)
    video = run(video)
    # The clip is 1280x720 with audio, about 5.3 s long.
    checks.assert_all_outputs(video, video.duration, ["720p", "480p", "360p", "240p"], audio=True)
    assert 5.0 <= video.duration <= 5.4


def test_source_without_audio_gives_video_only_output(clips, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = process(clips["silent"])
    video = run(video)
    checks.assert_all_outputs(video, 5.0, ["360p", "240p"], audio=False)
    assert video.renditions.get(kind=Rendition.Kind.AUDIO).error == "The source has no audio."


def test_rotated_phone_video_becomes_portrait(tmp_path, django_capture_on_commit_callbacks):
    source = make_clip(tmp_path / "landscape.mp4", seconds=3, size="640x360")
    rotated = tmp_path / "phone.mp4"

    ffmpeg("-display_rotation", "90", "-i", str(source), "-c", "copy", str(rotated))
    with django_capture_on_commit_callbacks(execute=True):
        video = process(rotated, poster_time=1.0)
    video = run(video)
    assert (video.width, video.height) == (360, 640)
    assert [(r.name, r.width, r.height) for r in video.renditions.filter(kind="video")] == [
        ("360p", 360, 640),
        ("240p", 240, 426),
    ]
    assert (video.poster.width, video.poster.height, video.poster.time) == (360, 640, 1.0)
    checks.assert_storyboard(video)
    assert checks.decode_errors(str(checks.stored(video.hls_path))) == ""


def test_hdr_10bit_source_is_tonemapped_to_8bit(tmp_path, django_capture_on_commit_callbacks):
    hdr = make_clip(
        tmp_path / "hdr.mp4",
        seconds=2,
        size="640x360",
        audio=False,
        codec=(
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x264-params",
            "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
        ),
    )
    with django_capture_on_commit_callbacks(execute=True):
        video = process(hdr)
    video = run(video)
    assert video.status == "ready", video.error
    assert video.probe["hdr"] is True and video.probe["bit_depth"] == 10
    path = checks.concatenated(video.renditions.get(name="360p"))
    import av

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    path.unlink()


def test_60fps_source_keeps_60_on_720p_and_halves_below(tmp_path, django_capture_on_commit_callbacks):
    source = make_clip(tmp_path / "sixty.mp4", seconds=2, rate="60", audio=False)
    with django_capture_on_commit_callbacks(execute=True):
        video = process(source)
    video = run(video)
    assert {r.name: r.fps for r in video.renditions.filter(kind="video")} == {
        "720p": 60.0, "480p": 30.0, "360p": 30.0, "240p": 30.0,
    }  # fmt: skip
    checks.assert_keyframes_on_grid(video, 4.0)


def test_reprocess_only_storyboard_leaves_renditions(clips, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = process(clips["silent"])
    video = run(video)
    before = {r.pk: (r.finished_at, r.bytes_written) for r in video.renditions.all()}
    with django_capture_on_commit_callbacks(execute=True):
        job = services.video_request_processing(video, parts=["storyboard"])
    assert job.parts == ["storyboard"]
    video = run(video)
    assert video.status == "ready" and video.storyboard.attempts == 2
    assert {r.pk: (r.finished_at, r.bytes_written) for r in video.renditions.all()} == before
    assert video.storyboard.status == PartStatus.READY


def test_duplicate_delivery_does_no_second_encode(clips, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = process(clips["silent"])
    job_id = outbox[0]
    outbox.append(job_id)  # at-least-once: the same job delivered twice
    assert run_recorded() == ["done", "skipped"]
    video = Video.objects.get(pk=video.pk)
    assert video.jobs.get().attempt == 1
    assert video.renditions.get(name="360p").attempts == 1


def test_progress_and_heartbeats_while_ffmpeg_holds_its_report(tmp_path, settings):
    """ffmpeg prints no -progress until the poster and storyboard outputs start (near the end);
    progress and heartbeats must flow all the same."""

    settings.TRANSCODING_PROGRESS_INTERVAL = 0.2
    source = make_clip(tmp_path / "ten.mp4", seconds=10, size="1280x720", audio=False)
    video = video_create(source=source)
    job = jobs.job_claim(services.video_request_processing(video).pk, "test")
    seen = []

    def heartbeat():
        seen.append(Video.objects.get(pk=video.pk).progress)

    encode(job, heartbeat)
    assert len(seen) >= 3
    assert any(0 < p < 90 for p in seen), seen
    assert seen == sorted(seen)  # never goes backwards


def test_worker_disk_and_memory_do_not_grow_with_length(tmp_path, django_capture_on_commit_callbacks):
    """Finished segments are stored and deleted while ffmpeg runs: a 12x longer low-resolution
    source needs about the same local disk and ffmpeg memory as a short one."""
    peaks = {}
    for name, seconds in (("short", 10), ("long", 120)):
        source = make_clip(tmp_path / f"{name}.mp4", seconds=seconds, size="320x180", rate="25")
        with django_capture_on_commit_callbacks(execute=True):
            video = process(source)
        video = run(video)
        job = video.jobs.get()
        stored = sum(r.bytes_written for r in video.renditions.all())
        peaks[name] = (job.peak_temp_bytes, job.peak_rss_bytes, stored)
    print("peaks (temp bytes, ffmpeg rss, stored bytes):", peaks)
    (short_disk, short_rss, short_stored), (long_disk, long_rss, long_stored) = peaks["short"], peaks["long"]
    assert long_stored > 8 * short_stored  # the long one really wrote much more...
    assert long_disk <= 2 * short_disk + 512 * 1024  # ...but never held much more on local disk
    assert long_disk < long_stored / 4
    assert long_rss <= 1.3 * short_rss  # and ffmpeg's memory stayed flat
