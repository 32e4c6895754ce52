"""Signed webhooks (docs/webhooks.md): the endpoints an administrator registers, the events
written with the transitions that cause them, and one delivery of each event to each endpoint
that wants it, with the log of its attempts.

A delivery is claimed like a job (a conditional UPDATE to `sending` with a lease), so a worker
that dies mid-delivery leaves a delivery that is due again once its lease expires."""

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

EVENT_TYPES = (
    "video.created",
    "video.playable",
    "video.ready",
    "video.failed",
    "video.deleted",
    "subtitle.ready",
    "subtitle.failed",
)


class WebhookEndpoint(models.Model):
    """Where events are sent. The secret is the `whsec_...` string the receiver verifies with:
    signing needs it back, so it is stored as is (not hashed), shown once, masked afterwards."""

    url = models.URLField(max_length=2000, help_text="HTTPS URL that receives the events (POST).")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    event_types = models.JSONField(default=list, blank=True, help_text="Event types sent; empty for all.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["pk"]
        verbose_name = "webhook endpoint"

    def __str__(self):
        return self.description or self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class WebhookEvent(models.Model):
    """One outcome, as sent. `body` is the payload's exact bytes (compact JSON, text): frozen
    when written, so every attempt and every redelivery signs and sends the same bytes (a
    JSON column would not keep them: PostgreSQL's jsonb reorders keys). `webhook_id` is the
    `webhook-id` header, the receiver's key for ignoring duplicates."""

    webhook_id = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=40, db_index=True)
    video_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="Not a key: events outlive videos."
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "webhook event"

    def __str__(self):
        return f"{self.type} {self.webhook_id}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


def due_q(now=None) -> Q:
    """What a worker may send now: pending and due, or sending with an expired lease (the
    worker that claimed it stopped)."""
    now = now or timezone.now()
    return Q(state=DeliveryState.PENDING, next_attempt_at__lte=now) | Q(
        state=DeliveryState.SENDING, lease_expires_at__lt=now
    )


class WebhookDelivery(models.Model):
    """One event to one endpoint, until delivered or out of attempts."""

    event = models.ForeignKey(WebhookEvent, related_name="deliveries", on_delete=models.CASCADE)
    endpoint = models.ForeignKey(WebhookEndpoint, related_name="deliveries", on_delete=models.CASCADE)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempt = models.PositiveSmallIntegerField(default=0, help_text="Attempts made so far.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The start of the last response's body.")
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_endpoint")
        ]

    def __str__(self):
        return f"{self.event.type} to {self.endpoint} ({self.state})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, what came back (or why nothing did), how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, related_name="attempts", on_delete=models.CASCADE)
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    token = models.CharField(max_length=64, blank=True, help_text="The claim that made it.")

    class Meta:
        ordering = ["number", "pk"]

    def __str__(self):
        return f"attempt {self.number}"
