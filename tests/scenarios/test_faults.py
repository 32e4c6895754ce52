"""Faults on the real paths: storage failing once, the database locked for a moment, the
database connection lost. Each ends with the video ready, and a retry redoes nothing that
was finished."""

import sqlite3
import time

import pytest
from django.db import OperationalError, connection

from tests.support import checks
from tests.support.processes import start_worker, wait_for, worker_env
from transcoding import services
from transcoding.encoding import encode
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.jobs.tasks import process_job
from transcoding.models import JobState, ProcessingJob, Video

pytestmark = pytest.mark.slow


@pytest.mark.django_db
def test_storage_error_once_is_retried_and_finished_parts_are_not_redone(
    flaky_storage, clips, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["720p"])
        job = services.video_request_processing(video)
    assert run_recorded() == ["retry"]
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and "503" in job.error and job.attempt == 1
    video = Video.objects.get(pk=video.pk)
    assert video.poster.status == "queued" and "503" in video.poster.error  # waiting for the retry
    finished = {r.name: (r.status, r.attempts, r.finished_at) for r in video.renditions.all()}
    assert {status for status, _, _ in finished.values()} == {"ready"}  # stored before the failure

    # The retry (Lambda's redelivery, a Celery eta, or the watchdog) runs the job again:
    # only the poster is made, nothing finished is redone.
    assert process_job(job.pk) == "done"
    video = Video.objects.get(pk=video.pk)
    job.refresh_from_db()
    assert (video.status, job.state, job.attempt) == ("ready", JobState.DONE, 2)
    assert {r.name: (r.status, r.attempts, r.finished_at) for r in video.renditions.all()} == finished
    assert video.storyboard.attempts == 1 and video.poster.attempts == 2
    checks.assert_all_outputs(video, 6.0, ["720p", "480p", "360p", "240p"], audio=True)


@pytest.mark.django_db
def test_lost_database_connection_is_transient(
    clips, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_RETRY_BASE_SECONDS = 0
    original = encode.probe_and_record
    calls = []

    def drop_once(video):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return original(video)

    monkeypatch.setattr(encode, "probe_and_record", drop_once)
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["silent"])
        job = services.video_request_processing(video)
    assert run_recorded() == ["retry"]
    assert process_job(job.pk) == "done"
    assert Video.objects.get(pk=video.pk).status == "ready"


@pytest.mark.django_db(transaction=True)
def test_database_locked_for_a_moment_under_a_real_worker(tmp_path, clips):
    """Another process holds SQLite's write lock for 3 s while the worker is writing progress:
    the worker waits (WAL, busy timeout) instead of failing with "database is locked"."""
    video = video_create(source=clips["720p"])
    job = services.video_request_processing(video)
    env = worker_env(tmp_path, lease=30)
    with open(tmp_path / "worker.log", "wb") as log:
        worker = start_worker(env, log)
        try:
            wait_for(
                lambda: ProcessingJob.objects.get(pk=job.pk).state == JobState.RUNNING, 60, "never started"
            )
            connection.close()
            blocker = sqlite3.connect(connection.settings_dict["NAME"], timeout=30)
            blocker.execute("BEGIN EXCLUSIVE")
            time.sleep(3)
            blocker.rollback()
            blocker.close()
            wait_for(
                lambda: Video.objects.get(pk=video.pk).status in ("ready", "failed"), 90, "never finished"
            )
        finally:
            worker.kill()
            worker.wait()
    video = Video.objects.get(pk=video.pk)
    job.refresh_from_db()
    assert (video.status, job.attempt) == ("ready", 1), (tmp_path / "worker.log").read_text()[-2000:]
    assert "database is locked" not in (tmp_path / "worker.log").read_text()
