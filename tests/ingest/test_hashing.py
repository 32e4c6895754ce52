"""The source's SHA-256 is computed while it streams in (admin upload, ingest), not by
reading the stored original again."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from transcoding.ingest.create import video_create
from transcoding.models import Video

pytestmark = pytest.mark.django_db


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ingest_hashes_while_storing(clips):
    video = video_create(source=clips["720p"])
    assert video.source_sha256 == sha256(clips["720p"])
    assert video.jobs.count() == 0  # known before any worker ran


@pytest.mark.parametrize("big", [False, True], ids=["in-memory", "temporary-file"])
def test_admin_upload_hashes_in_the_upload_handler(admin_client, clips, settings, big):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 if big else 100 * 1024 * 1024
    data = clips["silent"].read_bytes()
    response = admin_client.post(
        "/admin/transcoding/video/add/",
        {
            "title": "hashed", "description": "", "source": SimpleUploadedFile("clip.mp4", data),
            "preset": "", "poster_time": "", "speech_language": "",
            "subtitles-TOTAL_FORMS": "0", "subtitles-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:1000]
    assert Video.objects.get(title="hashed").source_sha256 == hashlib.sha256(data).hexdigest()
