"""Write endpoints (anything but GET, HEAD, OPTIONS) rate-limited per API key (per user for a
session): rate `API_WRITE_RATE` (default 120/min), counted in Django's cache."""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from transcoding.models import ApiKey


class WriteRateThrottle(SimpleRateThrottle):
    scope = "write"

    def get_rate(self):
        """Read when used (REST framework binds the rates at import, so a changed setting
        would otherwise be ignored)."""
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        if request.method in SAFE_METHODS:
            return None
        if isinstance(request.auth, ApiKey):
            ident = f"key-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
