"""Which transitions make which webhook events, and writing them.

An event is written in the transaction of the transition that causes it: the receivers below
hang on `status.events.status_changing` and `video_created`, which are sent inside that
transaction, and `services.video_delete` writes `video.deleted` in the transaction that deletes
the row. A rolled-back transition leaves no event; a committed one always has its event and its
deliveries, which are handed to the dispatch backend once it commits.

The payload is rendered when the event is written, from the rows as that transaction sees them:
the document is the video as the transition left it (a `video.ready` document says "ready",
whatever happens next), and it is frozen there as the exact bytes every attempt sends. An event
nobody subscribes to is not written at all.
"""

import json
import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from transcoding import selectors
from transcoding.jobs.dispatch import get_dispatcher
from transcoding.models import (
    DeliveryState,
    Subtitle,
    Video,
    VideoStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from transcoding.status import videos

VIDEO_CREATED = "video.created"
VIDEO_PLAYABLE = "video.playable"
VIDEO_READY = "video.ready"
VIDEO_FAILED = "video.failed"
VIDEO_DELETED = "video.deleted"
SUBTITLE_READY = "subtitle.ready"
SUBTITLE_FAILED = "subtitle.failed"

# (model name, field, new value) -> event type; any old value.
TRANSITIONS = {
    ("Video", "status", VideoStatus.READY): VIDEO_READY,
    ("Video", "status", VideoStatus.FAILED): VIDEO_FAILED,
    ("Video", "playable", True): VIDEO_PLAYABLE,
    ("Subtitle", "status", "ready"): SUBTITLE_READY,
    ("Subtitle", "status", "failed"): SUBTITLE_FAILED,
}


def event_type_for(model_name: str, field: str, old, new) -> str | None:
    """The event a transition makes, if any (a pure table lookup; `old` != `new`)."""
    if old == new:
        return None
    return TRANSITIONS.get((model_name, field, new))


def new_webhook_id() -> str:
    """`msg_` and 32 random hex digits: the `webhook-id` header, unique per event."""
    return f"msg_{uuid.uuid4().hex}"


def subscribers(event_type: str) -> list[WebhookEndpoint]:
    return [e for e in WebhookEndpoint.objects.filter(active=True) if e.wants(event_type)]


def video_document(video_id: int) -> dict | None:
    """The API document of the video as the current transaction sees it (None once deleted)."""
    video = selectors.with_parts(Video.objects.filter(pk=video_id)).first()
    return None if video is None else selectors.video_document(video)


def render(event_type: str, data: dict, at) -> str:
    """The payload's bytes: compact JSON, keys in the order written."""
    payload = {"type": event_type, "timestamp": at.isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), cls=DjangoJSONEncoder)


def event_write(
    event_type: str, video_id: int, *, data: dict | None = None, extra=None
) -> WebhookEvent | None:
    """Write the event and one pending delivery per subscribed endpoint, in the current
    transaction, and dispatch each delivery once it commits. `data` is the document when the
    caller rendered it already (a video about to be deleted); `extra` is merged into it.
    Returns None when no active endpoint wants this type, or the video is gone."""
    endpoints = subscribers(event_type)
    if not endpoints:
        return None
    if data is None:
        data = video_document(video_id)
        if data is None:
            return None
    now = timezone.now()
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            webhook_id=new_webhook_id(),
            type=event_type,
            video_id=video_id,
            body=render(event_type, {**data, **(extra or {})}, now),
            created_at=now,
        )
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                event=event, endpoint=e, state=DeliveryState.PENDING, next_attempt_at=now, created_at=now
            )
            for e in endpoints
        )
        for delivery in deliveries:
            transaction.on_commit(lambda pk=delivery.pk: get_dispatcher().deliver_webhook(pk), robust=True)
    return event


def on_status_changing(sender, pk, video_id, field, old, new, **kwargs) -> None:
    """`status.events.status_changing`: inside the transition's transaction."""
    event_type = event_type_for(sender.__name__, field, old, new)
    if event_type is None:
        return
    extra = None
    if sender is Subtitle:
        track = Subtitle.objects.filter(pk=pk).values("language", "kind", "status").first()
        if track is None:
            return
        extra = {"subtitle": track}
    if event_type == VIDEO_FAILED and _deleting(video_id):
        return  # `video.deleted` follows; the "failed" of a deletion is no outcome
    event_write(event_type, video_id, extra=extra)


def _deleting(video_id: int) -> bool:
    return Video.objects.filter(pk=video_id, error=videos.DELETING).exists()


def on_video_created(sender, video_id, **kwargs) -> None:
    """`status.events.video_created`: inside the transaction that saved the new video."""
    event_write(VIDEO_CREATED, video_id)


def video_deleting_document(video_id: int) -> dict | None:
    """The document a `video.deleted` event will carry, rendered before anything of the video
    goes; None (and nothing read) when no endpoint wants that event."""
    return video_document(video_id) if subscribers(VIDEO_DELETED) else None


def video_deleted(video_id: int, document: dict | None) -> None:
    """Write `video.deleted` (call it in the transaction that deletes the row)."""
    if document is not None:
        event_write(VIDEO_DELETED, video_id, data=document)
