"""API keys in the admin: made for a user with a scope, the key shown once (in the message
after saving: only its hash is kept), revoked by an action, never edited afterwards."""

from django.contrib import admin, messages
from django.utils import timezone

from transcoding.api.keys import api_key_create, api_key_revoke
from transcoding.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "scope", "created_at", "last_used_at", "state"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    fields = ["name", "user", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        """A key's user and scope are what it was made with: revoke it and make another."""
        return [*self.readonly_fields, "user", "scope"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = api_key_create(user=obj.user, name=obj.name, scope=obj.scope)
        obj.pk, obj.prefix, obj.created_at = key.pk, key.prefix, key.created_at
        messages.warning(
            request,
            f"The new API key is {raw} — copy it now: it is not stored and will not be shown again.",
        )

    @admin.display(description="State")
    def state(self, obj):
        return "revoked" if obj.revoked_at and obj.revoked_at <= timezone.now() else "active"

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key)
        self.message_user(request, "Revoked. Programs using these keys are refused from now on.")
