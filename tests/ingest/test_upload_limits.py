"""Uploads through Django stop as soon as a file passes its limit: an over-limit video or
subtitle file costs the server no more than the limit (nothing more is written, nothing is read
into memory), and the form says why in one line.

The witness is a real upload handler placed after the limiting one (`Received`): it counts the
bytes of each file that reach the handlers that store it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.urls import reverse

from transcoding.ingest.create import video_create
from transcoding.models import Subtitle, Video

pytestmark = [pytest.mark.django_db]

MIB = 1024 * 1024
CHUNK = 64 * 1024  # Django's upload chunk: what may pass before the limit is seen


class Received(FileUploadHandler):
    """Counts the bytes each file field hands on to the storing handlers."""

    bytes: dict = {}

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        Received.bytes[field_name] = 0

    def receive_data_chunk(self, raw_data, start):
        Received.bytes[self.field_name] += len(raw_data)
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.fixture
def counted(settings):
    handlers = list(settings.FILE_UPLOAD_HANDLERS)
    settings.FILE_UPLOAD_HANDLERS = [handlers[0], f"{__name__}.Received", *handlers[1:]]
    Received.bytes = {}
    return Received.bytes


def test_an_over_limit_video_upload_is_stopped_at_the_limit(admin_client, settings, counted):
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 1 * MIB
    big = SimpleUploadedFile("big.mp4", b"\0" * (6 * MIB), content_type="video/mp4")
    response = admin_client.post(
        reverse("admin:transcoding_video_add"),
        {"title": "Too big", "source": big, "poster_time": "", "speech_language": "",
         "subtitles-TOTAL_FORMS": "0", "subtitles-INITIAL_FORMS": "0", "_save": "Save"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "The file is larger than the 1.0\xa0MB limit." in response.content.decode()
    assert "This field is required" not in response.content.decode()
    assert counted["source"] <= 1 * MIB + CHUNK  # not 6 MiB
    assert not Video.objects.exists()


def test_an_over_limit_subtitle_file_is_stopped_before_it_is_read(admin_client, clips, counted):
    video = video_create(source=clips["silent"], title="v")
    body = b"1\n00:00:01,000 --> 00:00:02,000\nHello\n\n" * 200_000  # 7.6 MB of valid SRT
    form = {
        "title": "v", "description": "", "preset": video.preset_id, "poster_time": "", "speech_language": "",
        "subtitles-TOTAL_FORMS": "1", "subtitles-INITIAL_FORMS": "0",
        "subtitles-0-language": "en", "subtitles-0-label": "English", "subtitles-0-kind": "subtitles",
        "subtitles-0-file": SimpleUploadedFile("big.srt", body),
        "renditions-TOTAL_FORMS": "0", "renditions-INITIAL_FORMS": "0",
        "jobs-TOTAL_FORMS": "0", "jobs-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:transcoding_video_change", args=[video.pk]), form)
    assert response.status_code == 200
    assert "The file is larger than the 5.0\xa0MB limit." in response.content.decode()
    assert counted["subtitles-0-file"] <= 5 * MIB + CHUNK
    assert not Subtitle.objects.exists()


def test_a_label_on_two_lines_is_refused(admin_client, clips):
    video = video_create(source=clips["silent"], title="v")
    form = {
        "title": "v", "description": "", "preset": video.preset_id, "poster_time": "", "speech_language": "",
        "subtitles-TOTAL_FORMS": "1", "subtitles-INITIAL_FORMS": "0",
        "subtitles-0-language": "en", "subtitles-0-label": "English\r#EXT-X-STREAM-INF:BANDWIDTH=1",
        "subtitles-0-kind": "subtitles",
        "subtitles-0-file": SimpleUploadedFile("a.srt", b"1\n00:00:01,000 --> 00:00:02,000\nHello\n"),
        "renditions-TOTAL_FORMS": "0", "renditions-INITIAL_FORMS": "0",
        "jobs-TOTAL_FORMS": "0", "jobs-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:transcoding_video_change", args=[video.pk]), form)
    assert response.status_code == 200
    assert "The label must be one line of text" in response.content.decode()
    assert not Subtitle.objects.exists()


def test_files_from_anyone_but_staff_are_never_stored(client, counted):
    """Django parses a multipart body before any view decides (the CSRF check reads it): an
    anonymous POST to the login page with files must not get them written to disk."""
    files = {f"f{n}": SimpleUploadedFile(f"{n}.bin", b"\0" * MIB) for n in range(5)}
    client.post(reverse("admin:login"), {"username": "x", "password": "y", **files})
    assert counted == {}  # no file reached the handlers that store


def test_one_request_carries_at_most_one_video_and_a_few_subtitle_files(admin_client, settings, counted):
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 1 * MIB  # so the request may carry 1 MiB + 50 MB
    files = {f"subtitles-{n}-file": SimpleUploadedFile(f"{n}.srt", b"\0" * (5 * MIB - 1)) for n in range(12)}
    admin_client.post(reverse("admin:transcoding_video_add"), {"title": "x", **files})
    assert sum(counted.values()) <= 1 * MIB + 50 * MIB + CHUNK
