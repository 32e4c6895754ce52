"""API keys: how a program (a CMS, a mobile app's backend, a batch script) acts for a user.

The key itself is shown once, when it is made (`transcoding.api.keys.api_key_create`); only
its SHA-256 is stored (a key is 190 random bits, so a fast hash is enough: nobody can guess
back from it), with a short prefix that names it in lists and logs without revealing it. A key
acts as its user: that user's Django permissions apply, and the key's scope can only narrow
them (a read-only key cannot write whatever its user may do).
"""

from django.conf import settings as django_settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    name = models.CharField(max_length=100, help_text="What uses this key, e.g. the CMS.")
    user = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The key acts as this user: the user's permissions apply.",
    )
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Names the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None and self.revoked_at <= timezone.now()

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.WRITE
