"""Unpublished videos and originals follow Django's model permissions, not the staff flag: a
staff user the admin gives no right to view videos sees what the public sees."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.models import Video

pytestmark = [pytest.mark.django_db]


def login(*permissions: str) -> Client:
    account = User.objects.create_user(f"u{len(permissions)}", password="a-long-password", is_staff=True)
    account.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(account)
    return client


@pytest.fixture
def unpublished(clips):
    video = video_create(source=clips["silent"], title="Confidential")
    Video.objects.filter(pk=video.pk).update(published=False)
    return video


@pytest.mark.parametrize(
    "permissions, seen",
    [((), False), (("add_video",), False), (("view_video",), True), (("change_video",), True)],
    ids=["none", "add-only", "view", "change"],
)
def test_unpublished_videos_follow_model_permissions(unpublished, permissions, seen):
    client = login(*permissions)
    expected = 200 if seen else 404
    for url in (
        reverse("transcoding:api-video", args=[unpublished.pk]),
        reverse("transcoding:player", args=[unpublished.pk]),
        reverse("transcoding:original", args=[unpublished.pk]),
    ):
        assert client.get(url).status_code == expected, url
    listed = client.get(reverse("transcoding:api-list") + f"?ids={unpublished.pk}").json()["videos"]
    assert bool(listed) == seen


def test_the_job_admin_lists_only_jobs_of_videos_the_user_may_see(
    unpublished, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(unpublished)
    client = login("view_processingjob")
    page = client.get(reverse("admin:transcoding_processingjob_changelist"))
    assert page.status_code == 200 and b"Confidential" not in page.content
    page = login("view_processingjob", "view_video").get(
        reverse("admin:transcoding_processingjob_changelist")
    )
    assert b"Confidential" in page.content
