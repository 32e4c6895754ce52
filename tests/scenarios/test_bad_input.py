"""Bad input ends `failed` with a one-line reason; the original is kept; others carry on."""

import pytest
from django.core.files.storage import default_storage

from tests.support.media import ffmpeg, make_clip
from transcoding import services
from transcoding.errors import InvalidRequest
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.models import PartStatus, Rendition, Video
from transcoding.selectors import video_status

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("This is a text file renamed to .mp4, not a video.\n" * 20)
    return path


def truncated_mp4(tmp_path):
    """An ordinary MP4 (index at the end) cut in half: the index is gone."""
    whole = make_clip(tmp_path / "whole.mp4", seconds=4, size="320x240")
    data = whole.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_faststart_mp4(tmp_path):
    """Index at the front, media cut short: it probes fine but only part of it decodes."""
    whole = make_clip(tmp_path / "whole-fs.mp4", seconds=8, size="320x240", extra=("-movflags", "+faststart"))
    data = whole.read_bytes()
    path = tmp_path / "truncated-faststart.mp4"
    path.write_bytes(data[: len(data) // 3])
    return path


def zero_bytes(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def audio_only(tmp_path):
    path = tmp_path / "song.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(path))
    return path


def absurd_dimensions(tmp_path):
    path = tmp_path / "huge.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:size=9000x64:rate=1:duration=1", "-c:v", "ffv1", str(path))
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (text_file, "The file is not a video or is truncated: FFmpeg cannot read its container."),
        (truncated_mp4, "The file is not a video or is truncated: FFmpeg cannot read its container."),
        (truncated_faststart_mp4, "The file is truncated or damaged: only"),
        (zero_bytes, "The file is empty (0 bytes)."),
        (audio_only, "The file has no video stream (it is audio only)."),
        (absurd_dimensions, "The video is 9000x64, beyond the 8K limit (7680x4320)."),
    ],
    ids=[
        "text-renamed-mp4",
        "truncated-mp4",
        "truncated-faststart-mp4",
        "zero-bytes",
        "audio-only",
        "beyond-8k",
    ],
)
def test_bad_input_fails_with_reason_and_keeps_original(
    make, reason, tmp_path, clips, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        bad = video_create(source=make(tmp_path))
        services.video_request_processing(bad)
        good = video_create(source=clips["silent"])
        services.video_request_processing(good)

    # The bad one is first in the queue; the good one is processed after it all the same.
    assert run_recorded() == ["failed", "done"]

    bad = Video.objects.get(pk=bad.pk)
    assert bad.status == "failed"
    assert bad.error.startswith(reason)
    assert "\n" not in bad.error and len(bad.error) < 200
    api = video_status(bad)
    assert (api["status"], api["error"], api["playable"]) == ("failed", bad.error, False)
    job = bad.jobs.get()
    assert job.state == "failed" and job.attempt == 1  # permanent: not retried
    assert default_storage.exists(bad.source.name)  # the original is kept
    for part in [*Rendition.objects.filter(video=bad), bad.storyboard, bad.poster]:
        assert part.status in (PartStatus.FAILED, PartStatus.SKIPPED)

    assert Video.objects.get(pk=good.pk).status == "ready"


def test_missing_source_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidRequest, match="No such file"):
        video_create(source=tmp_path / "nope.mp4")
