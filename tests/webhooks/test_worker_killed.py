"""At least once, never lost: a `manage.py worker` SIGKILLed while its webhook request is
open leaves the delivery leased; once the lease expires a new worker sends it again with the
same webhook-id, and it ends delivered. Real processes, the test's SQLite database, a receiver
on 127.0.0.1 that holds the first request open."""

import signal

import pytest

from tests.support.processes import kill_group, start_worker, wait_for, worker_env
from tests.support.webhooks import HOLD
from transcoding.ingest.create import video_create
from transcoding.models import DeliveryState, WebhookDelivery
from transcoding.webhooks.delivery import INTERRUPTED

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_delivery_leads_to_a_redelivery_with_the_same_id(
    webhook_endpoint, receiver, tmp_path, tiny
):
    receiver.script = [HOLD]  # the first request never gets an answer
    video_create(source=tiny)  # video.created; the recording dispatcher keeps it
    delivery = WebhookDelivery.objects.select_related("event").get()
    env = {
        **worker_env(tmp_path),
        "TRANSCODING_WEBHOOK_ALLOW_INTERNAL": "1",
        "TRANSCODING_WEBHOOK_LEASE_SECONDS": "3",
        "TRANSCODING_WEBHOOK_TIMEOUT_SECONDS": "60",  # only the kill ends the first attempt
    }
    with open(tmp_path / "worker.log", "ab") as log:
        first = start_worker(env, log)
        try:
            wait_for(lambda: receiver.received, 30, "the first worker never sent the webhook")
            assert WebhookDelivery.objects.get(pk=delivery.pk).state == DeliveryState.SENDING
        finally:
            kill_group(first, signal.SIGKILL, wait=10)
        second = start_worker(env, log)
        try:
            wait_for(
                lambda: WebhookDelivery.objects.get(pk=delivery.pk).state == DeliveryState.DELIVERED,
                60, "the delivery was never sent again",
            )  # fmt: skip
        finally:
            kill_group(second, signal.SIGTERM, wait=10)

    delivery.refresh_from_db()
    assert [r.webhook_id for r in receiver.received] == [delivery.event.webhook_id] * 2
    assert all(r.verified for r in receiver.received)
    assert receiver.received[0].body == receiver.received[1].body
    assert delivery.attempt == 2 and delivery.last_status_code == 200
    assert list(delivery.attempts.values_list("number", "status_code", "error")) == [
        (1, None, INTERRUPTED),
        (2, 200, ""),
    ]
