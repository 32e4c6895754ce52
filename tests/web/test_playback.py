"""Private playback, content addressing and deletion (docs/private-playback.md).

Table tests of the manifest rewriting with a fake signer; then processed videos in a real
bucket: moto's S3 server, django-storages and boto3, nothing patched. moto 5.2 serves a
presigned URL whatever its signature or age, so the server here is moto behind a check of
SigV4 presigned URLs written from the AWS specification (`PresignedUrlCheck`): a tampered or
expired URL gets S3's 403.
"""

import datetime
import hashlib
import io
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import m3u8
import pytest
import webvtt
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from mpegdash.parser import MPEGDASHParser

from tests.support.browser import CHROMIUM, PLAYER, play_muted, shot, wait_js
from transcoding import selectors, services
from transcoding.ingest.create import video_create
from transcoding.ingest.dedupe import video_find_duplicate, video_link_duplicate
from transcoding.jobs.dispatch import recording
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.media import manifest_rewrite, manifests
from transcoding.media.ladder import StoryboardPlan
from transcoding.models import PartStatus, Preset, ProcessingJob, Rendition, Subtitle, Video
from transcoding.storage import objects, signing
from transcoding.web.playback_views import _respond

db = pytest.mark.django_db


# --- table tests: the rewriting, with a fake signer -------------------------------------------
def fake_sign(key: str, at: float) -> str:
    return f"https://signed.test/{key}?at={at:g}&sig=x"


SEGMENTS = (
    manifests.Segment("seg_00001.m4s", 4.0),
    manifests.Segment("seg_00002.m4s", 4.0),
    manifests.Segment("seg_00003.m4s", 1.5),
)


@pytest.mark.parametrize(
    ("text", "base", "init", "segments"),
    [
        (
            manifests.media_playlist("init.mp4", SEGMENTS),
            "videos/7/720p",
            "https://signed.test/videos/7/720p/init.mp4?at=9.5&sig=x",
            [
                "https://signed.test/videos/7/720p/seg_00001.m4s?at=0&sig=x",
                "https://signed.test/videos/7/720p/seg_00002.m4s?at=4&sig=x",
                "https://signed.test/videos/7/720p/seg_00003.m4s?at=8&sig=x",
            ],
        ),
        (  # segmented WebVTT: no init section
            manifests.media_playlist(None, (manifests.Segment("seg_00001.vtt", 4.0),)),
            "videos/7/subtitles/en-subtitles",
            None,
            ["https://signed.test/videos/7/subtitles/en-subtitles/seg_00001.vtt?at=0&sig=x"],
        ),
        (  # a linked video's playlist under another prefix resolves there
            manifests.media_playlist("../audio/init.mp4", SEGMENTS[:1]),
            "videos/3/720p",
            "https://signed.test/videos/3/audio/init.mp4?at=4&sig=x",
            ["https://signed.test/videos/3/720p/seg_00001.m4s?at=0&sig=x"],
        ),
    ],
)
def test_media_playlist_rewrite(text, base, init, segments):
    out = m3u8.loads(manifest_rewrite.rewrite_media_playlist(text, base, fake_sign))
    assert [s.uri for s in out.segments] == segments
    assert [m.uri for m in out.segment_map] == ([init] if init else [])
    assert out.is_endlist and out.version == 7 and out.is_independent_segments
    assert [s.duration for s in out.segments] == [s.duration for s in m3u8.loads(text).segments]


def _master() -> str:
    variant = manifests.VideoVariant(
        "720p", "720p/index.m3u8", "720p/init.mp4", "720p/seg_$Number%05d$.m4s", SEGMENTS,
        1280, 720, Fraction(30), "avc1.64001f", 3_000_000, 2_000_000,
    )  # fmt: skip
    audio = manifests.AudioVariant(
        "audio/index.m3u8",
        "audio/init.mp4",
        "audio/seg_$Number%05d$.m4s",
        SEGMENTS,
        "mp4a.40.2",
        130_000,
        128_000,
    )
    track = manifests.SubtitleTrack(
        "en", "English", "subtitles/en-captions/index.m3u8", "subtitles/en-captions.vtt"
    )
    return manifests.master_playlist((variant,), audio, (track,))


def test_master_playlist_points_every_media_playlist_at_the_view():
    urls = {
        "videos/7/720p/index.m3u8": "/videos/7/play/720p/index.m3u8",
        "videos/7/audio/index.m3u8": "/videos/7/play/audio/index.m3u8",
        "videos/7/subtitles/en-captions/index.m3u8": "/videos/7/play/subtitles/en-captions/index.m3u8",
    }
    out = m3u8.loads(manifest_rewrite.rewrite_master_playlist(_master(), "videos/7", urls.__getitem__))
    assert [p.uri for p in out.playlists] == ["/videos/7/play/720p/index.m3u8"]
    assert {m.type: m.uri for m in out.media} == {
        "AUDIO": "/videos/7/play/audio/index.m3u8",
        "SUBTITLES": "/videos/7/play/subtitles/en-captions/index.m3u8",
    }
    info = out.playlists[0].stream_info
    assert (info.bandwidth, info.resolution, info.audio, info.subtitles) == (
        3_130_000,
        (1280, 720),
        "audio",
        "subs",
    )
    del urls["videos/7/audio/index.m3u8"]
    with pytest.raises(manifest_rewrite.ManifestError, match="unknown playlist"):
        manifest_rewrite.rewrite_master_playlist(_master(), "videos/7", urls.__getitem__)


@pytest.mark.parametrize(
    ("base", "uri", "key"),
    [
        ("videos/7", "720p/index.m3u8", "videos/7/720p/index.m3u8"),
        ("videos/7/720p", "../audio/init.mp4", "videos/7/audio/init.mp4"),
        ("videos/7", "../8/720p/seg_00001.m4s", "videos/8/720p/seg_00001.m4s"),  # the signer refuses it
        ("videos/7", "https://elsewhere.test/x.m4s", None),
        ("videos/7", "//elsewhere.test/x.m4s", None),
        ("videos/7", "/videos/8/x.m4s", None),
        ("videos/7", "data:text/plain,x", None),
        ("videos/7", "../../../etc/passwd", None),
        ("videos/7", "seg.m4s?x=1", None),
        ("videos/7", "", None),
    ],
)
def test_resolve(base, uri, key):
    if key is None:
        with pytest.raises(manifest_rewrite.ManifestError):
            manifest_rewrite.resolve(base, uri)
    else:
        assert manifest_rewrite.resolve(base, uri) == key


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("720p/seg_$Number%05d$.m4s", {"number": 7}, "720p/seg_00007.m4s"),
        ("seg_$Number$.m4s", {"number": 12}, "seg_12.m4s"),
        ("$RepresentationID$/t$Time$.m4s", {"representation": "audio", "time": 96000}, "audio/t96000.m4s"),
        (
            "$RepresentationID$-$Bandwidth$/init.mp4",
            {"representation": "v", "bandwidth": "800"},
            "v-800/init.mp4",
        ),
        ("cost$$$Number$.m4s", {"number": 3}, "cost$3.m4s"),
    ],
)
def test_fill_template(template, values, expected):
    assert manifest_rewrite.fill_template(template, **values) == expected


NS = f"{{{manifest_rewrite.DASH_NS}}}"

MPD_SHARED_TEMPLATE = """<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT0H0M10.000S"
     minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4"
                       media="$RepresentationID$/t$Time$.m4s" startNumber="5">
        <SegmentTimeline><S t="0" d="4000" r="1"/><S d="2000"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="360p" bandwidth="800000" codecs="avc1.64001e" width="640" height="360"/>
      <Representation id="240p" bandwidth="400000" codecs="avc1.640015" width="426" height="240"/>
    </AdaptationSet>
  </Period>
</MPD>"""


def _representations(text):
    root = ET.fromstring(text)
    return {r.get("id"): r for r in root.iter(f"{NS}Representation")}


def test_mpd_segment_template_becomes_a_signed_segment_list():
    variant = manifests.VideoVariant(
        "720p", "720p/index.m3u8", "720p/init.mp4", "720p/seg_$Number%05d$.m4s", SEGMENTS,
        1280, 720, Fraction(30), "avc1.64001f", 3_000_000, 2_000_000,
    )  # fmt: skip
    track = manifests.SubtitleTrack(
        "en", "English", "subtitles/en-subtitles/index.m3u8", "subtitles/en-subtitles.vtt"
    )
    text = manifests.dash_mpd(9.5, (variant,), None, subtitles=(track,))
    out = manifest_rewrite.rewrite_mpd(text, "videos/7", fake_sign)

    assert "SegmentTemplate" not in out
    rep = _representations(out)["720p"]
    seglist = rep.find(f"{NS}SegmentList")
    assert seglist.get("timescale") == "90000" and seglist.get("startNumber") == "1"
    assert seglist.find(f"{NS}Initialization").get("sourceURL") == fake_sign("videos/7/720p/init.mp4", 9.5)
    timeline = [(s.get("t"), s.get("d"), s.get("r")) for s in seglist.find(f"{NS}SegmentTimeline")]
    assert timeline == [("900000", "360000", "1"), (None, "135000", None)]  # the durations, unchanged
    assert seglist.get("presentationTimeOffset") == "900000"
    assert [u.get("media") for u in seglist.findall(f"{NS}SegmentURL")] == [
        fake_sign("videos/7/720p/seg_00001.m4s", 0),
        fake_sign("videos/7/720p/seg_00002.m4s", 4),
        fake_sign("videos/7/720p/seg_00003.m4s", 8),
    ]
    assert [child.tag for child in seglist] == [f"{NS}Initialization", f"{NS}SegmentTimeline"] + [
        f"{NS}SegmentURL"
    ] * 3
    assert _representations(out)["text-en-subtitles"].find(f"{NS}BaseURL").text == fake_sign(
        "videos/7/subtitles/en-subtitles.vtt", 9.5
    )
    mpd = MPEGDASHParser.parse(out)
    parsed = mpd.periods[0].adaptation_sets[0].representations[0].segment_lists[0]
    assert len(parsed.segment_urls) == 3 and parsed.initializations[0].source_url.startswith(
        "https://signed.test/"
    )


def test_mpd_adaptation_set_template_is_expanded_per_representation():
    out = manifest_rewrite.rewrite_mpd(MPD_SHARED_TEMPLATE, "videos/9", fake_sign)
    reps = _representations(out)
    for name in ("360p", "240p"):
        seglist = reps[name].find(f"{NS}SegmentList")
        assert seglist.get("startNumber") == "5"
        assert seglist.find(f"{NS}Initialization").get("sourceURL") == fake_sign(
            f"videos/9/{name}/init.mp4", 10
        )
        assert [u.get("media") for u in seglist.findall(f"{NS}SegmentURL")] == [
            fake_sign(f"videos/9/{name}/t0.m4s", 0),
            fake_sign(f"videos/9/{name}/t4000.m4s", 4),
            fake_sign(f"videos/9/{name}/t8000.m4s", 8),
        ]
    assert "SegmentTemplate" not in out
    MPEGDASHParser.parse(out)


@pytest.mark.parametrize(
    "mpd",
    [
        MPD_SHARED_TEMPLATE.replace(
            '<Period id="0" start="PT0S">', "<Period><BaseURL>https://x.test/</BaseURL>"
        ),
        MPD_SHARED_TEMPLATE.replace('<S d="2000"/>', '<S d="2000" r="-1"/>'),
        MPD_SHARED_TEMPLATE.replace("<SegmentTimeline>", "<X>").replace("</SegmentTimeline>", "</X>"),
        MPD_SHARED_TEMPLATE.replace(
            'media="$RepresentationID$/t$Time$.m4s"', 'media="https://x.test/$Time$.m4s"'
        ),
    ],
    ids=["base-url-above", "open-repeat", "no-timeline", "absolute-media"],
)
def test_mpd_constructs_not_supported_are_refused(mpd):
    with pytest.raises(manifest_rewrite.ManifestError):
        manifest_rewrite.rewrite_mpd(mpd, "videos/9", fake_sign)


def test_storyboard_vtt_sprites_are_signed_once_each_fragment_kept():
    plan = StoryboardPlan(interval=1.0, count=12, tile_width=160, tile_height=90, columns=2, rows=3)
    text = manifests.storyboard_vtt(plan, 12.0, ["sheet_0001.jpg", "sheet_0002.jpg"])
    calls = []

    def sign(key, at):
        calls.append(key)
        return fake_sign(key, at)

    out = manifest_rewrite.rewrite_storyboard_vtt(text, "videos/7/storyboard", sign, 12.0)
    cues = webvtt.from_string(out).captions
    assert len(cues) == 12
    assert cues[0].text == fake_sign("videos/7/storyboard/sheet_0001.jpg", 12) + "#xywh=0,0,160,90"
    assert cues[7].text == fake_sign("videos/7/storyboard/sheet_0002.jpg", 12) + "#xywh=160,0,160,90"
    assert sorted(calls) == ["videos/7/storyboard/sheet_0001.jpg", "videos/7/storyboard/sheet_0002.jpg"]


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("videos/1/720p/seg_00001.m4s", True),
        ("videos/1/master.m3u8", True),
        ("videos/3/720p/init.mp4", True),  # the prefix of the video it shares outputs with
        ("videos/10/720p/seg_00001.m4s", False),
        ("videos/1/../2/720p/init.mp4", False),
        ("videos/1", False),
        ("originals/abc/source.mp4", False),
        ("/videos/1/master.m3u8", False),
        ("", False),
    ],
)
def test_signer_signs_only_keys_under_the_video_prefixes(key, allowed, settings):
    settings.TRANSCODING_SIGNED_URL_SECONDS = 100
    signer = signing.UrlSigner(["videos/1", "videos/3"])
    if allowed:
        signer(key)
    else:
        with pytest.raises(signing.KeyOutsideVideo):
            signer(key)
    assert (signer.expiry(0), signer.expiry(7.2), signer.expiry(10**9)) == (100, 108, signing.MAX_EXPIRY)


# --- S3 (moto behind the presigned-URL check of tests/support/s3.py) -------------------------
@pytest.fixture
def bucket(s3):
    """The `s3` fixture (tests/support/s3.py): a fresh bucket as the default storage."""
    return s3


def fetch(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def created(path: Path, **fields) -> Video:
    """A new video with its content address. (video_create leaves the SHA-256 empty when the
    storage reads the file without `chunks()`, as django-storages' S3 backend does; the probe
    step fills it in then. Here it is set at once, as uploads do.)"""
    video = video_create(source=path, **fields)
    if not video.source_sha256:
        video.source_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        video.save(update_fields=["source_sha256"])
    return video


def processed(path, django_capture_on_commit_callbacks, **fields) -> Video:
    with django_capture_on_commit_callbacks(execute=True):
        video = created(path, **fields)
        services.video_request_processing(video)
    assert run_recorded() == ["done"]
    video = Video.objects.get(pk=video.pk)
    assert video.status == "ready", video.error
    return video


def key_of(url: str, bucket) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == bucket.endpoint, url
    assert "X-Amz-Signature=" in parts.query, url
    return parts.path.removeprefix(f"/{bucket.name}/")


def test_s3_presigner_makes_the_urls_botocore_makes(bucket, monkeypatch):
    import botocore.auth

    frozen = datetime.datetime(2026, 11, 21, 12, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)
    presigner = signing.S3Presigner.for_storage(default_storage)
    assert presigner is not None and presigner.date == "20261121T120000Z"
    for key, expires in (("videos/1/720p/seg_00001.m4s", 600), ("videos/12/storyboard/sheet_0001.jpg", 9000)):
        mine, botos = (
            urlsplit(presigner.url(key, expires)),
            urlsplit(default_storage.url(key, expire=expires)),
        )
        assert (mine.netloc, mine.path) == (botos.netloc, botos.path)
        assert sorted(parse_qsl(mine.query)) == sorted(parse_qsl(botos.query))


@pytest.fixture
def private_video(bucket, clips, django_capture_on_commit_callbacks):
    video = processed(clips["720p"], django_capture_on_commit_callbacks, title="Private", published=True)
    assert video.private  # the default with S3
    track = Subtitle(video=video, language="en", label="English")
    track.file = SimpleUploadedFile("en.srt", b"1\n00:00:00,000 --> 00:00:03,000\nHello\n")
    services.subtitle_save(track)
    return Video.objects.get(pk=video.pk)


@pytest.mark.slow
@db
def test_signed_playback_over_s3(client, admin_client, private_video, bucket, settings):
    video, prefix = private_video, f"videos/{private_video.pk}/"
    status = client.get(f"/api/videos/{video.pk}/").json()
    play = f"/videos/{video.pk}/play/"
    assert status["hls_url"] == play + "master.m3u8" and status["dash_url"] == play + "manifest.mpd"
    assert status["storyboard"]["vtt_url"] == play + "storyboard.vtt"
    assert [s["vtt_url"] for s in status["subtitles"]] == [play + "subtitles/en-subtitles.vtt"]
    for url in [status["poster_url"], *status["storyboard"]["image_urls"]]:
        assert key_of(url, bucket).startswith(prefix) and fetch(url)[0] == 200
    assert fetch(f"{bucket.endpoint}/{bucket.name}/{prefix}master.m3u8")[0] == 403  # the bucket is private

    signed = []  # every presigned URL the manifests hand out

    # HLS: the master names the views; every media playlist names presigned files.
    response = client.get(status["hls_url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "private" in response["Cache-Control"] and "max-age=300" in response["Cache-Control"]
    master = m3u8.loads(response.content.decode())
    playlists = [p.uri for p in master.playlists] + [m.uri for m in master.media]
    assert sorted(playlists) == sorted(
        [f"{play}{r.name}/index.m3u8" for r in video.renditions.all()]
        + [f"{play}subtitles/en-subtitles/index.m3u8"]
    )
    for uri in playlists:
        media = m3u8.loads(client.get(uri).content.decode())
        assert media.segments and media.is_endlist
        signed += [m.uri for m in media.segment_map] + [s.uri for s in media.segments]

    # DASH: a SegmentList per representation, the text track's BaseURL signed.
    mpd = MPEGDASHParser.parse(client.get(status["dash_url"]).content.decode())
    for adaptation_set in mpd.periods[0].adaptation_sets:
        for rep in adaptation_set.representations:
            if rep.base_urls:
                signed.append(rep.base_urls[0].base_url_value)
                continue
            assert not rep.segment_templates
            [segment_list] = rep.segment_lists
            signed.append(segment_list.initializations[0].source_url)
            signed += [u.media for u in segment_list.segment_urls]
            count = sum((s.r or 0) + 1 for s in segment_list.segment_timelines[0].Ss)
            assert count == len(segment_list.segment_urls) == len(video.renditions.get(name=rep.id).segments)

    # Storyboard: each cue's sheet signed, its #xywh kept.
    board = webvtt.from_string(client.get(status["storyboard"]["vtt_url"]).content.decode())
    sheets = {cue.text.partition("#xywh=")[0] for cue in board.captions}
    assert len(sheets) == len(video.storyboard.image_paths)
    signed += sorted(sheets)

    subtitle = client.get(status["subtitles"][0]["vtt_url"])
    assert subtitle.status_code == 200 and "Hello" in subtitle.content.decode()

    keys = {key_of(url, bucket) for url in signed}
    assert all(k.startswith(prefix) for k in keys)  # nothing of another video
    assert {f"{prefix}{r.name}/init.mp4" for r in video.renditions.all()} <= keys
    for url in set(signed):
        code, body, _ = fetch(url)
        assert code == 200 and body, url

    # A tampered signature, and an expired URL, are refused by S3.
    first = m3u8.loads(client.get(f"{play}720p/index.m3u8").content.decode()).segments[0].uri
    tampered = first[:-6] + ("000000" if not first.endswith("000000") else "111111")
    assert fetch(tampered)[0] == 403
    settings.TRANSCODING_SIGNED_URL_SECONDS = 1
    short = m3u8.loads(client.get(f"{play}720p/index.m3u8").content.decode()).segments[0].uri
    assert "X-Amz-Expires=1&" in short
    time.sleep(2.2)
    code, body, _ = fetch(short)
    assert code == 403 and b"expired" in body


@pytest.mark.slow
@db
def test_manifests_are_refused_to_others_and_never_name_other_keys(
    client, admin_client, private_video, bucket
):
    video, play = private_video, f"/videos/{private_video.pk}/play/"
    manifests_ = [
        "master.m3u8", "manifest.mpd", "storyboard.vtt", "720p/index.m3u8", "audio/index.m3u8",
        "subtitles/en-subtitles.vtt", "subtitles/en-subtitles/index.m3u8",
    ]  # fmt: skip
    assert all(client.get(play + name).status_code == 200 for name in manifests_)
    Video.objects.filter(pk=video.pk).update(published=False)
    assert [client.get(play + name).status_code for name in manifests_] == [404] * len(manifests_)
    assert [admin_client.get(play + name).status_code for name in manifests_] == [200] * len(manifests_)
    assert client.get(play + "1080p/index.m3u8").status_code == 404
    assert admin_client.get(play + "1080p/index.m3u8").status_code == 404
    assert admin_client.get(play + "subtitles/fr-subtitles.vtt").status_code == 404

    # A manifest edited to name another video's files: the signer refuses to sign them.
    key = video.renditions.get(name="720p").playlist_path
    stored = default_storage.open(key).read().decode()
    other = f"../../{video.pk + 1}/720p/seg_00001.m4s"
    default_storage.save(key, ContentFile(stored.replace("seg_00001.m4s", other).encode()))
    assert admin_client.get(play + "720p/index.m3u8").status_code == 403


@pytest.mark.slow
@db
def test_original_downloads_by_a_presigned_redirect_for_staff_only(
    client, admin_client, django_user_model, bucket, tiny, django_capture_on_commit_callbacks
):
    video = video_create(source=tiny, original_filename="Été à Paris.mp4", published=True)
    assert client.get(f"/videos/{video.pk}/original/").status_code == 404
    django_user_model.objects.create_user("viewer", password="a-long-password")
    client.login(username="viewer", password="a-long-password")
    assert client.get(f"/videos/{video.pk}/original/").status_code == 404
    response = admin_client.get(f"/videos/{video.pk}/original/")
    assert response.status_code == 302 and "no-store" in response["Cache-Control"]
    assert key_of(response["Location"], bucket) == video.source.name
    code, body, headers = fetch(response["Location"])
    assert code == 200 and body == tiny.read_bytes()
    assert headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''%C3%89t%C3%A9%20%C3%A0%20Paris.mp4" in headers["Content-Disposition"]


@pytest.mark.slow
@db
def test_delete_removes_every_object_of_the_video(bucket, tiny, django_capture_on_commit_callbacks):
    keep = processed(tiny, django_capture_on_commit_callbacks, title="Keep")
    # Another poster time: not a duplicate of the first, so encoded, not linked.
    video = processed(tiny, django_capture_on_commit_callbacks, title="Delete me", poster_time=0.5)
    assert video.outputs_from is None
    track = Subtitle(video=video, language="en")
    track.file = SimpleUploadedFile("en.srt", b"1\n00:00:00,000 --> 00:00:01,000\nHi\n")
    services.subtitle_save(track)
    track.refresh_from_db()
    prefix, original, upload = f"videos/{video.pk}/", video.source.name, track.file.name
    assert (
        len(bucket.keys(prefix)) > 10
        and original in bucket.keys("originals/")
        and upload in bucket.keys("subtitles/")
    )
    before = bucket.keys(f"videos/{keep.pk}/")
    services.video_delete(video)
    assert bucket.keys(prefix) == [] and original not in bucket.keys("") and upload not in bucket.keys("")
    assert bucket.keys(f"videos/{keep.pk}/") == before and keep.source.name in bucket.keys("")


@db
def test_delete_keys_goes_in_batches_of_1000(bucket):
    keys = [f"videos/5/720p/seg_{n:05d}.m4s" for n in range(2345)]
    for key in keys[:5]:
        default_storage.save(key, ContentFile(b"x"))
    calls = []
    client = default_storage.connection.meta.client
    original = client.delete_objects
    client.delete_objects = lambda **kwargs: calls.append(len(kwargs["Delete"]["Objects"])) or original(
        **kwargs
    )
    try:
        assert objects.delete_keys(keys) == 2345
    finally:
        client.delete_objects = original
    assert calls == [1000, 1000, 345] and bucket.keys("videos/5/") == []


def run_command(*args) -> str:
    out = io.StringIO()
    call_command("purge_orphans", *args, stdout=out)
    return out.getvalue()


@pytest.mark.slow
@db
def test_purge_orphans_lists_then_deletes_only_with_yes(bucket, tiny, django_capture_on_commit_callbacks):
    video = processed(tiny, django_capture_on_commit_callbacks)
    owned = bucket.keys()
    orphans = ["videos/99999/720p/seg_00001.m4s", "videos/99999/master.m3u8", "videos/stray.txt",
               "originals/0badc0de/source.mp4", "subtitles/0badc0de/original.srt"]  # fmt: skip
    for key in orphans:
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=b"orphan")

    assert "No orphans." in run_command()  # all younger than a day
    listing = run_command("--min-age-hours", "0")
    assert all(key in listing for key in orphans) and "nothing deleted" in listing
    assert not any(key in listing for key in owned)
    assert bucket.keys() == sorted(owned + orphans)

    assert "Deleted 5 orphan object(s)" in run_command("--min-age-hours", "0", "--yes")
    assert bucket.keys() == owned and video.source.name in owned
    assert "No orphans." in run_command("--min-age-hours", "0")


@pytest.mark.slow
@db
def test_duplicate_upload_plays_the_first_outputs_and_survives_its_deletion(
    client, bucket, tiny, django_capture_on_commit_callbacks
):
    first = processed(tiny, django_capture_on_commit_callbacks, title="First", published=True)
    shared = f"videos/{first.pk}/"
    first_keys = bucket.keys(shared)
    second = created(tiny, title="Second", published=True)
    assert second.source_sha256 == first.source_sha256 == hashlib.sha256(tiny.read_bytes()).hexdigest()

    assert video_link_duplicate(second) is True
    assert run_recorded() == [] and not ProcessingJob.objects.filter(video=second).exists()  # no encode
    second.refresh_from_db()
    assert (second.status, second.playable, second.outputs_from_id) == ("ready", True, first.pk)
    assert second.hls_path == first.hls_path and bucket.keys(f"videos/{second.pk}/") == []
    assert [r.playlist_path for r in second.renditions.all()] == [
        r.playlist_path for r in first.renditions.all()
    ]
    status = selectors.video_status(second)
    assert status["hls_url"] == f"/videos/{second.pk}/play/master.m3u8"
    assert status["storyboard"]["image_urls"] and status["poster_url"]

    def plays(video) -> None:
        master = m3u8.loads(client.get(f"/videos/{video.pk}/play/master.m3u8").content.decode())
        for uri in [p.uri for p in master.playlists] + [m.uri for m in master.media]:
            media = m3u8.loads(client.get(uri).content.decode())
            for url in [media.segment_map[0].uri] + [s.uri for s in media.segments]:
                assert key_of(url, bucket).startswith(shared)
                assert fetch(url)[0] == 200, url

    plays(second)
    services.video_delete(first)
    assert bucket.keys(shared) == first_keys  # still played by the second
    assert first.source.name not in bucket.keys("")
    assert "No orphans." in run_command("--min-age-hours", "0")
    plays(Video.objects.get(pk=second.pk))
    services.video_delete(Video.objects.get(pk=second.pk))
    assert bucket.keys("videos/") == [] and bucket.keys("originals/") == []


@db
def test_duplicates_link_only_when_encoded_alike(bucket, tiny):
    first = created(tiny)
    Video.objects.filter(pk=first.pk).update(
        status="ready", playable=True, hls_path=f"videos/{first.pk}/master.m3u8"
    )
    other_preset = Preset.objects.create(name="Other ladder")
    assert video_find_duplicate(created(tiny)).pk == first.pk
    assert video_link_duplicate(created(tiny, preset=other_preset)) is False
    assert video_link_duplicate(created(tiny, poster_time=1.0)) is False
    with_track = created(tiny)
    Subtitle.objects.create(video=with_track, language="en", status=PartStatus.QUEUED)
    assert video_link_duplicate(with_track) is False
    Video.objects.filter(pk=first.pk).update(status="failed")
    assert video_find_duplicate(created(tiny)) is None
    assert not Rendition.objects.exists() and recording.outbox == []


# --- the player in a browser, from moto -------------------------------------------------------
def in_own_thread(function, timeout: float = 240):
    """Run `function` on a thread of its own. Playwright's sync API keeps an asyncio loop on the
    thread that started it, and tests/scenarios/test_browser.py's session-wide browser holds the main
    thread's until the session ends: a second one must live elsewhere."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # re-raised on the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the browser session timed out"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def watch_in_chromium(url: str, endpoint: str, manifest: str, screenshot: str | None) -> None:
    """Open the player page, play, and check it all came from the bucket through presigned URLs
    under the page's CSP (as tests/scenarios/test_browser.py does, in Debian's Chromium)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--autoplay-policy=no-user-gesture-required"],
        )  # fmt: skip
        try:
            page = chromium.new_context(viewport={"width": 1280, "height": 860}).new_page()
            problems, from_bucket = [], []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: from_bucket.append(r.url) if r.url.startswith(endpoint) else None)

            response = page.goto(url)
            assert endpoint in response.headers["content-security-policy"]
            ready = f"{PLAYER}.dataset.ready === 'true' || {PLAYER}.dataset.error"
            wait_js(page, ready, message="player never loaded")
            assert page.evaluate(f"{PLAYER}.dataset.error") is None, problems
            assert page.evaluate(f"{PLAYER}.player.getAssetUri()").endswith(f"/play/{manifest}")
            play_muted(page)
            wait_js(
                page, "document.querySelector('video').currentTime > 1.0", message="playback never advanced"
            )
            assert problems == []
            assert any("X-Amz-Signature=" in u and u.split("?")[0].endswith(".m4s") for u in from_bucket)
            if screenshot:
                # Hover thumbnails come from presigned sprite sheets.
                box = page.locator(".shaka-seek-bar-container").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
                wait_js(
                    page,
                    "(() => { const i = document.querySelector('.shaka-player-ui-thumbnail-container img');"
                    " return i && i.src.includes('sheet_') && i.src.includes('X-Amz-Signature') && i.complete"
                    " && i.naturalWidth > 0; })()",
                    message="no storyboard thumbnail from the bucket",
                )
                shot(page, screenshot)
        finally:
            chromium.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}")
@pytest.mark.parametrize(("query", "manifest"), [("", "master.m3u8"), ("?format=dash", "manifest.mpd")])
def test_private_video_plays_in_chromium_from_s3(
    live_server, transactional_db, bucket, clips, query, manifest
):
    pytest.importorskip("playwright.sync_api")
    video = video_create(source=clips["720p"], title="Private in S3", published=True)
    services.video_request_processing(video)
    assert run_recorded() == ["done"]
    assert Video.objects.get(pk=video.pk).private
    url = f"{live_server.url}/videos/{video.pk}/{query}"
    screenshot = None if query else "player-private-s3.png"
    in_own_thread(lambda: watch_in_chromium(url, bucket.endpoint, manifest, screenshot))


def test_a_growing_event_playlist_is_cached_for_a_second_only():
    """While a video encodes, its playlists grow: a browser holding one for minutes would stall
    the player at the end of what it saw."""
    from types import SimpleNamespace

    signer = SimpleNamespace(seconds=600)
    segments = (manifests.Segment("seg_00001.m4s", 4.0),)
    growing = _respond(manifests.media_playlist("init.mp4", segments, ended=False), "x", signer)
    done = _respond(manifests.media_playlist("init.mp4", segments), "x", signer)
    assert "max-age=1" in growing["Cache-Control"] and "max-age=300" in done["Cache-Control"]
