"""Webhook destinations obey the address rules of URL imports: loopback, private, link-local
(the cloud metadata service) and IPv6 loopback are refused, given as addresses or as a name
that resolves to them, on the admin form and again at every attempt (names change), with a
canary server on 127.0.0.1 counting zero requests."""

import socket

import pytest
from django.urls import reverse

from transcoding.models import DeliveryState, Video, WebhookDelivery, WebhookEndpoint
from transcoding.webhooks.delivery import delivery_run
from transcoding.webhooks.events import event_write

pytestmark = pytest.mark.django_db

NAMES = {
    "hooks.attacker.test": "127.0.0.1",
    "meta.attacker.test": "169.254.169.254",
    "ten.attacker.test": "10.0.0.1",
}


@pytest.fixture
def resolver(monkeypatch):
    """Names that resolve to internal addresses, as an attacker's DNS would answer."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in NAMES:
            return real(NAMES[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def attacks(canary) -> list[str]:
    port = canary.server.server_address[1]
    return [
        canary.url("/hooks"),
        f"http://127.0.0.1:{port}/hooks",
        f"http://10.0.0.1:{port}/hooks",
        "http://10.20.30.40/hooks",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/hooks",
        f"http://localhost:{port}/hooks",
        f"http://hooks.attacker.test:{port}/hooks",
        "http://meta.attacker.test/latest/meta-data/",
        f"http://ten.attacker.test:{port}/hooks",
    ]


@pytest.fixture
def rules(settings):
    """Internal addresses refused (the default); http allowed, so the address is the reason."""
    settings.TRANSCODING_WEBHOOK_ALLOW_INTERNAL = False
    settings.TRANSCODING_WEBHOOK_ALLOW_HTTP = True


def test_the_admin_form_refuses_internal_destinations(admin_client, canary, resolver, rules):
    add = reverse("admin:transcoding_webhookendpoint_add")
    for url in attacks(canary):
        response = admin_client.post(add, {"url": url, "description": "", "active": "on"})
        assert response.status_code == 200, url  # the form again, with the error
        errors = response.context["adminform"].form.errors["url"]
        assert len(errors) == 1 and "refused" in errors[0] and "\n" not in errors[0], (url, errors)
    assert not WebhookEndpoint.objects.exists()
    assert canary.hits == []


def test_https_only_unless_allowed(admin_client, settings):
    settings.TRANSCODING_WEBHOOK_ALLOW_INTERNAL = False
    settings.TRANSCODING_WEBHOOK_ALLOW_HTTP = False
    add = reverse("admin:transcoding_webhookendpoint_add")
    response = admin_client.post(add, {"url": "http://example.com/hooks", "active": "on"})
    assert "https" in response.context["adminform"].form.errors["url"][0]


def test_every_attempt_checks_the_address_again(canary, resolver, rules):
    """An endpoint saved while its name was public, pointing inside now (or written around the
    form): each attempt fails with the rule's one-line reason, and no request leaves."""
    video = Video.objects.create(title="Target", source="originals/x/source.mp4")
    for url in attacks(canary):
        WebhookEndpoint.objects.create(url=url, secret="whsec_" + "A" * 32)
    event_write("video.ready", video.pk)

    deliveries = list(WebhookDelivery.objects.select_related("endpoint"))
    assert len(deliveries) == len(attacks(canary))
    for delivery in deliveries:
        assert delivery_run(delivery.pk) == "retry", delivery.endpoint.url
        delivery.refresh_from_db()
        assert delivery.state == DeliveryState.PENDING and delivery.last_status_code is None
        assert "refused" in delivery.last_error and "\n" not in delivery.last_error, delivery.last_error
    assert canary.hits == []
