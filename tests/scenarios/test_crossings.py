"""Where features cross on real videos: a silent video long enough to be chunked, a full-range
motion-JPEG camera file, and a program error (never retried as if it were a network blip)."""

import av
import botocore.exceptions
import pytest
from django.db import IntegrityError, OperationalError
from django.urls import reverse

from tests.support import checks
from tests.support.media import ffmpeg, make_clip
from transcoding import errors, services
from transcoding.encoding import encode
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import outbox, run_recorded
from transcoding.jobs.tasks import process_job
from transcoding.models import ProcessingJob, Rendition, Video

pytestmark = [pytest.mark.django_db]


def request(path, capture) -> Video:
    with capture(execute=True):
        video = video_create(source=path)
        services.video_request_processing(video)
    return video


@pytest.mark.slow
def test_a_silent_video_long_enough_to_be_chunked_ends_ready(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """Screen recordings and drone footage: no audio, and longer than a chunk."""
    settings.TRANSCODING_CHUNK_SECONDS = 8
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 12
    clip = make_clip(tmp_path / "screen.mp4", seconds=20, size="426x240", audio=False)
    video = request(clip, django_capture_on_commit_callbacks)

    outcomes = []
    while outbox:
        with django_capture_on_commit_callbacks(execute=True):
            outcomes.append(process_job(outbox.pop(0)))

    assert outcomes == ["done", "done", "done"]  # the root (chunk 0) and two chunks, first attempts
    video = Video.objects.get(pk=video.pk)
    assert ProcessingJob.objects.filter(video=video).count() == 3
    checks.assert_all_outputs(video, 20.0, ["240p"], audio=False)


@pytest.mark.slow
def test_a_full_range_motion_jpeg_source_gives_limited_range_renditions(
    tmp_path, django_capture_on_commit_callbacks
):
    """An old camera's .mov: motion JPEG, full-range yuvj420p, half black and half white."""
    source = tmp_path / "camera.mov"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=white:size=640x480:rate=30:duration=3",
        "-vf", "drawbox=x=0:y=0:w=320:h=480:c=black:t=fill",
        "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3", str(source),
    )  # fmt: skip
    video = request(source, django_capture_on_commit_callbacks)
    assert run_recorded() == ["done"]
    video = Video.objects.get(pk=video.pk)
    assert video.status == "ready"

    for rendition in video.renditions.filter(kind=Rendition.Kind.VIDEO):
        path = checks.concatenated(rendition)
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.pix_fmt == "yuv420p", rendition.name
                assert stream.codec_context.color_range == 1, rendition.name  # 1: limited ("tv", MPEG)
                plane = next(container.decode(stream)).planes[0]
                data = bytes(plane)
                luma = b"".join(
                    data[row * plane.line_size : row * plane.line_size + plane.width]
                    for row in range(plane.height)
                )
        finally:
            path.unlink()
        assert min(luma) >= 14 and max(luma) <= 237, (
            rendition.name,
            min(luma),
            max(luma),
        )  # 16-235, codec slack
    assert checks.decode_errors(str(checks.stored(video.hls_path))) == ""


def test_a_program_error_fails_at_once_and_is_not_retried(
    monkeypatch, clips, django_capture_on_commit_callbacks
):
    """A bug (here: planning raises KeyError) would fail the same way three times."""

    def broken_plan(*args, **kwargs):
        return {}["rungs"]

    monkeypatch.setattr(encode, "plan_encode", broken_plan)
    video = request(clips["silent"], django_capture_on_commit_callbacks)

    assert run_recorded() == ["failed"]

    job = ProcessingJob.objects.get(video=video)
    assert (job.state, job.attempt) == ("failed", 1)
    assert job.error == "Internal error (not retried): KeyError: 'rungs'"
    video = Video.objects.get(pk=video.pk)
    assert video.status == "failed" and video.error == job.error


def s3_error(code: str, status: int) -> botocore.exceptions.ClientError:
    """A botocore error as S3 raises it."""
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


@pytest.mark.parametrize(
    "exc, transient",
    [
        (errors.SourceRejected("not a video"), False),
        (errors.LimitExceeded("too long"), False),
        (errors.StitchError("gap"), False),
        (errors.EncodeError("invalid data"), False),
        (errors.EncodeError("killed by signal 9", transient=True), True),
        (errors.OutOfMemory("over the limit", rungs_at_once=4), True),  # once more, one rung at a time
        (errors.OutOfMemory("over the limit", rungs_at_once=1), False),  # nothing smaller to try
        (errors.OutOfMemory("over the limit"), False),
        (ValueError("a bug"), False),
        (KeyError("a bug"), False),
        (TypeError("a bug"), False),
        (ConnectionResetError("reset"), True),
        (TimeoutError("timed out"), True),
        (errors.StorageIncomplete("not stored"), True),
        (errors.SourceUnavailable("S3 down"), True),
        (s3_error("SlowDown", 503), True),
        (s3_error("InternalError", 500), True),
        (s3_error("AccessDenied", 403), False),
        (s3_error("NoSuchKey", 404), False),
        (OperationalError("database is locked"), True),
        (IntegrityError("unique"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_transient_or_permanent_by_what_failed(exc, transient):
    assert errors.is_transient(exc) is transient


@pytest.mark.parametrize(
    "exc, footprint",
    [
        (errors.OutOfMemory("oom", rungs_at_once=4), {errors.RUNGS_PER_PROCESS: 1}),
        (errors.OutOfMemory("oom", rungs_at_once=2), {errors.RUNGS_PER_PROCESS: 1}),
        (errors.OutOfMemory("oom", rungs_at_once=1), None),
        (errors.EncodeError("killed by signal 9", transient=True), None),
        (OSError("disk"), None),
    ],
)
def test_only_out_of_memory_is_retried_with_a_smaller_footprint(exc, footprint):
    assert errors.smaller_footprint(exc) == footprint


def test_the_add_form_has_the_private_checkbox(admin_client):
    page = admin_client.get(reverse("admin:transcoding_video_add")).content.decode()
    assert 'name="private"' in page
