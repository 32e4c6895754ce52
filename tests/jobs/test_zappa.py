"""The Zappa / AWS Lambda backend over the real paths, with no AWS account.

- Dispatch goes through `zappa.asynchronous` for real; Lambda's API is moto's, and each Invoke
  is recorded as botocore sends it (function, invocation type, payload).
- That payload is then delivered to Zappa's own Lambda entry point (`zappa.handler.lambda_handler`)
  loaded with the settings module Zappa generates into the package for the `dev` stage, and the
  job runs (real ffmpeg on a small clip). Django is configured already, so the stage's
  environment variables (STORAGE=s3, DATABASE_URL...) reach os.environ but not the settings:
  the job uses the test's storage and database.
- `zappa package dev` builds the deployment from a virtualenv holding only requirements.txt,
  with no AWS credentials, and its sizes are checked against Lambda's limits.
"""

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote_plus

import boto3
import moto  # noqa: F401  (imported before zappa, so the clients zappa makes at import go through moto)
import pytest
import zappa.asynchronous
import zappa.handler
from django.db import OperationalError
from django.utils import timezone
from moto import mock_aws
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from zappa.core import Zappa
from zappa.utilities import add_event_source, import_and_get_function

from tests.support import checks, zappa_package
from tests.support.api import make_user
from tests.support.lambda_runtime import REGION, zappa_cli
from tests.support.media import make_clip
from tests.support.s3 import storage_settings
from transcoding import services
from transcoding.api.keys import api_key_create
from transcoding.conf import SETTINGS, chunk_seconds
from transcoding.ingest.create import video_create
from transcoding.jobs import runner
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.jobs.dispatch import zappa as backend
from transcoding.jobs.dispatch.recording import outbox
from transcoding.models import JobState, ProcessingJob, Video

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024**2
# Lambda's limit for a function's code, unzipped (zip deployments).
LAMBDA_UNZIPPED_LIMIT = 250 * MiB
# ...and for a zip uploaded directly (Zappa uploads through S3, but the handler stays far below).
LAMBDA_ZIPPED_LIMIT = 50 * MiB
RUN_JOB = "transcoding.jobs.dispatch.zappa.run_job"


def request_processing(path) -> tuple[Video, ProcessingJob]:
    video = video_create(source=path)
    return video, services.video_request_processing(video)


@pytest.mark.slow
@pytest.mark.django_db
def test_enqueue_invokes_the_function_and_the_handler_runs_the_job_once(
    lambda_api, lambda_runtime, clips, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        video, job = request_processing(clips["silent"])

    [invoke] = lambda_api  # one asynchronous Invoke of the encoder function, after commit
    assert invoke["FunctionName"] == "videoproject-dev-encoder" and invoke["InvocationType"] == "Event"
    assert invoke["payload"] == {
        "command": "zappa.asynchronous.route_lambda_task",
        "task_path": RUN_JOB,
        "args": [job.pk],
        "kwargs": {},
        "capture_response": False,
        "response_id": None,
    }
    job.refresh_from_db()
    assert (job.state, job.attempt) == (JobState.QUEUED, 0)  # nothing ran in the sender

    assert lambda_runtime.deliver(invoke["payload"]) == "done"
    assert lambda_runtime.archives == [
        "s3://videoproject-zappa-deployments-dev/dev_encoder_videoproject_current_project.tar.gz"
    ]  # slim_handler: the handler fetches the project from S3 at cold start
    video = Video.objects.get(pk=video.pk)
    checks.assert_all_outputs(video, 5.0, ["360p", "240p"], audio=False)
    job.refresh_from_db()
    assert (job.state, job.attempt) == (JobState.DONE, 1)

    # At-least-once: Lambda delivers the same event again. The claim finds the job done.
    before = {r.name: (r.attempts, r.finished_at) for r in video.renditions.all()}
    assert lambda_runtime.deliver(invoke["payload"]) == "skipped"
    job.refresh_from_db()
    assert (job.state, job.attempt) == (JobState.DONE, 1)
    assert {r.name: (r.attempts, r.finished_at) for r in video.renditions.all()} == before
    assert len(lambda_api) == 1  # and nothing was dispatched again


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("flaky_storage")
def test_transient_failure_raises_out_of_the_handler_and_the_redelivery_finishes(
    lambda_api, lambda_runtime, clips, django_capture_on_commit_callbacks
):
    """Storage answers 503 once (storing the poster): the invocation must fail so that Lambda
    retries the event; the retry makes only what is missing."""
    with django_capture_on_commit_callbacks(execute=True):
        video, job = request_processing(clips["silent"])
    [invoke] = lambda_api

    with pytest.raises(backend.RetryLater):
        lambda_runtime.deliver(invoke["payload"])
    job.refresh_from_db()
    assert (job.state, job.attempt) == (JobState.QUEUED, 1) and "503" in job.error

    # Lambda's retry: the same payload, a minute later (the backoff is 0 s here).
    assert lambda_runtime.deliver(invoke["payload"]) == "done"
    job.refresh_from_db()
    assert (job.state, job.attempt) == (JobState.DONE, 2)
    video = Video.objects.get(pk=video.pk)
    assert video.poster.attempts == 2 and video.storyboard.attempts == 1
    checks.assert_all_outputs(video, 5.0, ["360p", "240p"], audio=False)


def storage_down(job, heartbeat):
    raise ConnectionError("S3 answered 503 Slow Down")


@pytest.mark.django_db
def test_last_attempt_failing_ends_the_job_without_raising(
    lambda_api, lambda_runtime, clips, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """With no attempts left the job is failed for good: the invocation succeeds, so Lambda
    does not retry it."""
    settings.TRANSCODING_MAX_ATTEMPTS = 1
    with django_capture_on_commit_callbacks(execute=True):
        video, job = request_processing(clips["silent"])
    monkeypatch.setattr(runner, "run_step", storage_down)
    assert lambda_runtime.deliver(lambda_api[0]["payload"]) == "failed"
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "503" in job.error
    assert Video.objects.get(pk=video.pk).status == "failed"


@pytest.mark.django_db
def test_an_exception_in_the_task_propagates_out_of_the_handler(
    lambda_api, lambda_runtime, clips, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request_processing(clips["silent"])

    def database_gone(job_id):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("transcoding.jobs.tasks.process_job", database_gone)
    with pytest.raises(OperationalError):
        lambda_runtime.deliver(lambda_api[0]["payload"])


@pytest.mark.django_db
def test_outside_lambda_zappa_runs_the_task_inline(settings, monkeypatch, clips):
    """No AWS_LAMBDA_FUNCTION_NAME: Zappa calls the task in this process, no Invoke is sent.
    A transient failure then stays queued for its retry instead of failing the caller."""
    settings.TRANSCODING_DISPATCH = "zappa"
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setattr(zappa.asynchronous, "LAMBDA_CLIENT", None, raising=False)  # never used
    ran = []
    outcomes = iter(["done", "retry"])
    monkeypatch.setattr(
        "transcoding.jobs.tasks.process_job", lambda job_id: ran.append(job_id) or next(outcomes)
    )
    assert isinstance(get_dispatcher(), backend.ZappaDispatcher)
    get_dispatcher().enqueue(7)
    get_dispatcher().enqueue(8)  # "retry": logged, not raised into the commit hook
    assert ran == [7, 8]
    with pytest.raises(TypeError):  # payloads must be JSON: ids only
        backend.run_job(object())


@pytest.mark.django_db
def test_watchdog_schedule_requeues_a_stuck_job_and_invokes_it_again(
    lambda_api, lambda_runtime, clips, django_capture_on_commit_callbacks
):
    """The function's time limit killed a worker mid-job: its lease expires, and the watchdog
    (the stage's every-minute schedule, routed by rule name) dispatches it again."""
    video = video_create(source=clips["silent"])
    stuck = ProcessingJob.objects.create(
        video=video,
        parts=["renditions"],
        state=JobState.RUNNING,
        attempt=1,
        worker="timed-out",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    event = lambda_runtime.scheduled_event("transcoding.jobs.dispatch.zappa.requeue_stuck")
    with django_capture_on_commit_callbacks(execute=True):
        result = lambda_runtime.deliver(event)
    assert result["requeued"] == [stuck.pk] and result["failed"] == []
    assert [(i["FunctionName"], i["payload"]["task_path"], i["payload"]["args"]) for i in lambda_api] == [
        ("videoproject-dev-encoder", RUN_JOB, [stuck.pk])
    ]
    stuck.refresh_from_db()
    assert stuck.state == JobState.QUEUED


@pytest.fixture
def media_bucket(moto_endpoint, settings, lambda_runtime):  # noqa: F811
    """The stage's media bucket (from its AWS_STORAGE_BUCKET_NAME) on the moto S3 server, as
    Django's default storage."""
    name = lambda_runtime.settings.ENVIRONMENT_VARIABLES["AWS_STORAGE_BUCKET_NAME"]
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    settings.STORAGES = {**settings.STORAGES, "default": storage_settings(name, moto_endpoint)}
    settings.STORAGE = "s3"
    settings.TRANSCODING_SERVE_MEDIA = False
    return SimpleNamespace(client=client, name=name, endpoint=moto_endpoint)


def object_created(bucket: str, key: str, size: int, function_name: str) -> dict:
    """An S3 ObjectCreated notification as S3 sends it (the key URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2025-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:CompleteMultipartUpload",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": function_name,  # Zappa names the notification so
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "0A1B2C"},
                },
            }
        ]
    }


@pytest.mark.django_db
def test_s3_object_created_in_incoming_becomes_a_queued_video(
    media_bucket, lambda_runtime, clips, django_capture_on_commit_callbacks
):
    key = "incoming/Holiday clip é.mp4"
    data = clips["silent"].read_bytes()
    media_bucket.client.put_object(Bucket=media_bucket.name, Key=key, Body=data)
    event = object_created(media_bucket.name, key, len(data), lambda_runtime.cli.lambda_name)

    with django_capture_on_commit_callbacks(execute=True):
        [video_id] = lambda_runtime.deliver(event)
    video = Video.objects.get(pk=video_id)
    assert video.source.name == key and video.source_size == len(data)  # the object is the original
    assert (video.title, video.original_filename, video.status) == (
        "Holiday clip é",
        "Holiday clip é.mp4",
        "queued",
    )
    assert outbox == [video.jobs.get().pk]  # and queued through the dispatcher

    with django_capture_on_commit_callbacks(execute=True):
        assert lambda_runtime.deliver(event) == []  # S3 delivers at least once
    assert Video.objects.count() == 1 and len(outbox) == 1


@pytest.mark.django_db
def test_s3_events_for_objects_outside_the_storage_are_ignored(media_bucket, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": storage_settings(media_bucket.name, media_bucket.endpoint, location="media"),
    }
    event = object_created("another-bucket", "incoming/a.mp4", 1, "videoproject-dev-encoder")
    assert backend.ingest_s3_object(event) == []
    event = object_created(media_bucket.name, "incoming/a.mp4", 1, "videoproject-dev-encoder")
    assert backend.ingest_s3_object(event) == []  # outside the storage's key prefix
    event = object_created(media_bucket.name, "incoming/", 0, "videoproject-dev-encoder")
    assert backend.ingest_s3_object(event) == []  # a "folder"
    assert not Video.objects.exists()


# --- the two functions of an environment: the site and the encoder ---------------------------

ENVIRONMENTS = ["dev", "prod"]
# Lambda's default concurrency per account and region, and what AWS keeps unreserved.
ACCOUNT_CONCURRENCY, UNRESERVED_MINIMUM = 1000, 100
# What the web package leaves out: the encoder's binaries and the speech stack.
ENCODER_ONLY_PACKAGES = {
    *("imageio_ffmpeg", "numpy", "numpy.libs"),
    *(
        "faster_whisper",
        "ctranslate2",
        "ctranslate2.libs",
        "onnxruntime",
        "tokenizers",
        "huggingface_hub",
        "hf_xet",
    ),
}


def stages(environment: str) -> tuple:
    return zappa_cli(environment), zappa_cli(f"{environment}_encoder")


def encodes_in_flight(env: dict) -> int:
    """The stage's cap on encodes in flight (its environment, else the product's default)."""
    raw = env.get("TRANSCODING_MAX_ENCODES_IN_FLIGHT")
    return int(raw) if raw else int(SETTINGS["MAX_ENCODES_IN_FLIGHT"].default)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_stage_settings(environment):
    web, encoder = stages(environment)
    assert (web.lambda_name, encoder.lambda_name) == (
        f"videoproject-{environment}",
        f"videoproject-{environment}-encoder",
    )
    for cli in (web, encoder):
        assert cli.django_settings == "videoproject.settings"
        # The wheels (av, onnxruntime, numpy: manylinux_2_28) need a newer glibc than the
        # python3.11 runtime's Amazon Linux 2 has; python3.12 runs on Amazon Linux 2023.
        assert cli.runtime == "python3.12"
        assert (
            cli.stage_config["slim_handler"] is True and cli.stage_config["use_precompiled_packages"] is False
        )

    # What both functions must share (one database, one bucket, one backend, one cap, the same
    # worker function): the site inherits the encoder stage's environment whole.
    assert web.environment_variables == encoder.environment_variables
    env = encoder.environment_variables
    assert env["STORAGE"] == "s3" and env["TRANSCODING_DISPATCH"] == "zappa"
    assert env["AWS_STORAGE_BUCKET_NAME"] == f"videoproject-media-{environment}"
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["TRANSCODING_ZAPPA_WORKER_FUNCTION"] == encoder.lambda_name

    # The encoder: the largest function, no API Gateway, the watchdog and the S3 router, and
    # reserved concurrency a little above the product's cap on encodes in flight.
    assert (encoder.memory_size, encoder.timeout_seconds, encoder.ephemeral_storage["Size"]) == (
        10240,
        900,
        10240,
    )
    assert encoder.use_apigateway is False and encoder.stage_config["keep_warm"] is False
    cap = encodes_in_flight(env)
    assert cap < encoder.lambda_concurrency <= cap + max(10, cap // 40)
    config = encoder.stage_config
    schedules = {e["function"]: e["expression"] for e in config["events"] if "expression" in e}
    assert schedules == {"transcoding.jobs.dispatch.zappa.requeue_stuck": "rate(1 minute)"}
    [s3_event] = [e for e in config["events"] if "event_source" in e]
    assert s3_event["event_source"]["arn"] == f"arn:aws:s3:::{env['AWS_STORAGE_BUCKET_NAME']}"
    for event in config["events"]:
        assert callable(import_and_get_function(event["function"]))
    # The handler finds a scheduled function again from the rule name `zappa schedule` makes.
    rule = Zappa(load_credentials=False, aws_region=REGION).get_scheduled_event_name(
        config["events"][0], config["events"][0]["function"], encoder.lambda_name
    )
    assert rule.split("-")[-1] == "transcoding.jobs.dispatch.zappa.requeue_stuck"

    # The site: small and short behind API Gateway; nothing in it runs an encode (its jobs go
    # to the encoder, it has no events, and its package has no ffmpeg).
    assert (web.memory_size, web.timeout_seconds, web.ephemeral_storage["Size"]) == (1024, 30, 1024)
    assert web.use_apigateway is True and web.lambda_concurrency is None
    assert web.stage_config["events"] == []
    assert env["TRANSCODING_ZAPPA_WORKER_FUNCTION"] != web.lambda_name
    assert set(web.stage_config["exclude"]) >= ENCODER_ONLY_PACKAGES
    assert not ENCODER_ONLY_PACKAGES & set(config["exclude"])


def test_reserved_concurrency_leaves_the_account_its_unreserved_pool():
    """dev and prod in one account: the encoders' reservations together leave AWS's minimum
    unreserved pool, and more, for the site functions (which reserve nothing)."""
    reserved = sum(zappa_cli(f"{e}_encoder").lambda_concurrency for e in ENVIRONMENTS)
    assert reserved <= ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM


@pytest.mark.parametrize(
    "current, configured, target",
    [
        (None, "", None),  # off Lambda: Zappa runs the task inline
        (None, "videoproject-dev-encoder", None),  # off Lambda, even with a worker function
        ("videoproject-dev", "", "videoproject-dev"),  # one function does everything
        ("videoproject-dev", "videoproject-dev-encoder", "videoproject-dev-encoder"),  # the site
        ("videoproject-dev-encoder", "videoproject-dev-encoder", "videoproject-dev-encoder"),  # fan-out
    ],
)
def test_worker_function(current, configured, target):
    assert backend.worker_function(current, configured) == target


def api_gateway_event(method: str, path: str, headers: dict, body: str) -> dict:
    """A request as API Gateway (REST, proxy integration) hands it to the function."""
    return {
        "httpMethod": method,
        "path": path,
        "resource": "/{proxy+}",
        "headers": {"Host": "testserver", "X-Forwarded-Proto": "https", **headers},
        "queryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {"stage": "dev", "identity": {"sourceIp": "203.0.113.9"}, "httpMethod": method},
        "body": body,
        "isBase64Encoded": False,
    }


@pytest.mark.django_db(transaction=True)
def test_the_site_function_sends_a_job_to_the_encoder_function(
    lambda_api, web_runtime, lambda_runtime, clips
):
    """A request to the site (Zappa's handler on the `dev` stage, through Django) queues a job:
    after commit, inside that request, the job goes to the encoder function by name, and the
    site's own function runs nothing."""
    video = video_create(source=clips["silent"])
    _, key = api_key_create(user=make_user("editor", "change_video", "view_video"), name="ci", scope="write")
    event = api_gateway_event(
        "POST",
        f"/api/v1/videos/{video.pk}/reprocess/",
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        json.dumps({"parts": ["poster"]}),
    )
    response = web_runtime.deliver(event)
    assert response["statusCode"] == 202, response.get("body")
    assert json.loads(response["body"])["status"] == "queued"
    assert web_runtime.archives == [
        "s3://videoproject-zappa-deployments-dev/dev_videoproject_current_project.tar.gz"
    ]

    job = ProcessingJob.objects.get(video=video)
    [invoke] = lambda_api
    assert (invoke["FunctionName"], invoke["InvocationType"]) == (lambda_runtime.cli.lambda_name, "Event")
    assert lambda_runtime.cli.lambda_name == "videoproject-dev-encoder"
    assert (invoke["payload"]["task_path"], invoke["payload"]["args"]) == (RUN_JOB, [job.pk])
    assert (job.state, job.attempt) == (JobState.QUEUED, 0)  # nothing ran on the site's function


def test_s3_event_source_is_configured_with_the_prefix_filter():
    """What `zappa schedule` does with the stage's S3 event: the bucket notification, with the
    `prefix` key Zappa reads (it ignores kappa's old `key_filters` list)."""
    event = next(e for e in zappa_cli("dev_encoder").stage_config["events"] if "event_source" in e)
    source = event["event_source"]
    bucket = source["arn"].split(":::")[-1]
    with mock_aws(config={"lambda": {"use_docker": False}}):
        session = boto3.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        session.client("s3").create_bucket(Bucket=bucket)
        role = session.client("iam").create_role(RoleName="zappa-test", AssumeRolePolicyDocument="{}")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
        function = session.client("lambda").create_function(
            FunctionName="videoproject-dev-encoder",
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="handler.lambda_handler",
            Code={"ZipFile": code.getvalue()},
        )
        assert add_event_source(source, function["FunctionArn"], event["function"], session) == "successful"
        [config] = session.client("s3").get_bucket_notification_configuration(Bucket=bucket)[
            "LambdaFunctionConfigurations"
        ]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"].lower(): r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "incoming/"}


# --- zappa package -----------------------------------------------------------------------------

RUNTIME_VENVS = ROOT / ".cache" / "zappa-runtime"


def runtime_closure(requirements: list[str]) -> set[str]:
    """The distributions `requirements` need, as installed here: the pins and, through each
    installed distribution's metadata, what they require (markers evaluated, extras followed)."""
    wanted, seen = [(Requirement(r), ()) for r in requirements], set()
    while wanted:
        requirement, extras = wanted.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": e}) for e in (extras or ("",))
        ):
            continue
        if (name, tuple(sorted(requirement.extras))) in seen:
            continue
        seen.add((name, tuple(sorted(requirement.extras))))
        for needed in importlib.metadata.distribution(name).requires or []:
            wanted.append((Requirement(needed), tuple(requirement.extras)))
    return {name for name, _ in seen}


def seed_site_packages(venv: Path, names: set[str]) -> set[str]:
    """Hard-link the files of the installed distributions `names` (from their RECORD) into the
    new virtualenv's site-packages: the copy a pip install would unpack, in seconds instead of
    the minutes pip takes to unpack them again. Scripts outside site-packages are left out,
    and what the new virtualenv has already (its own pip) is left to `pip install`. Returns
    the names it could not seed (installed without a file list)."""
    [target] = venv.glob("lib/python*/site-packages")
    present = {
        canonicalize_name(d.metadata["Name"]) for d in importlib.metadata.distributions(path=[str(target)])
    }
    missing = names - present
    for distribution in importlib.metadata.distributions():
        if canonicalize_name(distribution.metadata["Name"]) not in names - present:
            continue
        if distribution.files:
            missing.discard(canonicalize_name(distribution.metadata["Name"]))
        for file in distribution.files or []:
            source = Path(distribution.locate_file(file))
            if str(file).startswith("..") or not source.is_file():
                continue
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                try:
                    os.link(source, destination)
                except OSError:  # another file system
                    shutil.copy2(source, destination)
    return missing


@pytest.fixture(scope="session")
def runtime_venv() -> Path:
    """A virtualenv with only requirements.txt (and the zappa in use here, until
    requirements.txt pins it), as on a deploy machine. Made once per requirements and kept
    under .cache/: seeded with this environment's copies of exactly those distributions, then
    `pip install` of the same requirements checks that nothing is missing (and fills a gap).
    Beside it, the seed of the slim handler's virtualenv (see tests/support/zappa_package.py)."""
    zappa_pin = f"zappa=={importlib.metadata.version('zappa')}"
    requirements = (ROOT / "requirements.txt").read_text()
    layout = zappa_package.SEED  # a cache made before the seed existed is made again
    key = hashlib.sha256(f"{sys.version}\n{requirements}\n{zappa_pin}\n{layout}".encode()).hexdigest()[:12]
    venv = RUNTIME_VENVS / key
    RUNTIME_VENVS.mkdir(parents=True, exist_ok=True)
    with open(RUNTIME_VENVS / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs share it
        if not (venv / "complete").exists():
            for old in RUNTIME_VENVS.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pins = [line.split("#")[0].strip() for line in requirements.splitlines()]
            seed_site_packages(venv, runtime_closure([pin for pin in pins if pin] + [zappa_pin]))
            subprocess.run(
                [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-r",
                 ROOT / "requirements.txt", zappa_pin],
                check=True,
            )  # fmt: skip
            seed = venv / zappa_package.SEED  # the slim handler's virtualenv, as Zappa would pip it
            python = f"python{sys.version_info.major}.{sys.version_info.minor}"
            (seed / "lib" / python / "site-packages").mkdir(parents=True)
            unseeded = seed_site_packages(seed, runtime_closure([zappa_pin, "setuptools"]))
            assert not unseeded, f"the handler's virtualenv would lack {sorted(unseeded)}"
            (venv / "complete").touch()
    return venv


# Not copied: what is not the project's (virtualenvs, VCS, caches). Local data (media/, run/,
# databases, .env) is planted in the copy instead, to see that the package leaves it out.
NOT_COPIED = {".git", ".cache", ".pytest_cache", ".ruff_cache", "media", "run", "staticfiles", "handler_venv"}
PLANTED = {
    "media/videos/1/init.mp4": b"m",
    "run/test-db.sqlite3": b"d",
    "db.sqlite3": b"d",
    ".env": b"SECRET=1",
}

# `zappa package` without downloads and with fast compression: see the script's docstring.
ZAPPA_PACKAGE = ROOT / "tests" / "support" / "zappa_package.py"


def copy_project(target: Path) -> None:
    def ignore(directory, names):
        if Path(directory) != ROOT:
            return set()
        return {
            n
            for n in names
            if n in NOT_COPIED or n.startswith((".venv", "db.sqlite3")) or n.endswith(".tar.gz")
        }

    shutil.copytree(ROOT, target, ignore=ignore)
    for name, data in PLANTED.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)


@dataclass(frozen=True)
class Package:
    """What `zappa package STAGE` built: the handler zip and the project archive's files."""

    project: Path
    handler_zip: Path
    archive: Path
    sizes: dict  # unpacked bytes by top-level name

    @property
    def unpacked(self) -> int:
        return sum(self.sizes.values())

    def files(self) -> set[str]:
        with tarfile.open(self.archive) as archive:
            return {m.name for m in archive if m.isfile()}


PACKAGED_STAGES = ("dev", "dev_encoder")


@pytest.fixture(scope="module")
def packages(runtime_venv, tmp_path_factory) -> dict[str, Package]:
    """`zappa package` of the site's stage and the encoder's, run side by side (each is mostly
    copying and compressing), each in its own copy of the project: a slim package builds its
    handler's virtualenv in `./handler_venv` (pip installs into it, the zip copies it, then it
    is deleted), so two runs in one directory pull files from under each other."""
    root = tmp_path_factory.mktemp("zappa-package")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        VIRTUAL_ENV=str(runtime_venv),
        PATH=f"{runtime_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,  # no credentials anywhere: packaging needs none
        AWS_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",  # Zappa's pip may not reach an index: packaging downloads nothing
    )
    runs = {}
    for stage in PACKAGED_STAGES:
        project = root / stage / "videoproject"
        copy_project(project)
        handler_zip = root / f"{stage}-handler.zip"
        command = [
            runtime_venv / "bin" / "python",
            ZAPPA_PACKAGE,
            "package",
            stage,
            "-o",
            str(handler_zip),
        ]
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        runs[stage] = (project, handler_zip, process)
    outputs = {}
    try:
        for stage, (_, _, process) in runs.items():
            outputs[stage], _ = process.communicate(timeout=900)
    finally:
        for _, _, process in runs.values():
            if process.poll() is None:  # timed out: leave nothing running
                process.kill()
                process.wait()
    built = {}
    for stage, (project, handler_zip, process) in runs.items():
        output = outputs[stage]
        assert process.returncode == 0 and "Package created" in output, output
        [archive] = project.glob(f"{zappa_cli(stage).lambda_name}-[0-9]*.tar.gz")
        sizes = {}
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isfile():
                    top = member.name.split("/")[0]
                    sizes[top] = sizes.get(top, 0) + member.size
        built[stage] = Package(project, handler_zip, archive, sizes)
        assert not (project / "handler_venv").exists()
    return built


def describe(package: Package) -> str:
    largest = ", ".join(
        f"{k} {v / MiB:.0f}" for k, v in sorted(package.sizes.items(), key=lambda kv: -kv[1])[:6]
    )
    return (
        f"handler zip {package.handler_zip.stat().st_size / MiB:.1f} MiB; project archive"
        f" {package.archive.stat().st_size / MiB:.1f} MiB (gzip -1), {package.unpacked / MiB:.1f} MiB"
        f" unpacked; largest (MiB): {largest}"
    )


@pytest.mark.slow
def test_zappa_package_builds_a_slim_handler_within_lambda_limits(packages):
    """The encoder's package: everything, too large for a function's code, so slim."""
    package = packages["dev_encoder"]
    # The function's code: Zappa's handler and its dependencies, the generated settings.
    with zipfile.ZipFile(package.handler_zip) as archive:
        handler_unzipped = sum(i.file_size for i in archive.infolist())
        names = set(archive.namelist())
        generated = archive.read("zappa_settings.py").decode()
    assert {"handler.py", "django_zappa_app.py", "zappa/asynchronous.py"} <= names
    assert "transcoding/jobs/tasks.py" not in names
    assert "SLIM_HANDLER=True" in generated and "DJANGO_SETTINGS='videoproject.settings'" in generated
    assert (
        "ARCHIVE_PATH='s3://videoproject-zappa-deployments-dev/dev_encoder_videoproject_current_project.tar.gz'"
        in generated
    )
    assert handler_unzipped < LAMBDA_UNZIPPED_LIMIT
    assert package.handler_zip.stat().st_size < LAMBDA_ZIPPED_LIMIT

    # The project archive: unpacked into /tmp at cold start, so it must leave room for the work.
    files = package.files()
    assert {"manage.py", "videoproject/settings.py", "transcoding/jobs/dispatch/zappa.py"} <= files
    assert any(re.fullmatch(r"imageio_ffmpeg/binaries/ffmpeg-linux-x86_64.*", f) for f in files)
    assert {"av/__init__.py", "django/__init__.py", "storages/backends/s3.py"} <= files
    assert not {n for n in files if n.split("/")[0] in ("media", "run", "tests", "test-artifacts", "bench")}
    assert not {"db.sqlite3", ".env"} & files
    assert package.unpacked > LAMBDA_UNZIPPED_LIMIT  # why slim_handler: it could not be the function's code
    ephemeral = zappa_cli("dev_encoder").ephemeral_storage["Size"] * MiB
    assert package.unpacked < ephemeral / 4  # three quarters of /tmp stay for a job's work files
    print(f"\nencoder: {describe(package)}")


@pytest.mark.slow
def test_the_site_package_has_no_encoder_and_serves_without_it(packages, tmp_path):
    """The site's package leaves out ffmpeg and the speech stack (a smaller cold start), and
    Django starts from the unpacked archive alone, with every URL's view importable."""
    web, encoder = packages["dev"], packages["dev_encoder"]
    files = web.files()
    assert {
        "manage.py",
        "transcoding/jobs/dispatch/zappa.py",
        "av/__init__.py",
        "django/__init__.py",
    } <= files
    assert not {n.split("/")[0] for n in files} & ENCODER_ONLY_PACKAGES
    assert web.unpacked < encoder.unpacked / 2
    assert web.unpacked < zappa_cli("dev").ephemeral_storage["Size"] * MiB / 2
    print(f"\nsite: {describe(web)}")

    unpacked = tmp_path / "site"
    started = time.process_time()
    with tarfile.open(web.archive) as archive:  # as the slim handler does at a cold start
        archive.extractall(unpacked, filter="data")
    print(f"site archive unpacked in {time.process_time() - started:.1f} s CPU (information, not a target)")
    script = (
        "import django; django.setup(); "
        "from django.urls import get_resolver; "
        "names = [p.lookup_str for p in get_resolver().url_patterns if hasattr(p, 'lookup_str')]; "
        "import transcoding.jobs.dispatch.zappa, transcoding.web.views, transcoding.api.views; "
        "import sys; assert 'imageio_ffmpeg' not in sys.modules; print('site ok')"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],  # -S: no site-packages, only the archive
        cwd=unpacked,
        env={"PYTHONPATH": str(unpacked), "DJANGO_SETTINGS_MODULE": "videoproject.settings", "DEBUG": "1",
             "TRANSCODING_DISPATCH": "zappa", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and "site ok" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.django_db
def test_a_long_video_fans_out_one_invocation_per_chunk(
    lambda_api, lambda_runtime, tmp_path, settings, django_capture_on_commit_callbacks
):
    """On Lambda the root invocation dispatches the other chunks as invocations of their own
    (the default chunk there is 30 s: 32 s of whole segments); delivered in any order, the
    last one stitches."""

    settings.TRANSCODING_CHUNK_SECONDS = settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = None  # the defaults
    assert chunk_seconds() == 30.0
    source = make_clip(tmp_path / "long.mp4", seconds=70, size="320x180")
    with django_capture_on_commit_callbacks(execute=True):
        video, root = request_processing(source)
    [first] = lambda_api
    with django_capture_on_commit_callbacks(execute=True):
        assert lambda_runtime.deliver(first["payload"]) == "done"  # chunk 0, audio, poster
    chunk_invokes = lambda_api[1:]
    assert {i["FunctionName"] for i in lambda_api} == {"videoproject-dev-encoder"}  # the fan-out too
    chunks = list(ProcessingJob.objects.filter(parent=root).order_by("chunk"))
    assert [c.chunk for c in chunks] == [1] and [i["payload"]["args"] for i in chunk_invokes] == [
        [chunks[0].pk]
    ]
    assert Video.objects.get(pk=video.pk).playable  # while chunk 1 waits for its invocation
    assert lambda_runtime.deliver(chunk_invokes[0]["payload"]) == "done"
    video = Video.objects.get(pk=video.pk)
    checks.assert_all_outputs(video, 70.0, ["180p"], audio=True)
    assert [s[0] for s in video.renditions.get(name="180p").segments][-1] == "seg_00018.m4s"
