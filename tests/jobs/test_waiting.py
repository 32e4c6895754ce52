"""A step may ask to be run again later (`errors.WaitUntil`: an outside service works for it):
the job goes back to the queue, due then, without using an attempt, its parts as they were;
and each backend delivers it again when it is due: Celery with an eta, the local worker when
it is claimable, Lambda through the watchdog (`jobs_due_unclaimed_ids`)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from transcoding.errors import WaitUntil
from transcoding.ingest.create import video_create
from transcoding.jobs import runner, tasks
from transcoding.jobs.dispatch import celery as celery_backend
from transcoding.jobs.dispatch import local
from transcoding.jobs.dispatch.recording import outbox
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, ProcessingJob
from transcoding.status import jobs

NOTE = "Waiting for the service's job 42 (IN_PROGRESS)."


class WaitsThenFinishes:
    """A step whose outside work needs `waits` more looks: each look but the last asks to be
    run again in `seconds`."""

    def __init__(self, waits: int, seconds: float = 60.0):
        self.waits, self.seconds, self.runs = waits, seconds, 0

    def __call__(self, job, heartbeat):
        self.runs += 1
        if self.runs <= self.waits:
            raise WaitUntil(self.seconds, NOTE)
        return 1.5


@pytest.fixture
def job(tmp_path):
    source = tmp_path / "upload.bin"
    source.write_bytes(b"not needed: the step is the test's")
    video = video_create(source=source)
    return ProcessingJob.objects.create(video=video, step=ProcessingJob.Step.SUBTITLES, max_attempts=2)


def due_now(job):
    """The clock passes the job's next look."""
    ProcessingJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db
def test_a_waiting_job_is_queued_for_later_without_using_an_attempt(job, monkeypatch):
    monkeypatch.setattr(runner, "run_step", WaitsThenFinishes(waits=1))

    assert runner.job_run(job.pk) == "waiting"

    job.refresh_from_db()
    assert (job.state, job.attempt, job.error, job.lease_expires_at) == (JobState.QUEUED, 0, "", None)
    assert job.next_attempt_at > timezone.now() + timedelta(seconds=30) and job.log_tail == NOTE
    assert not ProcessingJob.objects.claimable().filter(pk=job.pk).exists()
    assert not ProcessingJob.objects.stuck().exists()
    assert job.pk not in jobs.jobs_due_unclaimed_ids(grace_seconds=0)
    assert runner.job_run(job.pk) == "skipped"  # an early delivery does nothing

    due_now(job)
    assert ProcessingJob.objects.claimable().filter(pk=job.pk).exists()
    assert jobs.jobs_due_unclaimed_ids(grace_seconds=0) == [job.pk]
    assert runner.job_run(job.pk) == "done"
    job.refresh_from_db()
    assert (job.state, job.attempt, job.cpu_seconds) == (JobState.DONE, 1, 1.5)


@pytest.mark.django_db
def test_any_number_of_waits_never_fails_a_job(job, monkeypatch):
    monkeypatch.setattr(runner, "run_step", WaitsThenFinishes(waits=5))
    outcomes = []
    for _ in range(6):
        due_now(job)
        outcomes.append(runner.job_run(job.pk))
    assert outcomes == ["waiting"] * 5 + ["done"]
    job.refresh_from_db()
    assert (job.state, job.attempt) == (JobState.DONE, 1)  # max_attempts is 2


@pytest.mark.django_db
def test_a_job_cancelled_while_its_step_ran_is_not_put_back_in_the_queue(job, monkeypatch):
    def cancelled_then_waits(claimed, heartbeat):
        jobs.jobs_cancel(claimed.video_id, "Cancelled by staff.")
        raise WaitUntil(60, NOTE)

    monkeypatch.setattr(runner, "run_step", cancelled_then_waits)
    assert runner.job_run(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED


@pytest.mark.django_db
def test_the_recorded_result_is_there_for_the_next_run_and_only_while_the_job_is_ours(job):
    claimed = jobs.job_claim(job.pk, "a")
    jobs.job_record_result(claimed, speech={"name": "video1-job1"})
    jobs.job_wait(claimed, timezone.now(), NOTE)
    again = jobs.job_claim(job.pk, "b")
    assert again.result == {"speech": {"name": "video1-job1"}} and again.attempt == 1
    with pytest.raises(jobs.JobCancelled):
        jobs.job_record_result(claimed, speech={})  # the first worker's lease is over


# --- each backend delivers it again when it is due ------------------------------------------------


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr(
        celery_backend.process_job, "apply_async", lambda args, **options: messages.append((args, options))
    )
    return messages


@pytest.mark.django_db
def test_celery_sends_a_waiting_job_again_at_its_next_look(job, monkeypatch, sent):
    monkeypatch.setattr(runner, "run_step", WaitsThenFinishes(waits=1))
    assert celery_backend.process_job(job.pk) == "waiting"
    next_look = ProcessingJob.objects.get(pk=job.pk).next_attempt_at
    assert sent == [((job.pk,), {"eta": next_look})]

    # A message arriving early (a clock ahead of the database's) is sent on, not dropped.
    assert celery_backend.process_job(job.pk) == "skipped"
    assert sent[1:] == [((job.pk,), {"eta": next_look})]


@pytest.mark.django_db
def test_the_watchdog_dispatches_a_waiting_job_once_it_is_due(job, monkeypatch, settings):
    """Lambda has no delayed delivery: the every-minute watchdog sends it when due."""
    settings.TRANSCODING_REDISPATCH_GRACE_SECONDS = 0
    monkeypatch.setattr(runner, "run_step", WaitsThenFinishes(waits=1))
    assert tasks.process_job(job.pk) == "waiting"

    outbox.clear()
    assert jobs_recover_stuck() == ([], [], [])  # not yet due; and not stuck
    due_now(job)
    assert jobs_recover_stuck() == ([], [], [job.pk])  # requeued, failed, dispatched again


@pytest.mark.django_db(transaction=True)
def test_a_local_worker_started_on_demand_stays_for_a_waiting_job(job, monkeypatch):
    """Started on demand, the worker leaves when idle; not while a job waits for its next
    look, which nothing else would deliver."""
    step = WaitsThenFinishes(waits=1, seconds=0.3)
    monkeypatch.setattr(runner, "run_step", step)
    assert local.run_worker(idle_exit=0, poll=0.05)
    job.refresh_from_db()
    assert (job.state, step.runs) == (JobState.DONE, 2)
