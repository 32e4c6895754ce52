"""`status_changed`: every transition of a video, a subtitle track and a job is observable once
it commits, in order, and a rolled-back change is never announced (webhooks will hang on it)."""

import pytest
from django.db import transaction

from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.models import ProcessingJob, Video
from transcoding.status import videos
from transcoding.status.events import status_changed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_preset")]


@pytest.fixture
def announced():
    seen = []

    def record(sender, pk, video_id, field, old, new, **kwargs):
        seen.append((sender.__name__, field, old, new))

    status_changed.connect(record)
    yield seen
    status_changed.disconnect(record)


@pytest.mark.slow
def test_one_encode_announces_each_transition_once_in_order(
    announced, clips, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["silent"])
        services.video_request_processing(video)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_recorded() == ["done"]

    of_video = [(field, old, new) for sender, field, old, new in announced if sender == "Video"]
    of_job = [(old, new) for sender, field, old, new in announced if sender == "ProcessingJob"]
    assert of_video == [
        ("status", "uploaded", "queued"),
        ("status", "queued", "processing"),
        ("playable", False, True),
        ("status", "processing", "ready"),
    ]
    assert of_job == [("queued", "running"), ("running", "done")]


def test_a_job_failing_for_good_is_announced_with_the_video(
    announced, tmp_path, django_capture_on_commit_callbacks
):
    notes = tmp_path / "notes.mp4"
    notes.write_text("These are meeting notes, not a video.\n" * 20)
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=notes)
        services.video_request_processing(video)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_recorded() == ["failed"]

    assert [a[2:] for a in announced if a[0] == "ProcessingJob"] == [
        ("queued", "running"),
        ("running", "failed"),
    ]
    assert [a[2:] for a in announced if a[0] == "Video"][-1][1] == "failed"
    assert Video.objects.get(pk=video.pk).status == "failed"


def test_a_change_rolled_back_is_never_announced(announced, clips, django_capture_on_commit_callbacks):
    video = video_create(source=clips["silent"])
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        services.video_request_processing(video)
        raise RuntimeError("the request failed after queueing")

    assert announced == []
    assert not ProcessingJob.objects.filter(video=video).exists()


def test_writing_the_same_status_again_announces_nothing(
    announced, clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["silent"])
    with django_capture_on_commit_callbacks(execute=True):
        videos.video_refresh_status(video)
        videos.video_refresh_status(video)

    assert [a for a in announced if a[0] == "Video"] == []
