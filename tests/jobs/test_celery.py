"""The Celery backend. First in-process, without a broker: what the tasks do with each
outcome. Then for real: a Redis broker, PostgreSQL, and `celery worker` subprocesses, in a
scenario of their own (tests/support/services.py: a fresh PostgreSQL database and broker
prefix), skipped with the reason when Redis or PostgreSQL is not there.
"""

import json
import os
import re
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import m3u8
import pytest
from django.utils import timezone

from tests.support.media import make_clip
from tests.support.processes import ffmpeg_in_group, group_alive, wait_for
from tests.support.services import (
    LADDER,
    Scenario,
    assert_outputs_in_subprocess,
    celery_worker,
    ingest,
    job_row,
    real_services,
    rendition_attempts,
    shell,
    video_row,
)
from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs import tasks
from transcoding.jobs.dispatch import get_dispatcher, recording
from transcoding.jobs.dispatch.base import Waiting
from transcoding.jobs.dispatch.celery import (
    FIRST_QUEUE,
    LEASE_MARGIN_SECONDS,
    CeleryDispatcher,
    process_job,
    requeue_stuck,
)
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, ProcessingJob
from transcoding.status import jobs
from videoproject.celery import app

# --- In-process, no broker: what the tasks do with each outcome ------------------------------


@pytest.fixture
def queued_job(clips):
    video = video_create(source=clips["silent"])
    return services.video_request_processing(video)  # recorded, not sent


@pytest.fixture
def sent(monkeypatch):
    """Messages the task would send, as (args, options), instead of sending them."""

    messages = []
    monkeypatch.setattr(process_job, "apply_async", lambda args, **options: messages.append((args, options)))
    monkeypatch.setattr(process_job, "delay", lambda *args: messages.append((args, {})))
    return messages


@pytest.mark.django_db
def test_the_dispatcher_sends_the_job_id_first_chunks_to_their_own_queue(settings, sent, queued_job):
    settings.TRANSCODING_DISPATCH = "celery"

    chunk = ProcessingJob.objects.create(video=queued_job.video, parent=queued_job, chunk=1)
    dispatcher = get_dispatcher()
    dispatcher.enqueue(queued_job.pk)
    dispatcher.enqueue(chunk.pk)
    assert isinstance(dispatcher, CeleryDispatcher)
    # A video's start is never queued behind the later chunks of another video.
    assert sent == [((queued_job.pk,), {"queue": FIRST_QUEUE}), ((chunk.pk,), {})]

    assert {q.name for q in app.amqp.queues.consume_from.values()} >= {FIRST_QUEUE, "celery"}


@pytest.mark.django_db
def test_a_retry_is_sent_again_at_the_jobs_next_attempt(queued_job, monkeypatch, sent):
    def fail_transiently(job_id):
        jobs.job_fail(jobs.job_claim(job_id), "S3 said 503", permanent=False)
        return "retry"

    monkeypatch.setattr(tasks, "process_job", fail_transiently)
    assert process_job(queued_job.pk) == "retry"
    next_attempt_at = ProcessingJob.objects.get(pk=queued_job.pk).next_attempt_at
    assert sent == [((queued_job.pk,), {"eta": next_attempt_at})]


@pytest.mark.django_db
@pytest.mark.parametrize("redelivered, follow_up", [(True, True), (False, False)])
def test_a_redelivery_refused_by_a_live_lease_tries_again_after_it(queued_job, sent, redelivered, follow_up):
    claimed = jobs.job_claim(queued_job.pk, "a worker that died")
    process_job.push_request(delivery_info={"redelivered": redelivered})
    try:
        assert process_job.run(queued_job.pk) == "skipped"
    finally:
        process_job.pop_request()
    expected = claimed.lease_expires_at + timedelta(seconds=LEASE_MARGIN_SECONDS)
    assert sent == ([((queued_job.pk,), {"eta": expected})] if follow_up else [])


@pytest.mark.django_db
def test_a_finished_job_delivered_again_is_skipped_without_follow_up(queued_job, sent):
    ProcessingJob.objects.filter(pk=queued_job.pk).update(state=JobState.DONE)
    process_job.push_request(delivery_info={"redelivered": True})
    try:
        assert process_job.run(queued_job.pk) == "skipped"
    finally:
        process_job.pop_request()
    assert sent == []


@pytest.mark.django_db
def test_the_watchdog_task_re_dispatches_expired_leases(queued_job, django_capture_on_commit_callbacks):
    ProcessingJob.objects.filter(pk=queued_job.pk).update(
        state=JobState.RUNNING, attempt=1, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    recording.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        requeued = requeue_stuck()[0]
    assert requeued == [queued_job.pk] and recording.outbox == [queued_job.pk]
    json.dumps(requeue_stuck())  # a JSON-serializable result


def test_the_app_knows_the_tasks_and_the_watchdog_schedule():
    app.loader.import_default_modules()
    assert {"transcoding.process_job", "transcoding.requeue_stuck"} <= set(app.tasks)
    (entry,) = app.conf.beat_schedule.values()
    assert entry["task"] == "transcoding.requeue_stuck" and entry["schedule"] == 60.0
    task = app.tasks["transcoding.process_job"]
    assert task.acks_late and task.reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]


# --- For real: Redis, PostgreSQL and celery worker processes (tests/support/services.py) ------


def mid_encode(scenario: Scenario, video_id: int, worker: subprocess.Popen) -> bool:
    """The job is running, ffmpeg is at work in the worker's process group, and some output
    exists: progress reported, or segments already stored (they are stored as they finish)."""
    if job_row(scenario, video_id)["state"] != "running" or not ffmpeg_in_group(worker.pid):
        return False
    stored = scenario.media / "videos" / str(video_id)
    return video_row(scenario, video_id)["progress"] > 0 or any(stored.rglob("seg_*.m4s"))


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def received_ids(log: str) -> list[str]:
    """Task ids in a worker log's "received" lines, in order: a redelivered message keeps its id."""
    return re.findall(r"Task transcoding\.process_job\[([0-9a-f-]+)\] received", log)


@pytest.mark.slow
@real_services
def test_ingest_end_to_end_through_a_celery_worker(scenario, clips):
    with celery_worker(scenario.env, scenario.root / "worker-e2e.log"):
        started = time.monotonic()
        doc = ingest(scenario.env, clips["720p"], "--wait", "--timeout", "120")
        elapsed = time.monotonic() - started

    assert doc["status"] == "ready", (doc, (scenario.root / "worker-e2e.log").read_text())
    assert [r["name"] for r in doc["renditions"]] == LADDER
    assert all(r["status"] == "ready" for r in doc["renditions"])
    assert elapsed < 60
    log = (scenario.root / "worker-e2e.log").read_text()
    assert "Task transcoding.process_job[" in log and "succeeded" in log and "'done'" in log

    # The stored outputs, read as a player would: every variant's segments exist.
    master_path = scenario.media / video_row(scenario, doc["id"])["hls_path"]
    master = m3u8.load(str(master_path))
    assert master.is_variant and len(master.playlists) == len(LADDER)
    for variant in master.playlists:
        playlist = master_path.parent / variant.uri
        media = m3u8.load(str(playlist))
        assert media.is_endlist and media.segments
        assert (playlist.parent / media.segment_map[0].uri).is_file()
        assert all((playlist.parent / segment.uri).is_file() for segment in media.segments)

    job = job_row(scenario, doc["id"])
    assert (job["state"], job["attempt"]) == ("done", 1)


@pytest.mark.slow
@real_services
def test_the_same_job_delivered_twice_is_encoded_once(scenario, tmp_path):
    clip = make_clip(tmp_path / "small.mp4", seconds=4, size="640x360")
    # Two worker processes, so both deliveries are in flight at once; the job is created
    # without dispatching it (recording backend) and then sent twice through the broker.
    # A result backend for this test only, to read each delivery's outcome (then forgotten).
    with_results = {**scenario.env, "CELERY_RESULT_BACKEND": scenario.broker}
    env = {**with_results, "TRANSCODING_DISPATCH": "recording"}
    with celery_worker(with_results, scenario.root / "worker-twice.log", concurrency=2):
        sent = shell(
            env,
            "import json; from transcoding import services; "
            "from transcoding.ingest.create import video_create; "
            "from transcoding.jobs.dispatch.celery import process_job; "
            f"video = video_create(source={str(clip)!r}); "
            "job = services.video_request_processing(video); "
            "results = [process_job.delay(job.pk), process_job.delay(job.pk)]; "
            "outcomes = [r.get(timeout=90) for r in results]; [r.forget() for r in results]; "
            "print(json.dumps({'video': video.pk, 'job': job.pk, 'outcomes': outcomes}))",
        )

    assert sorted(sent["outcomes"]) == ["done", "skipped"]
    job = job_row(scenario, sent["video"])
    assert (job["id"], job["state"], job["attempt"]) == (sent["job"], "done", 1)
    assert video_row(scenario, sent["video"])["status"] == "ready"
    attempts = rendition_attempts(scenario, sent["video"])
    assert attempts and set(attempts.values()) == {1}, attempts


@pytest.mark.slow
@real_services
def test_worker_killed_mid_encode_is_redelivered_by_the_broker(scenario, tmp_path):
    """SIGKILL the whole worker (main process, pool process, ffmpeg): nobody acknowledges or
    rejects the message, so it stays in Redis's `unacked` hash until its visibility timeout
    (10 s here) passes and a worker restores it to the queue; the new delivery claims the job
    once the dead worker's lease (5 s here) has expired."""
    clip = make_clip(tmp_path / "long.mp4", seconds=12, size="1280x720")
    options = {
        "global_keyprefix": scenario.prefix,
        "visibility_timeout": 10,
        # Sweep for expired messages every second (the default is about every 100 s).
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    env = {
        **scenario.env,
        "TRANSCODING_LEASE_SECONDS": "5",
        "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(options),
    }
    # Queued before the worker starts: an ingest command slow to exit on a loaded machine
    # must not let the whole encode pass before the test looks.
    video_id = ingest(env, clip)["id"]
    with celery_worker(env, tmp_path / "worker-a.log") as first:
        wait_for(lambda: mid_encode(scenario, video_id, first), 60, "the first worker never started encoding")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        wait_for(lambda: not group_alive(first.pid), 5, "the killed worker's processes (ffmpeg) live on")

    job = job_row(scenario, video_id)
    assert (job["state"], job["attempt"]) == ("running", 1)  # nobody says it stopped...
    unacked = scenario.redis().hlen(f"{scenario.prefix}unacked")
    assert unacked == 1, scenario.broker_keys()  # ...but the broker still holds its message

    with celery_worker(env, tmp_path / "worker-b.log"):
        wait_for(lambda: video_row(scenario, video_id)["status"] in ("ready", "failed"), 60, "never finished")
        recovered_in = time.monotonic() - killed_at
        wait_for(lambda: scenario.redis().hlen(f"{scenario.prefix}unacked") == 0, 10, "never acknowledged")

    log_b = (tmp_path / "worker-b.log").read_text()
    # The very message the first worker had taken, not a new one (the watchdog's). On a loaded
    # machine the second encode can outlast the 10 s visibility timeout and get it once more:
    # that delivery finds the job done and is skipped.
    assert set(received_ids(log_b)) == set(received_ids((tmp_path / "worker-a.log").read_text())), log_b
    job = job_row(scenario, video_id)
    assert (video_row(scenario, video_id)["status"], job["state"], job["attempt"]) == ("ready", "done", 2), (
        log_b
    )
    assert "succeeded" in log_b and "'done'" in log_b
    assert recovered_in < 45
    assert_outputs_in_subprocess(env, video_id, 12.0)
    print(f"killed worker's job recovered {recovered_in:.1f} s after the kill")


@pytest.mark.slow
@real_services
def test_pool_process_killed_mid_encode_is_rejected_and_redelivered_at_once(scenario, tmp_path):
    """SIGKILL only the pool process (the OOM killer's usual victim): the worker's main
    process sees it lost (reject_on_worker_lost) and puts the message back at once. The
    redelivery arrives while the dead process's lease still runs, so the claim refuses it;
    the task then delivers it again just after the lease expires, and that claim succeeds."""
    clip = make_clip(tmp_path / "long.mp4", seconds=10, size="1280x720")
    env = {**scenario.env, "TRANSCODING_LEASE_SECONDS": "8"}
    scenario.clean_broker()  # the module's earlier tests may leave a message: the first is ours
    # Queued before the worker starts (a loaded machine's ingest command once exited after
    # the whole 4 s encode had passed).
    video_id = ingest(env, clip)["id"]
    with celery_worker(env, tmp_path / "worker.log") as worker:
        wait_for(lambda: mid_encode(scenario, video_id, worker), 60, "the worker never started encoding")
        (child,) = pool_children(worker.pid)
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: video_row(scenario, video_id)["status"] in ("ready", "failed"), 60, "never finished")
        recovered_in = time.monotonic() - killed_at
        assert worker.poll() is None  # the worker itself lived on

    log = (tmp_path / "worker.log").read_text()
    job = job_row(scenario, video_id)
    assert (video_row(scenario, video_id)["status"], job["state"], job["attempt"]) == ("ready", "done", 2), (
        log
    )
    assert "WorkerLostError" in log, log
    received = received_ids(log)
    assert received.count(received[0]) == 2, log  # the same message, put back and delivered again
    # Usually the redelivery meets the dead process's lease and waits for it; on a loaded
    # machine the lease may have lapsed already (heartbeats starved), and it claims at once.
    assert ("'skipped'" in log) == ("redelivered while leased" in log), log
    assert recovered_in < 40
    print(f"lost pool process's job recovered {recovered_in:.1f} s after the kill")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "waiting, resent",
    [
        ("the job", False),  # waiting in the queue: sending it again would only pile up duplicates
        ("nothing", True),  # the broker lost it (an outage): sent again
        (None, False),  # the broker cannot be read (down, or not Redis): trusted
    ],
)
def test_the_watchdog_does_not_resend_jobs_waiting_in_the_broker(
    queued_job, settings, sent, monkeypatch, waiting, resent, django_capture_on_commit_callbacks
):
    """A long video's chunks may wait in the queue for hours behind each other: the broker
    holds them, so sending them again every minute would only pile up duplicates; one the
    broker does not hold is sent again. (What Redis holds is read for real in
    tests/scenarios/test_outages.py.) A backend without such a queue, like Lambda's async
    invocations, gets them sent again."""
    held = {"the job": Waiting({queued_job.pk}, set()), "nothing": Waiting(set(), set()), None: None}[waiting]
    monkeypatch.setattr(CeleryDispatcher, "waiting", lambda self: held)
    ProcessingJob.objects.filter(pk=queued_job.pk).update(created_at=timezone.now() - timedelta(hours=2))
    settings.TRANSCODING_DISPATCH = "celery"
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover_stuck() == ([], [], [queued_job.pk] if resent else [])
    assert sent == ([((queued_job.pk,), {"queue": FIRST_QUEUE})] if resent else [])
    settings.TRANSCODING_DISPATCH = "recording"
    recording.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover_stuck() == ([], [], [queued_job.pk])
    assert recording.outbox == [queued_job.pk]
