"""Serving MP4 downloads (the files' bytes do not matter here; tests/downloads/ makes real ones).

- Always as an attachment named after the video (`<slug of the title>-<rung>.mp4`, ASCII with
  a UTF-8 `filename*`), as video/mp4, never sniffed.
- A public video's download is its plain `/media/` URL (or S3's, whose object says
  `attachment`); any other's is `/videos/<id>/download/<rung>.mp4` with a signature, from the
  API document: without it only staff get the file, everyone else 404.
- A rung name that is not one (`../`, a long string) reaches no file."""

import time
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from transcoding import selectors
from transcoding.models import Download, PartStatus, Video
from transcoding.storage import objects

pytestmark = [pytest.mark.django_db]

MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64


def video_with_download(title="Été à Paris", name="360p", **fields) -> tuple[Video, Download]:
    video = Video.objects.create(title=title, source="originals/x/source", **fields)
    key = objects.download_key(video.pk, name)
    default_storage.save(key, ContentFile(MP4))
    download = Download.objects.create(
        video=video, name=name, path=key, size=len(MP4), status=PartStatus.READY
    )
    return video, download


def document(video: Video) -> dict:
    return selectors.video_document(selectors.with_parts(Video.objects.filter(pk=video.pk)).get())


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_attachment(response, filename="ete-a-paris-360p.mp4"):
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4" and response["X-Content-Type-Options"] == "nosniff"
    disposition = response["Content-Disposition"]
    assert disposition.startswith(f'attachment; filename="{filename}"'), disposition
    assert body(response) == MP4


def test_a_private_video_s_download_needs_the_signed_url_from_its_document(client, admin_client):
    video, _ = video_with_download(published=True, private=True)
    urls = document(video)["download_urls"]
    assert list(urls) == ["360p"]
    url = urls["360p"]
    assert url.startswith(f"/videos/{video.pk}/download/360p.mp4?") and "signature=" in url
    assert client.get(url.split("?")[0]).status_code == 404  # published, but private: signed only
    response = client.get(url)
    assert_attachment(response)
    assert "filename*=UTF-8''%C3%A9t%C3%A9-%C3%A0-paris-360p.mp4" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    assert_attachment(admin_client.get(url.split("?")[0]))  # staff: by their permissions


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("signature=", "signature=0"),
        lambda q: q.replace("expires=", "expires=1"),
        lambda q: "expires=" + str(int(time.time()) - 10) + "&signature=" + q.split("signature=")[1],
        lambda q: q.split("&")[0],
    ],
)
def test_a_tampered_or_expired_signature_gets_404(client, tamper):
    video, _ = video_with_download(published=False, private=True)
    path, query = document(video)["download_urls"]["360p"].split("?")
    assert client.get(f"{path}?{tamper(query)}").status_code == 404


def test_a_signature_names_one_file(client):
    video, _ = video_with_download(published=False)
    _, query = document(video)["download_urls"]["360p"].split("?")
    other = Download.objects.create(
        video=video, name="240p", path=objects.download_key(video.pk, "240p"), status=PartStatus.READY
    )
    default_storage.save(other.path, ContentFile(MP4))
    assert client.get(f"/videos/{video.pk}/download/240p.mp4?{query}").status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fsource",
        "..",
        "360p%00",
        pytest.param("x" * 5000, id="long"),
        "360P",
        "0360p",
        "%2E%2E",
        "360p.mp4%3F",
    ],  # fmt: skip
)
def test_hostile_rung_names_reach_no_file(admin_client, name):
    video, _ = video_with_download(published=True, private=False)
    response = admin_client.get(f"/videos/{video.pk}/download/{name}.mp4")
    assert response.status_code == 404


def test_only_ready_downloads_are_listed_and_served(admin_client):
    video, download = video_with_download(published=False)
    Download.objects.filter(pk=download.pk).update(status=PartStatus.RUNNING)
    assert document(video)["download_urls"] == {}
    assert admin_client.get(f"/videos/{video.pk}/download/360p.mp4").status_code == 404
    plain = Video.objects.create(title="none", source="originals/y/source")
    assert document(plain)["download_urls"] == {}


def test_a_public_video_s_download_is_its_media_url_served_as_an_attachment(client):
    video, download = video_with_download(title="Holiday", published=True, private=False)
    url = document(video)["download_urls"]["360p"]
    assert url == f"/media/{download.path}"
    assert_attachment(client.get(url), "holiday-360p.mp4")
    assert_attachment(client.get(f"/videos/{video.pk}/download/360p.mp4"), "holiday-360p.mp4")


def test_the_old_status_document_keeps_its_keys():
    video, _ = video_with_download(published=True, private=False)
    status = selectors.video_status(video)
    assert "download_urls" not in status
    assert set(document(video)) == set(status) | {
        "description", "published", "private", "preset", "poster_time", "created_at", "updated_at",
        "download_urls",
    }  # fmt: skip


def test_on_s3_the_view_redirects_to_a_presigned_attachment(s3, client):
    video, download = video_with_download(published=False)
    head = s3.client.head_object(Bucket=s3.name, Key=download.path)
    assert head["ContentType"] == "video/mp4" and head["ContentDisposition"] == "attachment"
    url = document(video)["download_urls"]["360p"]
    response = client.get(url)
    assert response.status_code == 302 and "no-store" in response["Cache-Control"]
    location = response["Location"]
    assert urlsplit(location).path == f"/{s3.name}/{download.path}" and "X-Amz-Signature=" in location
    fetched = requests.get(location, timeout=30)
    assert fetched.status_code == 200 and fetched.content == MP4
    assert fetched.headers["Content-Type"] == "video/mp4"
    assert fetched.headers["Content-Disposition"].startswith('attachment; filename="ete-a-paris-360p.mp4"')
    assert client.get(url.split("?")[0]).status_code == 404


def test_on_s3_tracks_are_streamed_into_one_file(s3, tmp_path):
    for index, part in enumerate((b"init", b"seg1", b"seg2")):
        default_storage.save(f"videos/1/360p/{index}", ContentFile(part))
    with open(tmp_path / "track.mp4", "wb") as handle:
        sizes = [objects.append_to(f"videos/1/360p/{index}", handle) for index in range(3)]
    assert (tmp_path / "track.mp4").read_bytes() == b"initseg1seg2" and sizes == [4, 4, 4]
