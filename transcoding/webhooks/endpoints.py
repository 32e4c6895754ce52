"""Requests about endpoints and deliveries, for the admin and an API: plain functions taking
model instances, raising `InvalidRequest` with a one-line reason."""

import base64
import secrets

from django.db import transaction
from django.utils import timezone

from transcoding.errors import InvalidRequest
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import EVENT_TYPES, DeliveryState, WebhookDelivery, WebhookEndpoint
from transcoding.outbound.http import OutboundRefused, check_url
from transcoding.webhooks.delivery import allow_http, allow_internal

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """`whsec_` and 24 random bytes in base64: the form Standard Webhooks libraries take."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def masked(secret: str) -> str:
    """Enough to tell secrets apart, not to sign with."""
    return f"{secret[: len(SECRET_PREFIX) + 4]}…" if secret else ""


def endpoint_check_url(url: str) -> str:
    """The URL if events may be sent there (https unless allowed, an address that is not
    internal unless allowed); InvalidRequest with the reason otherwise."""
    url = (url or "").strip()
    try:
        check_url(url, allow_http=allow_http(), allow_internal=allow_internal())
    except OutboundRefused as exc:
        raise InvalidRequest(str(exc).splitlines()[0] if str(exc) else "This URL is refused.") from None
    return url


def endpoint_check_event_types(event_types) -> list[str]:
    unknown = sorted(set(event_types or ()) - set(EVENT_TYPES))
    if unknown:
        raise InvalidRequest(f"Unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}.")
    return [t for t in EVENT_TYPES if t in set(event_types or ())]


def endpoint_create(
    url: str, *, description: str = "", event_types=(), active: bool = True, user=None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the caller shows the secret once)."""
    endpoint = WebhookEndpoint(
        url=endpoint_check_url(url),
        description=description,
        event_types=endpoint_check_event_types(event_types),
        active=active,
        created_by=user if getattr(user, "pk", None) else None,
        secret=new_secret(),
    )
    endpoint.save()
    return endpoint, endpoint.secret


def endpoint_rotate_secret(endpoint: WebhookEndpoint) -> str:
    """A new secret, used from the next attempt on (the receiver must switch at once)."""
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret"])
    return endpoint.secret


def delivery_redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery again from now, with the same event (same `webhook-id`, same body)
    and a full retry schedule; its attempt log goes on. Refused while an attempt is under way."""
    with transaction.atomic():
        updated = (
            WebhookDelivery.objects.filter(pk=delivery.pk)
            .exclude(state=DeliveryState.SENDING)
            .update(
                state=DeliveryState.PENDING,
                attempt=0,
                next_attempt_at=timezone.now(),
                lease_expires_at=None,
                lease_token="",
                delivered_at=None,
            )  # fmt: skip
        )
        if not updated:
            raise InvalidRequest(f"Delivery {delivery.pk} is being sent right now; try again in a moment.")
        transaction.on_commit(lambda: get_dispatcher().deliver_webhook(delivery.pk), robust=True)
    delivery.refresh_from_db()
    return delivery
