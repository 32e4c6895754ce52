"""API keys: made with a secret shown once, stored as a SHA-256, recognised by a prefix.

A key reads `vpk_<prefix>_<secret>`: `vpk_` says what it is (secret scanners and people
recognise it), the prefix (8 characters) finds the row and names the key in the admin and in
logs, the secret (32 URL-safe characters, 190 bits) is what proves it. The stored hash covers
the whole key; checking compares digests in constant time.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from transcoding.errors import InvalidRequest
from transcoding.models import ApiKey

KEY_FORMAT = re.compile(r"\Avpk_(?P<prefix>[a-z0-9]{8})_(?P<secret>[A-Za-z0-9_-]{32})\Z")
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# `last_used_at` is written at most this often per key: not one UPDATE per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyRefused(Exception):
    """A key that does not authenticate; the message is the one line the client sees."""


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, user, name: str, scope: str = ApiKey.Scope.READ) -> tuple[ApiKey, str]:
    """A new key for `user`: (the row, the key itself). The key is not stored: show it now."""
    if scope not in ApiKey.Scope.values:
        raise InvalidRequest(f"Unknown scope {scope!r}: use read or write.")
    if not user.is_active:
        raise InvalidRequest(f"User {user} is not active.")
    with transaction.atomic():
        while True:
            prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(8))
            if not ApiKey.objects.filter(prefix=prefix).exists():
                break
        raw = f"vpk_{prefix}_{secrets.token_urlsafe(24)}"
        key = ApiKey.objects.create(
            user=user, name=name[:100], scope=scope, prefix=prefix, key_hash=key_hash(raw)
        )
    return key, raw


def api_key_revoke(key: ApiKey) -> None:
    """Revoked at once, for good (the row stays, so logs that name its prefix stay readable)."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_check(raw: str) -> ApiKey:
    """The key `raw` names, if it is valid, not revoked and its user active; else KeyRefused."""
    match = KEY_FORMAT.match(raw or "")
    if not match:
        raise KeyRefused("This is not an API key (they look like vpk_abcd1234_...).")
    key = ApiKey.objects.select_related("user").filter(prefix=match["prefix"]).first()
    if key is None or not hmac.compare_digest(key.key_hash, key_hash(raw)):
        raise KeyRefused("Unknown API key.")
    if key.revoked:
        raise KeyRefused(f"API key {key.prefix} was revoked.")
    if not key.user.is_active:
        raise KeyRefused(f"API key {key.prefix} belongs to an inactive user.")
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key
