"""Keys made in the admin (shown once, in the message) and by the command; revoked by the
admin's action."""

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from transcoding.models import ApiKey

pytestmark = pytest.mark.django_db


def _works(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/videos/").status_code


def test_the_admin_shows_a_new_key_once_and_revokes_it(admin_client, editor):
    response = admin_client.post(
        "/admin/transcoding/apikey/add/", {"name": "CMS", "user": editor.pk, "scope": "write"}, follow=True
    )
    words = " ".join(str(m) for m in get_messages(response.wsgi_request)).split()
    (raw,) = [word for word in words if word.startswith("vpk_")]
    key = ApiKey.objects.get()
    assert key.user == editor and key.scope == "write" and raw.startswith(f"vpk_{key.prefix}_")
    assert _works(raw) == 200
    page = admin_client.get(f"/admin/transcoding/apikey/{key.pk}/change/").content.decode()
    assert key.prefix in page and raw not in page

    admin_client.post("/admin/transcoding/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert _works(raw) == 401


def test_the_command_prints_a_key(editor, capsys):
    call_command("create_api_key", "editor", "--scope", "write", "--name", "script")
    raw = capsys.readouterr().out.strip()
    assert _works(raw) == 200 and ApiKey.objects.get().name == "script"
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_key", "nobody")
