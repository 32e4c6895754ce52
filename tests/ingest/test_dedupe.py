"""Content dedupe trusts only hashes the server computed over bytes it stored, and a video that
plays another video's outputs gets no more access than that video's own rules allow."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from tests.support.direct_upload import upload_file
from transcoding import services
from transcoding.ingest.create import default_preset
from transcoding.ingest.dedupe import video_link_duplicate
from transcoding.models import PartStatus, Preset, Rendition, Video, VideoStatus
from transcoding.storage import signing

pytestmark = [pytest.mark.django_db]


def ready_video(title: str, sha256: str, size: int, **fields) -> Video:
    """A ready video with outputs under its prefix (the rows dedupe copies)."""
    video = Video.objects.create(
        title=title, source=f"originals/{title}/source", source_sha256=sha256, source_size=size,
        status=VideoStatus.READY, playable=True, preset=default_preset(),
        hls_path=f"videos/{title}/master.m3u8", output_prefix=f"videos/{title}", **fields,
    )  # fmt: skip
    Rendition.objects.create(
        video=video, name="360p", status=PartStatus.READY, playlist_path=f"videos/{title}/360p/index.m3u8"
    )
    return video


def test_a_forged_hash_links_nothing(s3, clips, django_capture_on_commit_callbacks):
    """A staff user who may only add videos completes a direct upload of other bytes, claiming
    the SHA-256 and size of an unpublished video, and publishes it: it is encoded on its own."""
    clip = clips["silent"]
    secret = ready_video("secret", "ab" * 32, clip.stat().st_size, published=False)
    uploader = User.objects.create_user("uploader", password="x", is_staff=True)
    uploader.user_permissions.set(Permission.objects.filter(codename="add_video"))
    client = Client()
    client.force_login(uploader)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload_file(client, clip, sha256=secret.source_sha256, title="Mine", published=True)

    assert response.status_code == 201, response.content
    mine = Video.objects.get(pk=response.json()["video_id"])
    assert mine.outputs_from is None and mine.status == VideoStatus.QUEUED and not mine.playable
    assert mine.source_sha256 == ""  # nothing the browser said is kept
    status = Client().get(reverse("transcoding:api-video", args=[mine.pk])).json()
    assert status["hls_url"] is None and "secret" not in str(status)


def test_a_linked_video_is_no_more_visible_than_its_source(client, clips):
    """Same bytes (server-side hashes), so the second video plays the first one's outputs; the
    first is unpublished, so the second is not shown to anyone who could not see the first."""
    first = ready_video("first", "cd" * 32, 1000, published=False)
    second = Video.objects.create(
        title="second", source="originals/second/source", source_sha256=first.source_sha256,
        source_size=1000, preset=first.preset, published=True, private=False,
    )  # fmt: skip
    assert video_link_duplicate(second)
    second.refresh_from_db()
    assert second.outputs_from == first

    for url in (
        reverse("transcoding:api-video", args=[second.pk]),
        reverse("transcoding:player", args=[second.pk]),
        reverse("transcoding:play-master", args=[second.pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert second.pk not in [
        v["id"] for v in client.get(reverse("transcoding:api-list") + f"?ids={second.pk}").json()["videos"]
    ]
    assert b"second" not in client.get(reverse("transcoding:list")).content

    Video.objects.filter(pk=first.pk).update(published=True, private=True)
    assert client.get(reverse("transcoding:api-video", args=[second.pk])).status_code == 200
    status = client.get(reverse("transcoding:api-video", args=[second.pk])).json()
    # Its files are the first video's, which is private: handed out signed only.
    assert status["hls_url"] == reverse("transcoding:play-master", args=[second.pk])


def test_a_link_never_points_at_a_link(clips):
    """A (unpublished) owns the files; B links to A; A's preset then changes, so a third video
    with the same bytes matches B only: it is encoded, not linked to B's copy of A's rows."""
    first = ready_video("first", "ef" * 32, 1000, published=False)
    second = Video.objects.create(
        title="second", source="originals/second/source", source_sha256=first.source_sha256,
        source_size=1000, preset=first.preset, published=True,
    )  # fmt: skip
    assert video_link_duplicate(second)
    Video.objects.filter(pk=first.pk).update(preset=Preset.objects.create(name="other"))
    third = Video.objects.create(
        title="third", source="originals/third/source", source_sha256=first.source_sha256,
        source_size=1000, preset=first.preset, published=True,
    )  # fmt: skip
    assert not video_link_duplicate(third)
    assert Video.objects.get(pk=third.pk).outputs_from is None


def test_reprocessing_a_linked_video_forgets_the_other_videos_files(
    clips, django_capture_on_commit_callbacks
):
    first = ready_video("first", "aa" * 32, 1000, published=False)
    second = Video.objects.create(
        title="second", source="originals/second/source", source_sha256=first.source_sha256,
        source_size=1000, preset=first.preset, published=True,
    )  # fmt: skip
    assert video_link_duplicate(second)

    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(Video.objects.get(pk=second.pk), force=True)

    second = Video.objects.get(pk=second.pk)
    assert second.outputs_from is None and not second.playable and second.hls_path == ""
    assert not second.renditions.filter(playlist_path__startswith=f"videos/{first.title}/").exists()
    status = Client().get(reverse("transcoding:api-video", args=[second.pk])).json()
    assert status["hls_url"] is None and status["dash_url"] is None
    signer = signing.video_signer(second)
    with pytest.raises(signing.KeyOutsideVideo):
        signer(f"videos/{first.pk}/360p/index.m3u8")
