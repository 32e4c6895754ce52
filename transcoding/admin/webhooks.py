"""Webhooks in the admin: endpoints (the URL checked by the outbound rules on the form, the
secret shown once on creation and masked afterwards, a rotate action) and deliveries (state,
attempts, last answer, the log of every attempt, a redeliver action). Events are read-only.
Saving and actions call `webhooks.endpoints`."""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from transcoding.errors import InvalidRequest
from transcoding.models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from transcoding.webhooks import endpoints


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        assume_scheme="https", max_length=2000, label="URL",
        help_text="HTTPS URL that receives the events (POST). Internal addresses are refused.",
    )  # fmt: skip
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: every event type, including ones added later.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "active"]

    def clean_url(self):
        try:
            return endpoints.endpoint_check_url(self.cleaned_data["url"])
        except InvalidRequest as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_event_types(self):
        try:
            return endpoints.endpoint_check_event_types(self.cleaned_data["event_types"])
        except InvalidRequest as exc:
            raise forms.ValidationError(str(exc)) from None


def _show_secret(modeladmin, request, endpoint, secret: str, what: str) -> None:
    modeladmin.message_user(
        request,
        f"{what} signing secret for {endpoint.url}: {secret} (shown once: copy it to the receiver now).",
        messages.WARNING,
    )


@admin.action(description="Rotate the signing secret", permissions=["change"])
def rotate_secret(modeladmin, request, queryset):
    for endpoint in queryset:
        _show_secret(modeladmin, request, endpoint, endpoints.endpoint_rotate_secret(endpoint), "New")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "types", "active", "secret_masked", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "description"]
    readonly_fields = ["secret_masked", "created_at", "created_by"]
    actions = [rotate_secret]

    @admin.display(description="Events")
    def types(self, obj):
        return ", ".join(obj.event_types) if obj.event_types else "all"

    @admin.display(description="Signing secret")
    def secret_masked(self, obj):
        return endpoints.masked(obj.secret) if obj and obj.secret else "(made when saved, shown once)"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        created, secret = endpoints.endpoint_create(
            obj.url, description=obj.description, event_types=obj.event_types, active=obj.active,
            user=request.user,
        )  # fmt: skip
        obj.pk, obj.secret = created.pk, created.secret
        _show_secret(self, request, created, secret, "The")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "started_at", "status_code", "duration_ms", "response", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description="Redeliver (same webhook-id)", permissions=["change"])
def redeliver(modeladmin, request, queryset):
    done, errors = 0, []
    for delivery in queryset:
        try:
            endpoints.delivery_redeliver(delivery)
            done += 1
        except InvalidRequest as exc:
            errors.append(str(exc))
    if done:
        modeladmin.message_user(request, f"Redelivering {done} deliver{'y' if done == 1 else 'ies'}.")
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        modeladmin.message_user(request, f"Not redelivered: {errors[0]}{more}", messages.ERROR)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Read-only but for the redeliver action (which needs the change permission)."""

    list_display = ["id", "event_type", "webhook_id", "endpoint", "state", "attempt", "last_status_code",
                    "last_duration_ms", "next_attempt_at", "delivered_at", "last_error"]  # fmt: skip
    list_filter = ["state", "event__type", "endpoint"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["event__webhook_id", "=event__video_id"]
    fields = ["event_type", "webhook_id", "video", "endpoint", "state", "attempt", "next_attempt_at",
              "lease_expires_at", "delivered_at", "last_status_code", "last_duration_ms", "last_error",
              "last_response", "body"]  # fmt: skip
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = [redeliver]

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="webhook-id")
    def webhook_id(self, obj):
        return obj.event.webhook_id

    @admin.display(description="Video")
    def video(self, obj):
        if obj.event.video_id is None:
            return "-"
        url = reverse("admin:transcoding_video_change", args=[obj.event.video_id])
        return format_html('<a href="{}">{}</a>', url, obj.event.video_id)

    @admin.display(description="Payload (the exact bytes sent)")
    def body(self, obj):
        wrap = "white-space: pre-wrap; overflow-wrap: anywhere"
        return format_html('<pre style="{}">{}</pre>', wrap, obj.event.body)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The change form is read-only; the permission itself is what the action asks for.
        return obj is None and super().has_change_permission(request, obj)
