"""One contract, every dispatch backend (as Django runs one test class against every mail
backend). `BaseDispatcher` promises: a job id handed over after commit reaches
`transcoding.jobs.tasks.process_job` at least once, a duplicate delivery does nothing, the
chunk jobs a long video fans out travel the same way, and a webhook delivery id handed over
reaches `transcoding.jobs.tasks.deliver_webhook` (a real receiver on 127.0.0.1 gets the event).

Each backend below runs for real, in the way this machine allows:
- recording: the test delivers what was recorded, in order;
- local: `enqueue` itself starts `manage.py worker` (a subprocess on the test's database);
- celery: a Celery worker (Celery's own test worker, in a thread) consuming a Redis broker
  under a key prefix of its own;
- zappa: `zappa.asynchronous` sends Invoke to moto's Lambda API, and each payload is delivered
  to Zappa's real handler (tests/support/lambda_runtime.py).
"""

import os
import signal
import uuid

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from tests.support import checks
from tests.support.media import make_clip
from tests.support.processes import wait_for, worker_env
from tests.support.services import REDIS_DB, REDIS_HOST, REDIS_PORT, redis_missing
from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch import get_dispatcher, local, recording
from transcoding.models import DeliveryState, JobState, ProcessingJob, Video, WebhookDelivery
from videoproject.celery import app as celery_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("small_preset"),
]

REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
# One key prefix for this process's broker traffic (kombu's global_keyprefix): the app's
# producer pool, made on first use, keeps the settings it was made with.
PREFIX = f"dispatch-contract-{os.getpid()}-{uuid.uuid4().hex[:6]}:"


def terminal(video: Video) -> bool:
    """Every job ended and the video's status derived from them: a worker records a job's end,
    then derives the video's status in its next transaction, so there is a moment with the job
    done and the video still processing."""
    if video.jobs.filter(state__in=[JobState.QUEUED, JobState.RUNNING]).exists():
        return False
    return Video.objects.filter(pk=video.pk).exclude(status__in=["queued", "processing"]).exists()


class Backend:
    """How the test lets a backend's deliveries happen, and sets what its workers read."""

    def __init__(self, settings):
        self.settings = settings

    def configure(self, **transcoding):
        for name, value in transcoding.items():
            setattr(self.settings, f"TRANSCODING_{name}", value)

    def drain(self, video: Video) -> None:
        """Until every job of the video has ended."""
        wait_for(lambda: terminal(video), 90, "the video's jobs never ended", poll=0.2)


def webhooks_delivered() -> bool:
    states = set(WebhookDelivery.objects.values_list("state", flat=True))
    return bool(states) and states <= {DeliveryState.DELIVERED}


class Recording(Backend):
    def drain(self, video: Video) -> None:
        while recording.outbox or recording.webhook_outbox:
            recording.run_recorded()  # transactional database: commit hooks run at once
            recording.run_recorded_webhooks()


class Local(Backend):
    """`manage.py worker` reads its settings from the environment: configure sets both."""

    def __init__(self, settings, monkeypatch, tmp_path):
        super().__init__(settings)
        self.monkeypatch = monkeypatch
        settings.TRANSCODING_LOCAL_IDLE_SECONDS = 3  # the worker enqueue starts exits soon after
        env = worker_env(tmp_path)
        for name in ("DATABASE_URL", "MEDIA_ROOT", "TRANSCODING_RUN_DIR"):
            monkeypatch.setenv(name, env[name])
        settings.TRANSCODING_RUN_DIR = env["TRANSCODING_RUN_DIR"]  # one lock file for both sides

    def configure(self, **transcoding):
        super().configure(**transcoding)
        for name, value in transcoding.items():
            self.monkeypatch.setenv(f"TRANSCODING_{name}", str(value))

    def stop(self):
        lock = local.run_dir() / local.LOCK_NAME
        if local.worker_running() and lock.read_text().strip().isdigit():
            os.kill(int(lock.read_text()), signal.SIGTERM)
            wait_for(lambda: not local.worker_running(), 20, "the local worker never stopped")


class Zappa(Backend):
    """Lambda invokes the function with each payload: here, Zappa's handler is called with it."""

    def __init__(self, settings, runtime, invokes):
        super().__init__(settings)
        self.runtime, self.invokes, self.delivered = runtime, invokes, 0

    def drain(self, video: Video) -> None:
        while self.delivered < len(self.invokes):
            self.runtime.deliver(self.invokes[self.delivered]["payload"])
            self.delivered += 1


@pytest.fixture(params=["recording", "local", "celery", "zappa"])
def backend(request, settings, monkeypatch, tmp_path):
    settings.TRANSCODING_DISPATCH = request.param
    if request.param == "recording":
        yield Recording(settings)
    elif request.param == "local":
        runner = Local(settings, monkeypatch, tmp_path)
        yield runner
        runner.stop()
    elif request.param == "celery":
        if redis_missing():
            pytest.skip(redis_missing())
        celery_app.conf.update(broker_url=REDIS_URL, broker_transport_options={"global_keyprefix": PREFIX})
        try:
            with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
                yield Backend(settings)
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{PREFIX}*"))
            if keys:
                client.delete(*keys)
    else:
        request.getfixturevalue("lambda_api")  # Invoke goes to moto; TRANSCODING_DISPATCH=zappa
        runtime = request.getfixturevalue("lambda_runtime")
        yield Zappa(settings, runtime, request.getfixturevalue("lambda_api"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 s at 640x360 with sound: the small preset's two rungs, encoded in a second or two."""
    return make_clip(tmp_path_factory.mktemp("contract") / "clip.mp4", seconds=6, size="640x360")


LADDER = ["360p", "240p"]  # the small preset's


class TestDispatchContract:
    def test_a_request_reaches_a_worker_and_the_video_becomes_ready(self, backend, clip):
        video = video_create(source=clip)
        job = services.video_request_processing(video)
        backend.drain(video)

        video = Video.objects.get(pk=video.pk)
        job.refresh_from_db()
        assert (video.status, job.state, job.attempt) == ("ready", JobState.DONE, 1), job.error
        checks.assert_all_outputs(video, 6.0, LADDER, audio=True)

    def test_a_job_delivered_again_does_nothing(self, backend, clip):
        video = video_create(source=clip)
        job = services.video_request_processing(video)
        backend.drain(video)
        finished = {r.name: (r.attempts, r.finished_at) for r in video.renditions.all()}

        get_dispatcher().enqueue(job.pk)  # at least once: the same id again
        backend.drain(video)

        job.refresh_from_db()
        assert (job.state, job.attempt) == (JobState.DONE, 1)
        assert {r.name: (r.attempts, r.finished_at) for r in video.renditions.all()} == finished

    def test_a_long_videos_chunks_travel_the_same_way(self, backend, clip):
        backend.configure(CHUNK_SECONDS=2, CHUNK_THRESHOLD_SECONDS=3)
        video = video_create(source=clip)
        services.video_request_processing(video)
        backend.drain(video)

        video = Video.objects.get(pk=video.pk)
        jobs = ProcessingJob.objects.filter(video=video)
        assert video.status == "ready", [j.error for j in jobs]
        chunks = sorted(jobs.values_list("chunk", flat=True))
        assert len(chunks) >= 2 and chunks == list(range(len(chunks)))
        assert set(jobs.values_list("state", flat=True)) == {JobState.DONE}
        checks.assert_all_outputs(video, 6.0, LADDER, audio=True)

    def test_a_webhook_reaches_its_endpoint(self, backend, clip, webhook_endpoint, receiver):
        backend.configure(WEBHOOK_ALLOW_INTERNAL=True)  # the receiver is on 127.0.0.1
        video = video_create(source=clip)
        services.video_request_processing(video)
        backend.drain(video)
        wait_for(webhooks_delivered, 60, "the webhooks were never delivered", poll=0.2)

        assert sorted(receiver.types()) == ["video.created", "video.playable", "video.ready"]
        assert all(r.verified for r in receiver.received)
        assert {r.payload["data"]["id"] for r in receiver.received} == {video.pk}
