"""AWS Lambda through Zappa: every job runs in its own asynchronous invocation of the worker
function: the encoder stage's function, named by TRANSCODING_ZAPPA_WORKER_FUNCTION, so that
the site can be a small function of its own; with the setting empty, the calling function
itself (one function does everything). See docs/deploy-zappa.md.

- `ZappaDispatcher.enqueue(job_id)` sends `run_job(job_id)`, a `zappa.asynchronous.task`. On
  Lambda (AWS_LAMBDA_FUNCTION_NAME is set) that is an asynchronous Invoke of the worker function
  with `{"command": "zappa.asynchronous.route_lambda_task", "task_path":
  "transcoding.jobs.dispatch.zappa.run_job", "args": [job_id], ...}`; Zappa's handler there
  routes it back to `run_job`. Anywhere else Zappa runs the task inline, in the calling
  process: useful in tests, not a way to run a site (use the `local` backend on one machine).
- A job that failed transiently ("retry") raises `RetryLater` out of the invocation, so Lambda's
  asynchronous retry (up to 2, set on the function) delivers it again; any other exception
  propagates too. The conditional claim makes duplicates harmless; the watchdog
  (`requeue_stuck`, scheduled every minute by the stage's `events`) dispatches due retries and
  jobs whose worker died (timeout, out of memory) again.
- A job whose step waits for an outside service ("waiting": a subtitles job whose Amazon
  Transcribe job runs) ends its invocation normally; it is queued with the time it wants to
  look again, and the watchdog dispatches it once that time (plus the redispatch grace) has
  passed. No invocation stays open while Transcribe works.
- `deliver_webhook(delivery_id)` sends one webhook attempt in its own invocation; retries
  after a backoff are dispatched by the watchdog.
- `ingest_s3_object` is the optional S3 ObjectCreated router: an object stored under
  `incoming/` becomes a video and is queued.

Payloads carry ids only. This and the other dispatch backends are the only modules that
import zappa.
"""

import logging
import os
from urllib.parse import unquote_plus

from django.db import connections
from zappa.asynchronous import run, task

from transcoding.conf import settings
from transcoding.ingest.create import video_create_from_stored
from transcoding.jobs import tasks
from transcoding.jobs.dispatch.base import BaseDispatcher
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.services import video_request_processing
from transcoding.storage.backends import media_store

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The job failed transiently and is queued again; raised so that Lambda re-delivers it."""


def _drop_stale_connections() -> None:
    """A warm Lambda container keeps its database connections between invocations, and no
    request signals close them (only web requests have those): drop broken or expired ones
    before and after each task, as Django does around a request. Never inside a transaction."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


@task
def run_job(job_id: int) -> str:
    """Run one ProcessingJob; returns "done", "waiting", "failed" or "skipped" (a duplicate
    delivery)."""
    _drop_stale_connections()
    try:
        outcome = tasks.process_job(job_id)
    finally:
        _drop_stale_connections()
    if outcome == "retry":
        raise RetryLater(f"Job {job_id} failed transiently and is queued for another attempt.")
    return outcome


@task
def deliver_webhook(delivery_id: int) -> str:
    """One attempt of a webhook delivery. A failed attempt is not raised (Lambda's own retry
    would not wait for the backoff): the watchdog, every minute, sends due retries and
    deliveries whose invocation died."""
    _drop_stale_connections()
    try:
        return tasks.deliver_webhook(delivery_id)
    finally:
        _drop_stale_connections()


def worker_function(current: str | None, configured: str | None) -> str | None:
    """The Lambda function a task is sent to. On Lambda (`current`, the function running this
    code, is set) the configured worker function, or `current` itself when none is configured,
    so that the web function, the encoder's fan-out and its watchdog all send work to the
    encoder. Off Lambda None: Zappa then runs the task inline, as it always did."""
    if not current:
        return None
    return configured or current


def _send(task_function, *args):
    """Send one task to the worker function (or run it inline off Lambda). Zappa's `task`
    decorator fixes a remote function at import; the name here is a setting, read per call."""
    target = worker_function(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"), settings.ZAPPA_WORKER_FUNCTION)
    if target is None:
        return task_function(*args)
    return run(task_function, args=list(args), remote_aws_lambda_function_name=target)


class ZappaDispatcher(BaseDispatcher):
    def enqueue(self, job_id: int) -> None:
        try:
            _send(run_job, int(job_id))
        except RetryLater:
            # Only when Zappa ran the task inline (not on Lambda): the job is back in the queue
            # with its backoff, and the caller (a commit hook) must not fail because of it.
            log.warning("job %s: ran inline and failed transiently; queued for a retry", job_id)

    def deliver_webhook(self, delivery_id: int) -> None:
        _send(deliver_webhook, int(delivery_id))


def requeue_stuck(event=None, context=None) -> dict:
    """The watchdog, run every minute by the stage's `events` schedule."""
    _drop_stale_connections()
    requeued, failed, redispatched = jobs_recover_stuck()
    if requeued or failed or redispatched:
        log.info("watchdog: requeued %s, failed %s, dispatched again %s", requeued, failed, redispatched)
    return {"requeued": requeued, "failed": failed, "redispatched": redispatched}


def _storage_name(bucket: str, key: str) -> str | None:
    """The default storage's name for an object key of `bucket`; None when that object is
    not reachable through the storage (another bucket, outside the storage's key prefix)."""
    store = media_store()
    if not store.remote:  # local disk (tests): keys are names
        return key
    return store.name(key) if bucket == store.bucket_name else None


def ingest_s3_object(event, context=None) -> list[int]:
    """S3 ObjectCreated notifications (prefix `incoming/`): each new object becomes a video
    (the object stays where it is and is the original) and is queued. Returns the new ids."""
    _drop_stale_connections()
    created = []
    for record in event.get("Records", []):
        s3 = record.get("s3") or {}
        key = unquote_plus(s3.get("object", {}).get("key", ""))  # keys arrive URL-encoded
        if not key or key.endswith("/"):
            continue
        name = _storage_name(s3.get("bucket", {}).get("name", ""), key)
        if name is None:
            log.warning("ingest: %s is not in the media storage; ignored", key)
            continue
        video = video_create_from_stored(name)
        if video is None:
            log.info("ingest: %s already has a video; duplicate event ignored", key)
            continue
        video_request_processing(video)
        created.append(video.pk)
    return created
