"""API clients that authenticate with a key, as a program would (no session, no CSRF)."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.test import APIClient

from transcoding.api.keys import api_key_create


def make_user(username: str, *perms: str) -> User:
    """A user with these transcoding permissions (codenames such as "change_video")."""
    user = User.objects.create_user(username, password="x")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="transcoding", codename__in=perms)
    )
    return User.objects.get(pk=user.pk)  # a fresh permission cache


def key_client(user: User, scope: str = "write") -> APIClient:
    _, raw = api_key_create(user=user, name=f"{user.username} {scope}", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_key = raw
    return client


@pytest.fixture
def editor(db) -> User:
    """May add, change, view and delete videos."""
    return make_user("editor", "add_video", "change_video", "view_video", "delete_video")


@pytest.fixture
def api(editor) -> APIClient:
    """A read-write key of `editor`."""
    return key_client(editor, "write")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate limits count in Django's cache, by key id: ids repeat from one test to the next."""
    cache.clear()
    yield
    cache.clear()
