"""Celery backend: a job id travels through the broker to a `celery -A videoproject worker`.

One shared task per job kind, taking ids only. Delivery is at least once: the task is
acknowledged late (after it returns), and a message whose worker died is delivered again
(`reject_on_worker_lost` when only the pool process died; the broker's visibility timeout when
the whole worker did). The job's conditional claim makes any duplicate a no-op ("skipped").

Settings are the `CELERY_*` block of videoproject/settings.py; the app is videoproject/celery.py.
"""

import base64
import json
import logging
from datetime import timedelta

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from transcoding.jobs import tasks
from transcoding.jobs.dispatch.base import BaseDispatcher, Waiting
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import DeliveryState, JobState, ProcessingJob, WebhookDelivery

log = logging.getLogger(__name__)

# A redelivered message that finds the job still leased to its dead worker waits this much
# past the lease's expiry before claiming it.
LEASE_MARGIN_SECONDS = 1.0


# Every task here: acknowledged after it returns, redelivered when its worker dies. The claim
# itself needs the database; when it is away, try again rather than lose the message (the
# watchdog would also re-dispatch the work once it is due).
AT_LEAST_ONCE = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}


@shared_task(name="transcoding.process_job", **AT_LEAST_ONCE)
def process_job(self, job_id: int) -> str:
    """Run one ProcessingJob; returns "done", "retry", "waiting", "failed" or "skipped"."""
    outcome = tasks.process_job(job_id)
    if outcome in ("retry", "waiting"):
        _schedule_retry(job_id)
    elif outcome == "skipped":
        if (self.request.delivery_info or {}).get("redelivered"):
            _await_dead_lease(job_id)
        _not_yet_due(job_id)
    return outcome


@shared_task(name="transcoding.deliver_webhook", **AT_LEAST_ONCE)
def deliver_webhook(self, delivery_id: int) -> str:
    """One attempt of a webhook delivery. A failed attempt is sent again at its backoff's end
    (a message with that eta: the longest backoff, 10 h, is under the broker's visibility
    timeout); a redelivered message that finds the delivery leased to a dead worker tries
    again once the lease expires. The watchdog covers anything lost beyond that."""
    outcome = tasks.deliver_webhook(delivery_id)
    if outcome == "retry":
        _schedule_delivery(delivery_id, DeliveryState.PENDING, "next_attempt_at", 0)
    elif outcome == "skipped" and (self.request.delivery_info or {}).get("redelivered"):
        _schedule_delivery(delivery_id, DeliveryState.SENDING, "lease_expires_at", LEASE_MARGIN_SECONDS)
    return outcome


def _schedule_delivery(delivery_id: int, state: str, field: str, margin: float) -> None:
    row = WebhookDelivery.objects.filter(pk=delivery_id, state=state).values(field).first()
    if row is None or row[field] is None:
        return
    deliver_webhook.apply_async((delivery_id,), eta=row[field] + timedelta(seconds=margin))


@shared_task(name="transcoding.requeue_stuck")
def requeue_stuck() -> list[list[int]]:
    """The watchdog, run by beat: requeue and re-dispatch jobs whose lease expired, fail those
    with no attempts left, re-dispatch queued jobs whose delivery was lost. Returns the job
    ids of each group, as `jobs_recover_stuck` does."""
    return [list(ids) for ids in jobs_recover_stuck()]


def _schedule_retry(job_id: int) -> None:
    """`job_fail` put the job back in the queue with a backoff, or `job_wait` until its step
    wants to look again (`next_attempt_at`): deliver it again at that time. The claim refuses
    it earlier, and `_not_yet_due` sends such an early message on again."""
    row = ProcessingJob.objects.filter(pk=job_id, state=JobState.QUEUED).values("next_attempt_at").first()
    if row is None:
        return
    eta = row["next_attempt_at"] or timezone.now()
    log.info("job %s: retrying at %s", job_id, eta.isoformat())
    process_job.apply_async((job_id,), eta=eta)


def _not_yet_due(job_id: int) -> None:
    """A message that arrived before its job was due (a broker or worker clock ahead of the
    database's) was refused by the claim; it may be the job's only message (a job waiting for
    Transcribe has no other), so it is sent on for the due time rather than dropped."""
    due = ProcessingJob.objects.filter(
        pk=job_id, state=JobState.QUEUED, next_attempt_at__gt=timezone.now()
    ).exists()
    if due:
        _schedule_retry(job_id)


def _await_dead_lease(job_id: int) -> None:
    """A redelivered message (its worker died before acknowledging it) can arrive while the
    dead worker's lease still runs, so the claim refuses it. Rather than drop the only message
    of the job, deliver it once more just after the lease expires: then the claim succeeds if
    the worker is really gone, and is refused again (for good) if it is alive and heart-beating."""
    row = ProcessingJob.objects.filter(pk=job_id, state=JobState.RUNNING).values("lease_expires_at").first()
    if row is None or row["lease_expires_at"] is None:
        return
    eta = row["lease_expires_at"] + timedelta(seconds=LEASE_MARGIN_SECONDS)
    log.info("job %s: redelivered while leased; trying again at %s", job_id, eta.isoformat())
    process_job.apply_async((job_id,), eta=eta)


def _task_and_id(raw: bytes) -> tuple[str, int] | tuple[None, None]:
    """The task name and its one argument (an id) of a message as kombu stores it in Redis
    (JSON, its body base64-encoded JSON of (args, kwargs, embed)); (None, None) for anything
    else."""
    try:
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return message["headers"]["task"], int(json.loads(body)[0][0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None


# The queue for the start of every video (see CELERY_TASK_QUEUES in settings).
FIRST_QUEUE = "transcoding-first"


class CeleryDispatcher(BaseDispatcher):
    keeps_messages = True

    def enqueue(self, job_id: int) -> None:
        """A video's first chunk goes to the first queue, later chunks to the default one."""
        later_chunk = ProcessingJob.objects.filter(pk=job_id, parent__isnull=False).exists()
        if later_chunk:
            process_job.delay(int(job_id))
        else:
            process_job.apply_async((int(job_id),), queue=FIRST_QUEUE)

    def waiting(self) -> Waiting | None:
        """The jobs and deliveries whose `process_job` or `deliver_webhook` message waits in
        a queue of a Redis broker (every queue, every priority level); None for another
        broker. Only the queues, not the messages workers hold unacknowledged: a job that is
        due and unclaimed while its
        message sits in a worker's hands past the grace was dropped by that worker (its
        connection to the broker was lost, and Redis gives it back only after the visibility
        timeout, 12 h). One read of every waiting message: the watchdog's cost grows with the
        backlog, once a minute. None too while the broker cannot be reached: nothing could be
        sent to it anyway, and the watchdog's other work goes on."""
        try:
            return self._waiting()
        except (BrokerUnavailable, OSError) as exc:
            log.warning("watchdog: the broker cannot be read (%s); nothing is sent again", exc)
            return None

    def _waiting(self) -> Waiting | None:
        app = process_job.app
        with app.connection_for_read() as connection:
            if connection.transport.driver_type != "redis":
                return None
            channel = connection.default_channel
            prefix = getattr(channel, "global_keyprefix", "") or ""
            # LRANGE is not among the commands kombu's client prefixes: the key is given whole.
            keys = [
                prefix + channel._q_for_pri(queue, priority)
                for queue in app.conf.task_queues or [app.conf.task_default_queue]
                for priority in channel.priority_steps
            ]
            found = Waiting(set(), set())
            for key in keys:
                for raw in channel.client.lrange(key, 0, -1):
                    task, object_id = _task_and_id(raw)
                    if task == process_job.name:
                        found.jobs.add(object_id)
                    elif task == deliver_webhook.name:
                        found.deliveries.add(object_id)
            return found

    def deliver_webhook(self, delivery_id: int) -> None:
        """Webhooks go to the first queue: they are short, and must not wait behind chunks."""
        deliver_webhook.apply_async((int(delivery_id),), queue=FIRST_QUEUE)
