"""Delivering one event: signed per Standard Webhooks, retried with backoff on any failure with
the same webhook-id and the same bytes, logged attempt by attempt, failed after the last one,
redelivered on request. The receiver is real (127.0.0.1) and verifies every signature."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from transcoding.errors import InvalidRequest
from transcoding.jobs.dispatch import recording
from transcoding.jobs.dispatch.recording import run_recorded_webhooks
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import DeliveryState, Video, WebhookDelivery
from transcoding.webhooks import delivery as delivery_module
from transcoding.webhooks.delivery import MAX_ATTEMPTS, SCHEDULE, delivery_run, retry_delay
from transcoding.webhooks.endpoints import delivery_redeliver
from transcoding.webhooks.events import event_write

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "attempt, rand, expected",
    [
        (1, 0.5, 5.0),  # no jitter at the middle
        (1, 0.0, 4.5),  # -10 %
        (2, 0.999999, 330.0),  # +10 %
        (3, 0.5, 1800.0),
        (7, 0.5, 36000.0),
        (8, 0.5, None),  # the eighth attempt was the last
        (0, 0.5, None),
    ],
)
def test_the_retry_schedule(attempt, rand, expected):
    delay = retry_delay(attempt, rand)
    assert delay == (None if expected is None else pytest.approx(expected, rel=1e-4))


def test_the_schedule_spans_about_a_day():
    assert MAX_ATTEMPTS == 8
    assert 20 * 3600 < sum(SCHEDULE) < 30 * 3600


@pytest.fixture
def video():
    return Video.objects.create(title="Hooked", source="originals/x/source.mp4")


def one_delivery(video) -> WebhookDelivery:
    event_write("video.ready", video.pk)
    return WebhookDelivery.objects.select_related("event").get()


def make_due(delivery: WebhookDelivery) -> None:
    """The test's clock: the backoff is over."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_receiver_failing_twice_then_succeeding_gets_three_attempts_with_the_same_id(
    webhook_endpoint, receiver, video
):
    receiver.script = [500, 503]
    delivery = one_delivery(video)

    outcomes = []
    for _ in range(3):
        outcomes.append(delivery_run(delivery.pk))
        make_due(delivery)
    delivery.refresh_from_db()

    assert outcomes == ["retry", "retry", "delivered"]
    assert [r.webhook_id for r in receiver.received] == [delivery.event.webhook_id] * 3
    assert all(r.verified for r in receiver.received)
    assert len({r.body for r in receiver.received}) == 1  # the same bytes every time
    assert (delivery.state, delivery.attempt, delivery.last_status_code) == (DeliveryState.DELIVERED, 3, 200)
    log = list(delivery.attempts.values_list("number", "status_code", "error"))
    assert log == [(1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, "")]
    assert all(a.duration_ms is not None for a in delivery.attempts.all())
    assert delivery.attempts.first().response == '{"answer": 500}'


def test_a_retry_waits_for_its_backoff(webhook_endpoint, receiver, video):
    receiver.script = [500]
    delivery = one_delivery(video)
    assert delivery_run(delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > timezone.now()
    assert delivery_run(delivery.pk) == "skipped"  # not due yet
    assert len(receiver.received) == 1


def test_after_the_last_attempt_it_fails_and_redelivering_sends_the_same_id(
    webhook_endpoint, receiver, video, django_capture_on_commit_callbacks
):
    receiver.script = [500] * MAX_ATTEMPTS
    delivery = one_delivery(video)
    for _ in range(MAX_ATTEMPTS):
        make_due(delivery)
        delivery_run(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt, delivery.next_attempt_at) == (DeliveryState.FAILED, 8, None)

    with django_capture_on_commit_callbacks(execute=True):
        delivery_redeliver(delivery)
    assert run_recorded_webhooks() == ["delivered"]

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert {r.webhook_id for r in receiver.received} == {delivery.event.webhook_id}
    assert len(receiver.received) == MAX_ATTEMPTS + 1
    assert delivery.attempts.count() == MAX_ATTEMPTS + 1  # the log goes on


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(webhook_endpoint, receiver, canary, video):
    receiver.script = [(302, {"Location": canary.url("/latest/meta-data/")})]
    delivery = one_delivery(video)
    assert delivery_run(delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert (delivery.last_status_code, delivery.last_error) == (302, "HTTP 302")
    assert canary.hits == []


def test_no_answer_is_a_failed_attempt_with_a_one_line_reason(webhook_endpoint, receiver, video):
    webhook_endpoint.url = "http://127.0.0.1:9/hooks"  # discard port: nothing listens
    webhook_endpoint.save()
    delivery = one_delivery(video)
    assert delivery_run(delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and delivery.last_error and "\n" not in delivery.last_error


def test_a_long_response_is_kept_as_an_excerpt(webhook_endpoint, receiver, video, monkeypatch):
    monkeypatch.setattr(delivery_module, "RESPONSE_CHARS", 10)
    delivery = one_delivery(video)
    assert delivery_run(delivery.pk) == "delivered"
    delivery.refresh_from_db()
    assert delivery.last_response == '{"answer":'


def test_an_inactive_endpoint_fails_the_delivery_without_a_request(webhook_endpoint, receiver, video):
    delivery = one_delivery(video)
    webhook_endpoint.active = False
    webhook_endpoint.save()
    assert delivery_run(delivery.pk) == "failed"
    assert receiver.received == []


def test_redelivering_while_an_attempt_runs_is_refused(webhook_endpoint, video):
    delivery = one_delivery(video)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.SENDING)
    with pytest.raises(InvalidRequest, match="being sent"):
        delivery_redeliver(delivery)


def test_the_watchdog_dispatches_overdue_and_orphaned_deliveries(webhook_endpoint, video, settings):
    settings.TRANSCODING_REDISPATCH_GRACE_SECONDS = 60
    overdue = one_delivery(video)
    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk=overdue.pk).update(next_attempt_at=long_ago)
    event_write("video.failed", video.pk)
    orphaned = WebhookDelivery.objects.exclude(pk=overdue.pk).get()
    WebhookDelivery.objects.filter(pk=orphaned.pk).update(
        state=DeliveryState.SENDING, lease_expires_at=long_ago
    )
    event_write("video.playable", video.pk)  # fresh: its own dispatch is on the way
    recording.webhook_outbox.clear()

    jobs_recover_stuck()

    assert sorted(recording.webhook_outbox) == sorted([overdue.pk, orphaned.pk])


def test_redeliver_action_in_the_admin(
    admin_client, webhook_endpoint, receiver, video, django_capture_on_commit_callbacks
):
    receiver.script = [500]
    delivery = one_delivery(video)
    delivery_run(delivery.pk)
    changelist = reverse("admin:transcoding_webhookdelivery_changelist")

    page = admin_client.get(changelist + "?state=pending")
    assert page.status_code == 200 and "video.ready" in page.content.decode()
    detail = admin_client.get(reverse("admin:transcoding_webhookdelivery_change", args=[delivery.pk]))
    assert detail.status_code == 200 and "HTTP 500" in detail.content.decode()
    assert delivery.event.webhook_id in detail.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            changelist, {"action": "redeliver", ACTION_CHECKBOX_NAME: [delivery.pk]}, follow=True
        )
    assert "Redelivering 1 delivery" in response.content.decode()
    assert run_recorded_webhooks() == ["delivered"]
    assert [r.webhook_id for r in receiver.received] == [delivery.event.webhook_id] * 2
