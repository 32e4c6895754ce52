"""MP4 downloads in the Video admin: the "Make MP4 downloads" action queues a download job per
video (or says in one line why not), and a video's page lists its downloads."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from transcoding.jobs.dispatch import recording
from transcoding.models import Download, JobState, PartStatus, ProcessingJob, Rendition, Video, VideoStatus

pytestmark = [pytest.mark.django_db]

CHANGELIST = reverse("admin:transcoding_video_changelist")


def make_video(status=VideoStatus.READY) -> Video:
    video = Video.objects.create(title="A video", source="originals/x/source", status=status)
    if status == VideoStatus.READY:
        for name, height in (("720p", 720), ("360p", 360)):
            Rendition.objects.create(video=video, name=name, height=height, status=PartStatus.READY)
        Rendition.objects.create(video=video, name="audio", kind="audio", status=PartStatus.READY)
    return video


def run_action(client, *videos):
    data = {"action": "make_downloads", ACTION_CHECKBOX_NAME: [v.pk for v in videos]}
    response = client.post(CHANGELIST, data, follow=True)
    return [str(m) for m in response.context["messages"]]


def test_the_action_queues_the_highest_rung_and_says_why_a_video_cannot(
    admin_client, django_capture_on_commit_callbacks
):
    ready, uploaded = make_video(), make_video(VideoStatus.UPLOADED)
    with django_capture_on_commit_callbacks(execute=True):
        messages = run_action(admin_client, ready, uploaded)
    job = ProcessingJob.objects.get()
    assert (job.video, job.step, job.options, job.state) == (
        ready,
        "download",
        {"rungs": ["720p"]},
        JobState.QUEUED,
    )
    assert recording.outbox == [job.pk]
    assert Download.objects.get(video=ready).status == PartStatus.QUEUED
    assert messages[0] == "Queued MP4 downloads for 1 video."
    assert (
        messages[1].startswith(f"Not queued: A video: Video {uploaded.pk} is not ready")
        and "\n" not in messages[1]
    )


def test_the_video_page_lists_its_downloads(admin_client):
    video = make_video()
    Download.objects.create(
        video=video, name="720p", path=f"videos/{video.pk}/downloads/720p.mp4", size=2_500_000,
        status=PartStatus.READY,
    )  # fmt: skip
    page = admin_client.get(reverse("admin:transcoding_video_change", args=[video.pk])).content.decode()
    assert "MP4 downloads" in page and "2.4\xa0MB" in page and "tc-downloads" in page
    assert f'href="/videos/{video.pk}/download/720p.mp4?expires=' in page  # unpublished: signed
