"""The JSON API's schema and visibility, and the player pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.rows import ready_rows
from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.models import Video

pytestmark = pytest.mark.django_db

TOP_KEYS = {
    "id", "title", "status", "playable", "progress", "error", "duration", "width", "height", "source",
    "renditions", "audio", "hls_url", "dash_url", "poster_url", "storyboard", "subtitles",
}  # fmt: skip


@pytest.fixture
def ready_video(clips, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["720p"], title="Ready one", published=True)
        services.video_request_processing(video)
    assert run_recorded() == ["done"]
    return video


@pytest.mark.slow
def test_api_schema_of_a_ready_video(client, ready_video):
    data = client.get(f"/api/videos/{ready_video.pk}/").json()
    assert set(data) == TOP_KEYS
    assert set(data["source"]) == {"size", "sha256", "container", "video_codec", "audio_codec", "fps"}
    assert data["status"] == "ready" and data["playable"] is True and data["progress"] == 100
    assert data["duration"] == pytest.approx(6.0, abs=0.1) and (data["width"], data["height"]) == (1280, 720)
    assert [r["name"] for r in data["renditions"]] == ["720p", "480p", "360p", "240p"]
    for rendition in data["renditions"]:
        assert set(rendition) == {
            "name",
            "width",
            "height",
            "bitrate",
            "codec",
            "status",
            "progress",
            "error",
        }
        assert rendition["codec"].startswith("avc1.")
    assert data["audio"] == {"status": "ready", "codec": "mp4a.40.2", "bitrate": 128000}
    assert data["hls_url"].endswith("/master.m3u8") and data["dash_url"].endswith("/manifest.mpd")
    assert data["hls_url"].startswith("/") and data["poster_url"].endswith("poster.jpg")
    assert set(data["storyboard"]) == {"status", "vtt_url", "image_urls"}
    assert data["storyboard"]["image_urls"] and data["subtitles"] == []
    # the URLs resolve to the stored files
    assert client.get(data["hls_url"]).status_code == 200
    assert client.get(data["storyboard"]["vtt_url"]).status_code == 200


def test_unpublished_video_is_hidden_from_the_public(client, admin_client, clips):
    video = video_create(source=clips["silent"], published=False)
    assert client.get(f"/api/videos/{video.pk}/").status_code == 404
    assert client.get(f"/videos/{video.pk}/").status_code == 404
    staff = admin_client.get(f"/api/videos/{video.pk}/").json()
    assert (staff["status"], staff["playable"], staff["hls_url"]) == ("uploaded", False, None)
    assert admin_client.get(f"/videos/{video.pk}/").status_code == 200


def test_api_list_for_live_updates(admin_client, clips):
    first = video_create(source=clips["silent"])
    second = video_create(source=clips["silent"])
    data = admin_client.get(f"/api/videos/?ids={first.pk},{second.pk}").json()
    assert sorted(v["id"] for v in data["videos"]) == [first.pk, second.pk]
    assert admin_client.get("/api/videos/?ids=x").status_code == 404


@pytest.mark.slow
def test_player_list_and_embed_pages(client, ready_video):
    page = client.get(f"/videos/{ready_video.pk}/").content.decode()
    assert "Ready one" in page and "master.m3u8" in page and 'property="og:title"' in page
    assert (
        "shaka-player.ui.js" in page
        and "script-src 'self'" in client.get(f"/videos/{ready_video.pk}/").headers["Content-Security-Policy"]
    )
    listing = client.get("/videos/").content.decode()
    assert f"/videos/{ready_video.pk}/" in listing and "poster.jpg" in listing
    embed = client.get(f"/videos/{ready_video.pk}/embed/")
    assert embed.status_code == 200 and "X-Frame-Options" not in embed.headers


def test_processing_video_shows_progress(admin_client, clips):
    video = video_create(source=clips["silent"], published=True)
    services.video_request_processing(video)
    page = admin_client.get(f"/videos/{video.pk}/").content.decode()
    assert "Processing 0%" in page


def test_api_list_queries_do_not_grow_with_the_number_of_videos(admin_client, django_assert_max_num_queries):
    """The admin polls the list every 2 s with up to 100 ids: a fixed number of queries,
    whatever the count, with private, public and linked videos mixed."""
    source = Video.objects.create(title="source", published=True)
    few, many = ready_rows(3, linked_to=source), ready_rows(100, linked_to=source)
    admin_client.get(f"/api/videos/?ids={few[0]}")  # the session and permissions, cached after

    with CaptureQueriesContext(connection) as small:
        assert len(admin_client.get(f"/api/videos/?ids={','.join(map(str, few))}").json()["videos"]) == 3
    with django_assert_max_num_queries(len(small.captured_queries)):
        data = admin_client.get(f"/api/videos/?ids={','.join(map(str, many))}").json()

    assert len(data["videos"]) == 100
    first = next(v for v in data["videos"] if v["id"] == many[1])  # private: signed views
    assert first["subtitles"][0]["vtt_url"].startswith(f"/videos/{many[1]}/")
    assert sorted(r["name"] for r in first["renditions"]) == ["360p", "720p"]
