"""Leases and the local worker: a job is claimed once, and a worker killed with SIGKILL
mid-encode leaves a job that becomes claimable again when its lease expires."""

import os
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from tests.support import checks
from tests.support.media import make_clip
from tests.support.processes import ffmpeg_processes_with, start_worker, wait_for, worker_env
from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs import runner
from transcoding.models import JobState, ProcessingJob, Video
from transcoding.status import jobs, videos

ROOT = Path(__file__).resolve().parents[2]


def make_job(video, **fields):
    return ProcessingJob.objects.create(video=video, parts=["renditions"], **fields)


@pytest.fixture
def video(clips):
    return video_create(source=clips["silent"])


@pytest.mark.django_db
class TestClaim:
    def test_queued_job_is_claimed_once(self, video):
        job = make_job(video)
        first = jobs.job_claim(job.pk, "a")
        assert first.state == JobState.RUNNING and first.attempt == 1 and first.worker == "a"
        assert jobs.job_claim(job.pk, "b") is None  # a duplicate delivery does nothing

    def test_expired_lease_makes_job_claimable_again(self, video):
        job = make_job(video, state=JobState.RUNNING, attempt=1, worker="dead",
                       lease_expires_at=timezone.now() - timedelta(seconds=1))  # fmt: skip
        again = jobs.job_claim(job.pk, "b")
        assert again.attempt == 2 and again.worker == "b"

    def test_live_lease_is_respected(self, video):
        job = make_job(video, state=JobState.RUNNING, attempt=1, worker="alive",
                       lease_expires_at=timezone.now() + timedelta(seconds=60))  # fmt: skip
        assert jobs.job_claim(job.pk, "b") is None

    def test_attempts_exhausted_fails_the_job(self, video):
        job = make_job(video, state=JobState.RUNNING, attempt=3, max_attempts=3,
                       lease_expires_at=timezone.now() - timedelta(seconds=1))  # fmt: skip
        assert jobs.job_claim(job.pk, "b") is None
        job.refresh_from_db()
        assert job.state == JobState.FAILED and "Gave up after 3 attempts" in job.error

    def test_taken_over_worker_cannot_finish(self, video):
        job = make_job(video)
        old = jobs.job_claim(job.pk, "old")
        ProcessingJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        new = jobs.job_claim(job.pk, "new")
        assert not jobs.job_finish(old)
        with pytest.raises(jobs.JobCancelled):
            jobs.job_heartbeat(old)
        assert jobs.job_finish(new)

    def test_transient_failure_backs_off_then_fails_for_good(self, video):
        job = make_job(video, max_attempts=2)
        claimed = jobs.job_claim(job.pk, "a")
        assert jobs.job_fail(claimed, "S3 said 503", permanent=False) is False
        job.refresh_from_db()
        assert job.state == JobState.QUEUED and job.next_attempt_at >= timezone.now() - timedelta(seconds=1)
        ProcessingJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        claimed = jobs.job_claim(job.pk, "a")
        assert claimed.attempt == 2
        assert jobs.job_fail(claimed, "S3 said 503", permanent=False) is True
        job.refresh_from_db()
        assert job.state == JobState.FAILED

    @pytest.mark.parametrize("attempt, ceiling", [(1, 10), (2, 20), (3, 40), (20, 900)])
    def test_backoff_is_exponential_with_jitter_and_capped(self, attempt, ceiling):
        delays = [jobs.retry_delay(attempt, base=10) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jittered across the range, not fixed


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_a_worker_started_with_sigint_ignored(tmp_path):
    """A shell's background job (`make test &`, `nohup`) starts with SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler: the worker must still stop on SIGINT (it hung,
    and the takeover test below with it, in runs started that way)."""
    with open(tmp_path / "worker.log", "wb") as log:
        worker = start_worker(worker_env(tmp_path), log, sigint_ignored=True)
        try:
            wait_for(lambda: b"Worker started" in (tmp_path / "worker.log").read_bytes(), 30, "no start")
            worker.send_signal(signal.SIGINT)
            assert worker.wait(timeout=30) == 0
        finally:
            worker.kill()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_encode_is_taken_over_after_lease(tmp_path):
    source = make_clip(tmp_path / "long.mp4", seconds=12, size="1280x720")
    video = video_create(source=source)
    job = services.video_request_processing(video)  # recording backend: nothing runs yet
    env = worker_env(tmp_path, lease=3)

    with open(tmp_path / "worker-a.log", "wb") as log_a:
        first = start_worker(env, log_a)
        try:
            wait_for(
                lambda: ProcessingJob.objects.get(pk=job.pk).state == JobState.RUNNING
                and Video.objects.get(pk=video.pk).progress > 0,
                60,
                "the first worker never started encoding",
            )
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
    hint = str(tmp_path / "work" / f"video{video.pk}-")  # this test's work directory only
    wait_for(lambda: not ffmpeg_processes_with(hint), 5, "ffmpeg outlived its killed worker")

    stuck = ProcessingJob.objects.get(pk=job.pk)
    assert stuck.state == JobState.RUNNING and stuck.attempt == 1  # nobody says it failed...
    assert Video.objects.get(pk=video.pk).status == "processing"

    with open(tmp_path / "worker-b.log", "wb") as log_b:
        second = start_worker(env, log_b)
        try:
            # ...until the lease runs out and the second worker takes it over.
            # The video is ready at the stitch, inside the job: stop the worker once the job
            # itself is over (SIGINT mid-job waits for the job, which under load outlasts the
            # wait below).
            wait_for(
                lambda: Video.objects.get(pk=video.pk).status in ("ready", "failed")
                and ProcessingJob.objects.get(pk=job.pk).state in (JobState.DONE, JobState.FAILED),
                90,
                "never finished",
            )
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(timeout=60)

    video = Video.objects.get(pk=video.pk)
    job.refresh_from_db()
    assert (video.status, job.state, job.attempt) == ("ready", JobState.DONE, 2), (
        tmp_path / "worker-b.log"
    ).read_text()
    checks.assert_all_outputs(video, 12.0, ["720p", "480p", "360p", "240p"], audio=True)


@pytest.mark.django_db(transaction=True)
def test_a_job_ends_and_its_video_status_follows_in_one_commit(monkeypatch, video):
    """Another connection never sees the job done under a video still "processing": the
    job's end and the derived status commit together (they were two transactions, and a
    client polling between them saw the job over and the video not)."""
    monkeypatch.setattr(runner, "run_step", lambda job, heartbeat: 0.0)  # the step is not the point
    seen = []
    refresh = videos.video_refresh_status

    def look_from_outside(video):
        with sqlite3.connect(connection.settings_dict["NAME"]) as other:
            seen.append(other.execute("SELECT state FROM transcoding_processingjob").fetchone()[0])
        return refresh(video)

    monkeypatch.setattr(videos, "video_refresh_status", look_from_outside)
    job = make_job(video)
    assert runner.job_run(job.pk) == "done"
    assert seen == ["running"]  # the job's end was not yet committed when the status was derived
