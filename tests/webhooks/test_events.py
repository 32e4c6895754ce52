"""Which transitions make which webhook events: each written in the transaction of its
transition (never for one rolled back), carrying the video's API document, delivered signed
to a real receiver on 127.0.0.1 that verifies every signature with standardwebhooks."""

import json

import pytest
from django.db import transaction

from transcoding import selectors, services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded, run_recorded_webhooks
from transcoding.models import (
    DeliveryState,
    PartStatus,
    Subtitle,
    Video,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from transcoding.status import parts, videos
from transcoding.webhooks.events import event_type_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_preset")]


@pytest.mark.parametrize(
    "model, field, old, new, expected",
    [
        ("Video", "status", "processing", "ready", "video.ready"),
        ("Video", "status", "queued", "failed", "video.failed"),
        ("Video", "status", "uploaded", "queued", None),
        ("Video", "status", "ready", "ready", None),
        ("Video", "playable", False, True, "video.playable"),
        ("Video", "playable", True, False, None),
        ("Subtitle", "status", "running", "ready", "subtitle.ready"),
        ("Subtitle", "status", "queued", "failed", "subtitle.failed"),
        ("Subtitle", "status", "queued", "running", None),
        ("ProcessingJob", "state", "running", "failed", None),
    ],
)
def test_which_transitions_make_which_events(model, field, old, new, expected):
    assert event_type_for(model, field, old, new) == expected


def events() -> list[str]:
    return list(WebhookEvent.objects.order_by("pk").values_list("type", flat=True))


def deliver_all(capture):
    """Run recorded jobs and webhook deliveries until nothing is left; `capture` (the
    `django_capture_on_commit_callbacks` fixture) runs the commit hooks that dispatch them."""
    while True:
        with capture(execute=True):
            ran = run_recorded() + run_recorded_webhooks()
        if not ran:
            return


@pytest.mark.slow
def test_an_upload_to_ready_sends_created_playable_ready_once_each_in_order(
    webhook_endpoint, receiver, clips, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["720p"])
        services.video_request_processing(video)
    deliver_all(django_capture_on_commit_callbacks)

    assert Video.objects.get(pk=video.pk).status == "ready"
    assert receiver.types() == ["video.created", "video.playable", "video.ready"]
    assert all(r.verified for r in receiver.received)
    assert len({r.webhook_id for r in receiver.received}) == 3
    created, playable, ready = (r.payload for r in receiver.received)
    assert created["data"]["id"] == video.pk and created["data"]["status"] == "uploaded"
    assert playable["data"]["playable"] is True and playable["data"]["hls_url"]
    assert ready["data"]["status"] == "ready"
    # the document is the API's: every key of it
    document = selectors.video_document(selectors.with_parts(Video.objects.filter(pk=video.pk)).get())
    assert set(ready["data"]) == set(document)
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


def test_a_bad_upload_sends_video_failed(
    webhook_endpoint, receiver, tmp_path, django_capture_on_commit_callbacks
):
    notes = tmp_path / "notes.mp4"
    notes.write_text("These are meeting notes, not a video.\n" * 20)
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=notes)
        services.video_request_processing(video)
    deliver_all(django_capture_on_commit_callbacks)

    assert receiver.types() == ["video.created", "video.failed"]
    failed = receiver.received[1].payload["data"]
    assert (failed["id"], failed["status"]) == (video.pk, "failed") and failed["error"]
    assert all(r.verified for r in receiver.received)


def test_subtitle_tracks_send_ready_and_failed_with_the_track(
    webhook_endpoint, receiver, clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["silent"])
    english = Subtitle.objects.create(video=video, language="en", status=PartStatus.RUNNING)
    french = Subtitle.objects.create(video=video, language="fr", status=PartStatus.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        parts.track_ready(english)
        parts.track_ended(french, PartStatus.FAILED, "The speech engine gave up.")
    run_recorded_webhooks()

    assert receiver.types() == ["subtitle.ready", "subtitle.failed"]
    ready, failed = (r.payload["data"] for r in receiver.received)
    assert ready["subtitle"] == {"language": "en", "kind": "subtitles", "status": "ready"}
    assert failed["subtitle"] == {"language": "fr", "kind": "subtitles", "status": "failed"}
    assert ready["id"] == video.pk and {s["language"] for s in ready["subtitles"]} == {"en", "fr"}


def test_a_transition_rolled_back_writes_no_event(webhook_endpoint, receiver, clips):
    video = video_create(source=clips["silent"])
    WebhookEvent.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        videos.video_linked(video.pk)  # ready and playable...
        assert events() == ["video.playable", "video.ready"]  # ...written with it
        raise RuntimeError("the request failed after the transition")
    with pytest.raises(RuntimeError), transaction.atomic():
        video_create(source=clips["silent"])
        raise RuntimeError("the upload failed after the row was written")

    assert events() == [] and not WebhookDelivery.objects.exists()
    assert Video.objects.get(pk=video.pk).status == "uploaded"


def test_deleting_sends_video_deleted_with_the_document_from_before_and_no_failed(
    webhook_endpoint, receiver, clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["silent"], title="Going away")
    video_id = video.pk
    with django_capture_on_commit_callbacks(execute=True):
        services.video_delete(video)
    run_recorded_webhooks()

    assert events() == ["video.created", "video.deleted"]
    deleted = json.loads(WebhookEvent.objects.get(type="video.deleted").body)
    assert deleted["data"]["id"] == video_id
    assert (deleted["data"]["title"], deleted["data"]["status"]) == ("Going away", "uploaded")
    assert receiver.types() == ["video.deleted"]  # created was never dispatched: no commit hooks ran
    assert not Video.objects.filter(pk=video_id).exists()


def test_endpoints_get_only_the_types_they_want_and_inactive_ones_nothing(
    webhook_endpoint, receiver, clips, django_capture_on_commit_callbacks
):
    webhook_endpoint.event_types = ["video.ready"]
    webhook_endpoint.save()
    WebhookEndpoint.objects.create(url=receiver.url, secret=receiver.secret, active=False)
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["silent"])  # video.created: nobody wants it
        videos.video_linked(video.pk)
    run_recorded_webhooks()

    assert events() == ["video.ready"]  # an event nobody wants is not written
    assert receiver.types() == ["video.ready"]
    assert WebhookDelivery.objects.get().endpoint == webhook_endpoint


def test_no_endpoint_no_event(clips):
    video_create(source=clips["silent"])
    assert events() == []
