"""API keys: shown once and stored hashed; refused when revoked, malformed or unknown; a
read-only key reads; a key's user's permissions apply; nobody sees another's unpublished video
without the permission to."""

import hashlib

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.support.api import key_client, make_user
from transcoding.api.keys import api_key_create, api_key_revoke
from transcoding.models import ApiKey, Video

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_as_its_hash_with_a_recognisable_prefix(editor):
    key, raw = api_key_create(user=editor, name="CMS", scope="write")
    assert raw.startswith(f"vpk_{key.prefix}_") and len(raw) == 4 + 8 + 1 + 32
    row = ApiKey.objects.get(pk=key.pk)
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiKey.objects.filter(pk=key.pk).values().get())


@pytest.mark.parametrize(
    "header, detail",
    [
        (None, "Send an API key"),
        ("Bearer nonsense", "This is not an API key"),
        ("Bearer vpk_abcdefgh_" + "A" * 32, "Unknown API key."),
    ],
)
def test_missing_malformed_and_unknown_keys_get_401_with_a_challenge(header, detail):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/videos/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"].startswith(detail)


def test_a_revoked_key_is_refused_at_once(editor):
    client = key_client(editor)
    assert client.get("/api/v1/videos/").status_code == 200
    api_key_revoke(ApiKey.objects.get(user=editor))
    response = client.get("/api/v1/videos/")
    assert response.status_code == 401 and "was revoked" in response.json()["detail"]


def test_a_key_of_an_inactive_user_is_refused(editor):
    client = key_client(editor)
    User.objects.filter(pk=editor.pk).update(is_active=False)
    assert client.get("/api/v1/videos/").status_code == 401


def test_a_read_only_key_reads_and_cannot_write(editor):
    video = Video.objects.create(title="mine", published=True)
    client = key_client(editor, "read")
    assert client.get(f"/api/v1/videos/{video.pk}/").status_code == 200
    for method, path, body in [
        ("patch", f"/api/v1/videos/{video.pk}/", {"title": "changed"}),
        ("post", f"/api/v1/videos/{video.pk}/reprocess/", {}),
        ("post", f"/api/v1/videos/{video.pk}/cancel/", {}),
        ("delete", f"/api/v1/videos/{video.pk}/", None),
    ]:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json()["detail"].endswith("is read-only.")
    assert Video.objects.get(pk=video.pk).title == "mine"


def test_the_keys_user_needs_the_django_permission():
    viewer = make_user("viewer", "view_video")
    video = Video.objects.create(title="theirs", published=True)
    client = key_client(viewer, "write")
    response = client.patch(f"/api/v1/videos/{video.pk}/", {"title": "x"}, format="json")
    assert response.status_code == 403 and "transcoding.change_video" in response.json()["detail"]
    assert client.delete(f"/api/v1/videos/{video.pk}/").status_code == 403
    assert Video.objects.filter(pk=video.pk, title="theirs").exists()


def test_no_key_sees_anothers_unpublished_video_unless_its_user_may():
    # (change_video implies viewing every video, as in the admin: these may only add.)
    uploader = make_user("uploader", "add_video")
    other = make_user("other", "add_video")
    staff = make_user("staff", "view_video")
    own = Video.objects.create(title="draft", created_by=uploader)
    public = Video.objects.create(title="out", published=True)

    def ids(user):
        return {v["id"] for v in key_client(user, "read").get("/api/v1/videos/").json()["results"]}

    assert ids(uploader) == {own.pk, public.pk}
    assert ids(other) == {public.pk}
    assert ids(staff) == {own.pk, public.pk}
    assert key_client(other).get(f"/api/v1/videos/{own.pk}/").status_code == 404
    # Without the change permission the answer is 403 whatever the id: nothing is revealed.
    assert (
        key_client(other).patch(f"/api/v1/videos/{own.pk}/", {"title": "x"}, format="json").status_code == 403
    )
    assert Video.objects.get(pk=own.pk).title == "draft"


def test_session_auth_works_for_the_admins_scripts_and_needs_csrf(editor):
    video = Video.objects.create(title="t", published=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(editor)
    assert client.get(f"/api/v1/videos/{video.pk}/").json()["title"] == "t"
    response = client.patch(f"/api/v1/videos/{video.pk}/", {"title": "x"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
