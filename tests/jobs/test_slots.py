"""Bounded fan-out: the caps on encode jobs in flight, per video and in the deployment
(`status.slots`). The rule is a pure function (table-driven); the claim enforces it, a job's
end hands its slot on, the watchdog releases what a lost hand-over left held."""

from datetime import timedelta

import pytest
from django.utils import timezone

from transcoding.encoding.fanout import dispatch_released
from transcoding.jobs.dispatch.recording import outbox
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, ProcessingJob, Video
from transcoding.status import jobs, slots


@pytest.mark.parametrize(
    ("candidates", "running", "per_video", "total", "chosen"),
    [
        # no caps: everything
        ([(1, 10), (2, 10), (3, 11)], {}, 0, 0, [1, 2, 3]),
        # per video: video 10 has 1 running, cap 2 -> one more of it; video 11 free
        ([(1, 10), (2, 10), (3, 11)], {10: 1}, 2, 0, [1, 3]),
        # deployment: 3 running in all, cap 4 -> one more, the first in order
        ([(1, 10), (2, 11)], {10: 2, 12: 1}, 0, 4, [1]),
        # deployment full: nothing
        ([(1, 10)], {12: 4}, 0, 4, []),
        # both: a video at its cap is skipped, the next one fills the last slot
        ([(1, 10), (2, 10), (3, 11), (4, 11)], {10: 2}, 2, 3, [3]),
        # candidates count against the caps as they are chosen
        ([(1, 10), (2, 10), (3, 10)], {}, 2, 0, [1, 2]),
        ([], {10: 1}, 1, 1, []),
    ],
)
def test_fit(candidates, running, per_video, total, chosen):
    assert slots.fit(candidates, running, per_video=per_video, total=total) == chosen


def make_video() -> Video:
    return Video.objects.create(title="capped", source="originals/x/source")


def _chunks(video, count: int) -> list[ProcessingJob]:
    """A root encode and its chunk jobs, as the fan-out makes them (no ffmpeg here)."""
    root = ProcessingJob.objects.create(video=video, chunk=0, parts=["renditions"])
    return [root] + [
        ProcessingJob.objects.create(video=video, parent=root, chunk=i, parts=["renditions"])
        for i in range(1, count)
    ]


def _claim(job: ProcessingJob):
    try:
        return jobs.job_claim(job.pk)
    except jobs.JobHeld:
        return "held"


@pytest.mark.django_db
def test_the_claim_holds_an_encode_past_the_per_video_cap(settings):
    settings.TRANSCODING_MAX_CHUNKS_IN_FLIGHT, settings.TRANSCODING_MAX_ENCODES_IN_FLIGHT = 2, 0
    a, b = make_video(), make_video()
    first = _chunks(a, 4)
    other = _chunks(b, 1)
    claimed = [_claim(j) for j in first]
    assert [c if c == "held" else c.chunk for c in claimed] == [0, 1, "held", "held"]
    assert jobs.job_claim(other[0].pk) is not None  # another video has its own slots
    rows = {j.chunk: (j.state, j.held, j.attempt) for j in ProcessingJob.objects.filter(video=a)}
    assert rows == {
        0: (JobState.RUNNING, False, 1),
        1: (JobState.RUNNING, False, 1),
        2: (JobState.QUEUED, True, 0),  # no attempt used
        3: (JobState.QUEUED, True, 0),
    }


@pytest.mark.django_db
def test_a_finished_encode_hands_its_slot_to_the_oldest_held_chunk(settings):
    settings.TRANSCODING_MAX_CHUNKS_IN_FLIGHT, settings.TRANSCODING_MAX_ENCODES_IN_FLIGHT = 0, 2
    video = make_video()
    root, one, two, three = _chunks(video, 4)
    running = [jobs.job_claim(root.pk), jobs.job_claim(one.pk)]
    assert _claim(two) == _claim(three) == "held"
    outbox.clear()
    assert jobs.job_finish(running[0])
    assert dispatch_released() == [two.pk]  # one slot free: chunk 2, not chunk 3
    assert ProcessingJob.objects.get(pk=two.pk).held is False
    assert jobs.job_claim(two.pk) is not None
    assert _claim(three) == "held"


@pytest.mark.django_db
def test_the_watchdog_releases_held_jobs_into_free_slots_but_no_more(
    settings, django_capture_on_commit_callbacks
):
    """A hand-over lost with its worker: the watchdog releases what fits, and never dispatches
    a held job as a lost delivery (that would only be held again, every minute)."""
    settings.TRANSCODING_MAX_CHUNKS_IN_FLIGHT, settings.TRANSCODING_MAX_ENCODES_IN_FLIGHT = 0, 1
    settings.TRANSCODING_DISPATCH = "recording"
    video = make_video()
    root, one, two = _chunks(video, 3)
    ProcessingJob.objects.filter(pk__in=[one.pk, two.pk]).update(
        held=True, created_at=timezone.now() - timedelta(hours=1)
    )
    running = jobs.job_claim(root.pk)
    outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        requeued, failed, due = jobs_recover_stuck()
    assert (requeued, failed, due, outbox) == ([], [], [], [])  # the one slot is taken
    jobs.job_finish(running)
    with django_capture_on_commit_callbacks(execute=True):
        jobs_recover_stuck()
    assert outbox == [one.pk]
    assert list(ProcessingJob.objects.filter(held=True).values_list("pk", flat=True)) == [two.pk]


@pytest.mark.django_db
def test_other_steps_are_not_capped(settings):
    settings.TRANSCODING_MAX_CHUNKS_IN_FLIGHT, settings.TRANSCODING_MAX_ENCODES_IN_FLIGHT = 1, 1
    video = make_video()
    (root,) = _chunks(video, 1)
    jobs.job_claim(root.pk)
    subtitles = ProcessingJob.objects.create(video=video, step=ProcessingJob.Step.SUBTITLES)
    assert jobs.job_claim(subtitles.pk) is not None
