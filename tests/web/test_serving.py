"""What the load test (bench/b8.py) found or relies on, one request at a time: what a viewer's
request costs in SQL queries on every endpoint it drives (the status API, the v1 list, the
video list, the player page and the signed playlists of a private video), which must not grow
with the number of videos, rungs or segments; and a private video's signed playlists while it
still encodes."""

import re

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.api import key_client, make_user
from transcoding.models import Poster, Rendition, Storyboard, Video
from transcoding.storage.objects import video_prefix

pytestmark = pytest.mark.django_db


def _media_playlist(segments: int, *, ended: bool = True) -> str:
    kind = "VOD" if ended else "EVENT"
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", f"#EXT-X-PLAYLIST-TYPE:{kind}"]
    lines.append('#EXT-X-MAP:URI="init.mp4"')
    for n in range(1, segments + 1):
        lines += ["#EXTINF:4.000,", f"seg_{n:05d}.m4s"]
    return "\n".join([*lines, *(["#EXT-X-ENDLIST"] if ended else []), ""])


def _master_playlist(rungs: list[str]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    lines.append('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="audio/index.m3u8"')
    for rung in rungs:
        lines += ['#EXT-X-STREAM-INF:BANDWIDTH=1000000,AUDIO="aud"', f"{rung}/index.m3u8"]
    return "\n".join([*lines, ""])


def _site(videos: int, rungs: int, segments: int, *, encoding: bool = False) -> list[int]:
    """Published videos, every other one private (signed playback), each with `rungs` video
    rungs and audio whose stored playlists name `segments` segments, a poster and a storyboard.
    `encoding`: still encoding, playable, its parts running and their playlists growing (EVENT
    playlists, as `encoding.live` publishes them)."""
    names = [f"{height}p" for height in (1080, 720, 480, 360, 240)[-rungs:]]
    ids = []
    for i in range(videos):
        video = Video.objects.create(
            title=f"v{i}",
            status="ready",
            playable=True,
            published=True,
            private=i % 2 == 0,
            duration=4.0 * segments,
        )
        prefix = video_prefix(video.pk)
        default_storage.save(f"{prefix}/master.m3u8", ContentFile(_master_playlist(names).encode()))
        for name in [*names, "audio"]:
            kind = Rendition.Kind.AUDIO if name == "audio" else Rendition.Kind.VIDEO
            key = f"{prefix}/{name}/index.m3u8"
            default_storage.save(key, ContentFile(_media_playlist(segments, ended=not encoding).encode()))
            status = "running" if encoding else "ready"
            Rendition.objects.create(video=video, name=name, kind=kind, status=status, playlist_path=key)
        if not encoding:
            Poster.objects.create(video=video, status="ready", path=f"{prefix}/poster.jpg")
            Storyboard.objects.create(
                video=video, status="ready", vtt_path=f"{prefix}/sb.vtt", image_paths=[f"{prefix}/sb_1.jpg"]
            )
        Video.objects.filter(pk=video.pk).update(
            hls_path=f"{prefix}/master.m3u8", dash_path=f"{prefix}/manifest.mpd"
        )
        ids.append(video.pk)
    return ids


ENDPOINTS = {
    "status API": lambda private, public: f"/api/videos/{private}/",
    "v1 list": lambda private, public: "/api/v1/videos/",
    "v1 video": lambda private, public: f"/api/v1/videos/{private}/",
    "video list": lambda private, public: "/videos/",
    "player page": lambda private, public: f"/videos/{private}/",
    "player page (public)": lambda private, public: f"/videos/{public}/",
    "master playlist": lambda private, public: f"/videos/{private}/play/master.m3u8",
    "media playlist": lambda private, public: f"/videos/{private}/play/240p/index.m3u8",
}


def _counts(client) -> dict[str, int]:
    private, public = (
        Video.objects.filter(private=True).order_by("-pk")[0].pk,
        Video.objects.filter(private=False).order_by("-pk")[0].pk,
    )
    client.get("/api/v1/videos/")  # the key's last_used_at is written at most once a minute
    counts = {}
    for name, url in ENDPOINTS.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url(private, public))
        assert response.status_code == 200, (name, response.status_code)
        counts[name] = len(queries.captured_queries)
    return counts


def test_queries_per_request_do_not_grow_with_videos_rungs_or_segments():
    viewer = key_client(make_user("viewer"), "read")
    _site(3, rungs=2, segments=3)
    small = _counts(viewer)
    _site(27, rungs=5, segments=60)  # 30 videos; the newest have 5 rungs of 60 segments
    large = _counts(viewer)
    assert large == small
    assert all(count <= 8 for count in small.values()), small


def test_a_private_video_plays_through_signed_playlists_while_it_encodes(client):
    """The master of a private video still encoding names its growing rungs' playlists (found by
    the load test: they answered 404 until the rung was ready, so a private video could not be
    watched while it encoded, as a public one can)."""
    (video_id,) = _site(1, rungs=2, segments=2, encoding=True)
    status = client.get(f"/api/videos/{video_id}/").json()
    assert status["playable"] and status["hls_url"] == f"/videos/{video_id}/play/master.m3u8"

    master = client.get(status["hls_url"])
    assert master.status_code == 200
    uris = [line for line in master.content.decode().splitlines() if line and not line.startswith("#")]
    uris += re.findall(r'URI="([^"]+)"', master.content.decode())
    assert sorted(uris) == sorted(
        f"/videos/{video_id}/play/{name}/index.m3u8" for name in ("360p", "240p", "audio")
    )
    for uri in uris:
        playlist = client.get(uri)
        assert playlist.status_code == 200, uri
        text = playlist.content.decode()
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "max-age=1" in playlist["Cache-Control"]
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert len(segments) == 2 and all("signature=" in line for line in segments)


def test_a_failed_rung_playlist_is_not_served(client):
    """What may be served while encoding is what `encoding.live` publishes: queued or running
    rungs' growing playlists, and ready ones; never a failed rung's leftovers."""
    (video_id,) = _site(1, rungs=2, segments=2, encoding=True)
    Rendition.objects.filter(video_id=video_id, name="240p").update(status="failed")
    assert client.get(f"/videos/{video_id}/play/360p/index.m3u8").status_code == 200
    assert client.get(f"/videos/{video_id}/play/240p/index.m3u8").status_code == 404
