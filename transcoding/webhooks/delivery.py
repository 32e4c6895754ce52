"""Sending a delivery: claim it, sign and POST the event's frozen bytes, record the attempt,
schedule the next one or end it.

At least once, never lost. A delivery is claimed with one conditional UPDATE (pending and due,
or sending with an expired lease) that sets a lease and a token, like a job; a worker killed
mid-POST leaves it `sending` until the lease expires, and then any worker (the local loop, the
watchdog's re-dispatch) claims it again and sends the same event: same `webhook-id`, same body,
a new timestamp and signature. Only the holder of the current token records the outcome, so a
worker that outlived its lease cannot overwrite a newer attempt's result (its attempt is still
logged). Receivers de-duplicate on `webhook-id`.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from transcoding.conf import settings
from transcoding.errors import one_line
from transcoding.models import DeliveryState, WebhookAttempt, WebhookDelivery, due_q
from transcoding.outbound.http import OutboundRefused, open_url

log = logging.getLogger(__name__)

# Seconds before attempts 2, 3, ... (Standard Webhooks' suggested schedule): about 27 hours
# from the first attempt to the eighth and last.
SCHEDULE = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %
RESPONSE_CHARS = 500
USER_AGENT = "videoproject-webhooks/1 (Standard Webhooks)"
INTERRUPTED = "No answer recorded: the worker stopped during the attempt."


def retry_delay(attempt: int, rand: float | None = None) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based); None when it was the
    last. `rand` in [0, 1) picks the jitter (random when None)."""
    if attempt < 1 or attempt > len(SCHEDULE):
        return None
    rand = random.random() if rand is None else rand
    return SCHEDULE[attempt - 1] * (1 - JITTER + 2 * JITTER * rand)


def signed_headers(secret: str, webhook_id: str, body: str, at: datetime) -> dict:
    """The Standard Webhooks headers for one attempt at `at`."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    response: str = ""
    error: str = ""

    @property
    def delivered(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


def _excerpt(data: bytes) -> str:
    """The start of a response body as text a database keeps (no NUL)."""
    return data.decode("utf-8", errors="replace").replace("\x00", "")[:RESPONSE_CHARS]


def allow_internal() -> bool:
    return bool(settings.WEBHOOK_ALLOW_INTERNAL)


def allow_http() -> bool:
    return bool(settings.WEBHOOK_ALLOW_HTTP) or allow_internal()


def post(url: str, body: str, headers: dict) -> AttemptResult:
    """POST once, never following a redirect (a 3xx is a failed attempt); every failure (a
    refused address, a timeout, a broken connection, an error status) is an AttemptResult."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with open_url(
            url, method="POST", body=body.encode(), headers=headers, allow_http=allow_http(),
            allow_internal=allow_internal(), timeout=float(settings.WEBHOOK_TIMEOUT_SECONDS),
            follow_redirects=False, max_redirects=0,
        ) as response:  # fmt: skip
            status = int(response.status)
            excerpt = _excerpt(response.read(RESPONSE_CHARS * 4))
    except OutboundRefused as exc:
        return AttemptResult(None, took(), error=one_line(exc))
    except Exception as exc:  # noqa: BLE001 (any failure is a failed attempt, retried)
        status = getattr(exc, "code", None) or getattr(exc, "status", None)
        if isinstance(status, int):  # an error status raised as an exception (urllib's HTTPError)
            reader = getattr(exc, "read", None)
            body_text = _excerpt(reader(RESPONSE_CHARS * 4)) if callable(reader) else ""
            return AttemptResult(status, took(), body_text, error=f"HTTP {status}")
        return AttemptResult(None, took(), error=one_line(exc))
    if not 200 <= status < 300:
        return AttemptResult(status, took(), excerpt, error=f"HTTP {status}")
    return AttemptResult(status, took(), excerpt)


def delivery_claim(delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """Take the delivery for one attempt if it is due (or its lease expired); None otherwise
    (delivered, failed, not due yet, or another worker has it). The attempt is logged at once
    as interrupted, and completed by `_record`: a worker killed mid-POST leaves that line."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        claimed = WebhookDelivery.objects.filter(due_q(now), pk=delivery_id).update(
            state=DeliveryState.SENDING,
            attempt=F("attempt") + 1,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS),
        )
        if not claimed:
            return None
        WebhookAttempt.objects.create(
            delivery_id=delivery_id,
            number=WebhookAttempt.objects.filter(delivery_id=delivery_id).count() + 1,
            started_at=now,
            token=token,
            error=INTERRUPTED,
        )
    return WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)


def delivery_run(delivery_id: int) -> str:
    """One attempt of the delivery if it is due: "delivered", "retry" (scheduled again),
    "failed" (no attempts left), "skipped" (nothing to do) or "lost" (the lease expired
    meanwhile and another worker took over)."""
    now = timezone.now()
    delivery = delivery_claim(delivery_id, now)
    if delivery is None:
        return "skipped"
    endpoint, event = delivery.endpoint, delivery.event
    if not endpoint.active:
        result = AttemptResult(None, 0, error="The endpoint is not active.")
    else:
        result = post(
            endpoint.url, event.body, signed_headers(endpoint.secret, event.webhook_id, event.body, now)
        )
    if not result.delivered:
        log.info(
            "webhook %s to %s: attempt %s failed: %s",
            event.webhook_id,
            endpoint.url,
            delivery.attempt,
            result.error,
        )
    return _record(delivery, result, now, final=not endpoint.active)


def _record(delivery: WebhookDelivery, result: AttemptResult, now: datetime, *, final: bool = False) -> str:
    """Log the attempt, and (if this worker still holds the lease) move the delivery on."""
    fields = {
        "last_status_code": result.status_code,
        "last_duration_ms": result.duration_ms,
        "last_response": result.response,
        "last_error": result.error[:500],
        "lease_expires_at": None,
        "lease_token": "",
    }
    delay = None if final else retry_delay(delivery.attempt)
    if result.delivered:
        outcome = "delivered"
        fields.update(state=DeliveryState.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    elif delay is None:
        outcome = "failed"
        fields.update(state=DeliveryState.FAILED, next_attempt_at=None)
    else:
        outcome = "retry"
        fields.update(state=DeliveryState.PENDING, next_attempt_at=now + timedelta(seconds=delay))
    with transaction.atomic():
        WebhookAttempt.objects.filter(delivery_id=delivery.pk, token=delivery.lease_token).update(
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            response=result.response,
            error=result.error[:500],
        )
        current = WebhookDelivery.objects.filter(
            pk=delivery.pk, state=DeliveryState.SENDING, lease_token=delivery.lease_token
        ).update(**fields)
    return outcome if current else "lost"


def deliveries_due_ids(now: datetime | None = None, limit: int = 50) -> list[int]:
    """Deliveries a worker may send now, the longest waiting first."""
    return list(
        WebhookDelivery.objects.filter(due_q(now))
        .order_by(F("next_attempt_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )


def deliveries_unfinished() -> bool:
    """Whether any delivery is still pending or being sent (a local worker stays for them)."""
    return WebhookDelivery.objects.filter(state__in=[DeliveryState.PENDING, DeliveryState.SENDING]).exists()


def deliveries_overdue_ids(grace_seconds: float, *, include_due: bool = True) -> list[int]:
    """For the watchdog: deliveries whose worker died (lease expired), and (`include_due`)
    pending ones due for more than `grace_seconds` that nobody sent: a dispatch lost on the
    way, or a retry whose backoff has passed on a backend that does not schedule it."""
    now = timezone.now()
    query = Q(state=DeliveryState.SENDING, lease_expires_at__lt=now)
    if include_due:
        query |= Q(state=DeliveryState.PENDING, next_attempt_at__lte=now - timedelta(seconds=grace_seconds))
    return list(WebhookDelivery.objects.filter(query).order_by("pk").values_list("pk", flat=True))
