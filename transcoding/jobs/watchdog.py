"""The watchdog (`manage.py requeue_stuck`, a Celery beat entry, a Zappa event every minute):
what a dead worker or a lost delivery leaves behind is put right.

- Running jobs whose lease expired go back to the queue and are dispatched again; those with
  no attempts left fail, and so do the parts they were making.
- Queued jobs nobody has claimed although they are due (a retry whose backoff has passed, a
  step whose wait is over, a dispatch lost on the way) are dispatched again, unless the
  backend's queue holds them (`keeps_messages`; a Celery broker that can be read, Redis,
  is asked which jobs it holds, so what it lost in an outage is sent again). Claiming makes
  a duplicate harmless.
- Encode jobs held back by the caps on encodes in flight (`status.slots`) are released into
  the slots free now: a running encode hands its slot on when it ends, and this covers a
  hand-over lost with its worker.
- Webhook deliveries whose worker died mid-delivery (lease expired) are dispatched again, and
  so are pending ones overdue (a lost dispatch; a retry's backoff over on a backend that does
  not schedule retries), unless the backend's queue holds them (asked as for jobs).
"""

import logging

from django.db import transaction

from transcoding.conf import settings
from transcoding.encoding.fanout import dispatch_released
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.jobs.dispatch.base import Waiting
from transcoding.status import jobs
from transcoding.webhooks.delivery import deliveries_overdue_ids

log = logging.getLogger(__name__)


def jobs_recover_stuck() -> tuple[list[int], list[int], list[int]]:
    """Returns the job ids (requeued, failed, redispatched)."""
    requeued, failed = jobs.jobs_requeue_or_fail_stuck()  # a transaction per job
    with transaction.atomic():
        dispatcher = get_dispatcher()
        due = [pk for pk in jobs.jobs_due_unclaimed_ids() if pk not in requeued]
        # Read after the due ones: a message taken meanwhile only makes a harmless duplicate.
        waiting = dispatcher.waiting() if dispatcher.keeps_messages else None
        if dispatcher.keeps_messages:
            due = [] if waiting is None else [pk for pk in due if pk not in waiting.jobs]
        for job_id in [*requeued, *due]:
            transaction.on_commit(lambda job_id=job_id: get_dispatcher().enqueue(job_id), robust=True)
    released = dispatch_released()
    if released:
        log.info("watchdog: held encode jobs released into free slots: %s", released)
    deliveries_recover(waiting)
    return requeued, failed, due


def deliveries_recover(waiting: Waiting | None = None) -> list[int]:
    """Dispatch again the webhook deliveries a worker should have sent by now; returns their
    ids. On a backend that keeps messages, the due ones only when it says which it holds
    (`waiting`), and those it does not."""
    keeps = get_dispatcher().keeps_messages
    overdue = deliveries_overdue_ids(
        settings.REDISPATCH_GRACE_SECONDS, include_due=not keeps or waiting is not None
    )
    if keeps and waiting is not None:
        overdue = [pk for pk in overdue if pk not in waiting.deliveries]
    if overdue:
        log.info("watchdog: webhook deliveries dispatched again: %s", overdue)
    for delivery_id in overdue:
        get_dispatcher().deliver_webhook(delivery_id)
    return overdue
