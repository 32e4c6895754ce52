"""Endpoints in the admin: the secret is made by the server, shown once after creation and
masked afterwards; rotating shows the new one once; the event types are checked."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from transcoding.models import WebhookEndpoint
from transcoding.webhooks.endpoints import masked

pytestmark = pytest.mark.django_db

ADD = reverse("admin:transcoding_webhookendpoint_add")
CHANGELIST = reverse("admin:transcoding_webhookendpoint_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_secret_is_shown_once_then_masked(admin_client, admin_user, receiver, settings):
    settings.TRANSCODING_WEBHOOK_ALLOW_INTERNAL = True
    response = admin_client.post(
        ADD, {"url": receiver.url, "description": "CMS", "event_types": ["video.ready", "video.failed"],
              "active": "on"}, follow=True,
    )  # fmt: skip
    assert response.redirect_chain and response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.created_by == admin_user
    assert endpoint.event_types == ["video.ready", "video.failed"]
    Webhook(endpoint.secret)  # a secret the standard library takes
    assert endpoint.secret in response.content.decode()  # once, on the page after saving

    page = admin_client.get(reverse("admin:transcoding_webhookendpoint_change", args=[endpoint.pk]))
    assert endpoint.secret not in page.content.decode()
    assert masked(endpoint.secret) in page.content.decode()
    listing = admin_client.get(CHANGELIST)
    assert endpoint.secret not in listing.content.decode()


def test_rotating_shows_the_new_secret_once(admin_client, receiver):
    endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret="whsec_" + "A" * 32)
    response = admin_client.post(CHANGELIST, {"action": "rotate_secret", ACTION_CHECKBOX_NAME: [endpoint.pk]})
    endpoint.refresh_from_db()
    assert endpoint.secret != "whsec_" + "A" * 32
    assert any(endpoint.secret in m for m in messages_of(response))


def test_an_unknown_event_type_is_a_form_error(admin_client, receiver, settings):
    settings.TRANSCODING_WEBHOOK_ALLOW_INTERNAL = True
    response = admin_client.post(
        ADD, {"url": receiver.url, "event_types": ["video.exploded"], "active": "on"}
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors["event_types"]
    assert not WebhookEndpoint.objects.exists()
