"""What /media/ serves with local storage (media_views), and what S3 objects say they are.

- A video's outputs reach only who may see them: anyone for a public video; with a valid
  signature (what the playback views hand out) or Django's view permission otherwise. Ids are
  sequential, so "not linked anywhere" protects nothing.
- Nothing uploaded is served as a page: originals and uploaded subtitle files are never served
  from /media/ at all; the original is downloaded through its view, as an attachment with a
  neutral type; every served file says `nosniff` and carries a sandboxing CSP.
- On S3 the objects carry the server's content type (outputs) or a download's (everything
  else), whatever the uploading client said; presigned downloads override the type too."""

import time

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from transcoding.ingest.create import video_create, video_create_from_stored
from transcoding.models import Subtitle, Video
from transcoding.storage import signing

pytestmark = [pytest.mark.django_db]

PAGE = b"<!doctype html><title>x</title><script>fetch('/admin/auth/user/add/')</script>\n"


def video_with_outputs(clips, **fields) -> Video:
    """A video whose outputs are stored (the files' bytes do not matter here)."""
    video = video_create(source=clips["silent"], title="v")
    Video.objects.filter(pk=video.pk).update(**fields)
    for name in ("master.m3u8", "360p/seg_00001.m4s", "poster.jpg"):
        default_storage.save(f"videos/{video.pk}/{name}", ContentFile(b"#EXTM3U\n"))
    return Video.objects.get(pk=video.pk)


def user(username: str, *permissions: str, staff: bool = True) -> Client:
    account = User.objects.create_user(username, password="a-long-password", is_staff=staff)
    account.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(account)
    return client


def get(client: Client, key: str, query: str = ""):
    return client.get(f"/media/{key}{query}")


def signed_query(key: str, seconds: int = 60) -> str:
    return "?" + signing.local_signed_url(default_storage, key, seconds).split("?", 1)[1]


def test_unpublished_outputs_reach_only_who_may_see_them(clips):
    video = video_with_outputs(clips, published=False, private=False)
    key = f"videos/{video.pk}/master.m3u8"

    assert get(Client(), key).status_code == 404  # a stranger guessing the sequential id
    assert get(user("staff"), key).status_code == 404  # staff without any permission
    assert get(user("viewer", "view_video"), key).status_code == 200
    assert get(Client(), key, signed_query(key)).status_code == 200  # what the player is handed

    query = signed_query(key)
    assert get(Client(), key, query[:-1] + ("0" if query[-1] != "0" else "1")).status_code == 404
    assert get(Client(), f"videos/{video.pk}/poster.jpg", query).status_code == 404  # another key
    expired = int(time.time()) - 1
    assert (
        get(
            Client(), key, f"?expires={expired}&signature={signing.local_signature(key, expired)}"
        ).status_code
        == 404
    )


def test_private_videos_need_a_signature_even_when_published(clips):
    video = video_with_outputs(clips, published=True, private=True)
    key = f"videos/{video.pk}/360p/seg_00001.m4s"
    assert get(Client(), key).status_code == 404
    assert get(Client(), key, signed_query(key)).status_code == 200


def test_public_outputs_are_served_with_their_type_and_no_sniffing(clips):
    video = video_with_outputs(clips, published=True, private=False)
    for name, media_type in (
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("360p/seg_00001.m4s", "video/iso.segment"),
        ("poster.jpg", "image/jpeg"),
    ):
        response = get(Client(), f"videos/{video.pk}/{name}")
        assert response.status_code == 200, name
        assert response["Content-Type"] == media_type
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"


def test_originals_and_uploaded_files_are_never_served_from_media(clips, admin_client):
    video = video_with_outputs(clips, published=True, private=False)
    default_storage.save(f"videos/{video.pk}/notes.html", ContentFile(PAGE))
    subtitle = default_storage.save("subtitles/abc/original", ContentFile(PAGE))
    for key in (
        video.source.name,
        subtitle,
        f"videos/{video.pk}/notes.html",
        f"videos/{video.pk}/../1/x.m3u8",
    ):
        assert get(admin_client, key).status_code == 404, key
        assert get(Client(), key, signed_query(key)).status_code == 404, key


def test_an_uploaded_page_is_a_download_never_a_page(admin_client, django_capture_on_commit_callbacks):
    """An HTML page uploaded as a video in the admin: it fails the probe and the original is
    kept, under the server's name; it is served only as a download, to who may view videos."""
    page = SimpleUploadedFile("holiday.html", PAGE * 100, content_type="text/html")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:transcoding_video_add"),
            {
                "title": "Page",
                "source": page,
                "poster_time": "",
                "speech_language": "",
                "subtitles-TOTAL_FORMS": "0",
                "subtitles-INITIAL_FORMS": "0",
                "_save": "Save",
            },
        )
    assert response.status_code == 302, response.content[-2000:]
    video = Video.objects.get(title="Page")
    assert not video.source.name.endswith(".html")
    assert get(admin_client, video.source.name).status_code == 404
    page = admin_client.get(reverse("admin:transcoding_video_change", args=[video.pk])).content.decode()
    assert "/media/originals/" not in page  # the admin links the download view only
    assert reverse("transcoding:original", args=[video.pk]) in page

    download = admin_client.get(reverse("transcoding:original", args=[video.pk]))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"] == 'attachment; filename="holiday.html"'
    assert download["X-Content-Type-Options"] == "nosniff"
    assert b"".join(download.streaming_content) == PAGE * 100
    assert user("staff").get(reverse("transcoding:original", args=[video.pk])).status_code == 404


def test_a_subtitle_file_named_html_is_stored_under_the_servers_name(clips, admin_client):
    video = video_create(source=clips["silent"], title="v")
    track = Subtitle(video=video, language="en", label="English")
    track.file.save(
        "evil.html", ContentFile(b"1\n00:00:01,000 --> 00:00:02,000\n<script>alert(1)</script>Hi\n")
    )
    assert not track.file.name.endswith(".html")
    assert get(admin_client, track.file.name).status_code == 404


# --- S3 -----------------------------------------------------------------------------------------


def test_s3_objects_carry_the_servers_content_type_never_the_clients(s3):
    html = "text/html"
    for key, expected in (
        ("videos/1/master.m3u8", ("application/vnd.apple.mpegurl", None)),
        ("videos/1/720p/seg_00001.m4s", ("video/iso.segment", None)),
        ("videos/1/subtitles/en-subtitles.vtt", ("text/vtt; charset=utf-8", None)),
        ("videos/1/notes.html", ("application/octet-stream", "attachment")),
        ("originals/abc/source", ("application/octet-stream", "attachment")),
        ("subtitles/abc/original", ("application/octet-stream", "attachment")),
    ):
        default_storage.save(key, SimpleUploadedFile("x.html", PAGE, content_type=html))
        head = s3.client.head_object(Bucket=s3.name, Key=key)
        assert (head["ContentType"], head.get("ContentDisposition")) == expected, key


def test_s3_original_download_overrides_what_the_object_says(s3, clips):
    """An original dropped into the bucket by another route (incoming/) with its own type."""
    s3.client.put_object(Bucket=s3.name, Key="incoming/page.html", Body=PAGE, ContentType="text/html")
    video = video_create_from_stored("incoming/page.html")
    response = requests.get(signing.original_url(video), timeout=10)
    assert response.status_code == 200 and response.content == PAGE
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="page.html"'
