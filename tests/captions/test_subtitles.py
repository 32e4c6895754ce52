"""Uploaded subtitles: validated, normalized to UTF-8 WebVTT, segmented for HLS and named by
both manifests."""

import io

import m3u8
import pysubs2
import pytest
import webvtt
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from mpegdash.parser import MPEGDASHParser

from tests.support import checks
from transcoding import services
from transcoding.captions import subtitles
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.media import manifests
from transcoding.models import PartStatus, Subtitle, Video
from transcoding.selectors import video_status

SRT = (
    "1\n00:00:00,500 --> 00:00:02,000\nHello <b>there</b>\n\n"
    "2\n00:00:04,500 --> 00:00:05,500\nSecond cue\nacross two lines\n"
)
VTT = "WEBVTT\n\n00:00.500 --> 00:02.000\nHello there\n\n00:04.500 --> 00:05.500 align:start\nSecond cue\n"


@pytest.mark.parametrize(
    "data, first_text",
    [
        (SRT.encode(), "Hello <b>there</b>"),
        (b"\xef\xbb\xbf" + SRT.replace("\n", "\r\n").encode(), "Hello <b>there</b>"),  # BOM + CRLF
        (VTT.encode(), "Hello there"),
        (SRT.replace("Hello", "Café").encode("cp1252"), "Café <b>there</b>"),  # legacy encoding
        (SRT.replace("Hello", "Grüße").encode("utf-16"), "Grüße <b>there</b>"),
        (SRT.replace("Hello <b>there</b>", "Hi {\\i1}there{\\i0}{\\an8}").encode(), "Hi <i>there</i>"),
    ],
    ids=["srt", "srt-bom-crlf", "vtt", "cp1252", "utf16", "override-tags"],
)
def test_parse_normalizes(data, first_text):
    cues = subtitles.parse(data)
    assert [c.start for c in cues] == [0.5, 4.5]
    assert cues[0].text == first_text
    assert cues[0].end == 2.0


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "The subtitle file is empty."),
        (b"just some words, no timing at all\n", "neither SRT nor WebVTT"),
        (pysubs2.SSAFile.from_string(SRT).to_string("ass").encode(), "The subtitle file is ASS; upload SRT"),
        (b"WEBVTT\n\nNOTE nothing here\n", "has no cues"),
        (b"\x00\x01\x02" * 50, "neither SRT nor WebVTT"),
    ],
    ids=["empty", "prose", "ass", "no-cues", "binary"],
)
def test_parse_refuses_with_one_sentence(data, message):
    with pytest.raises(subtitles.SubtitleInvalid, match=message) as caught:
        subtitles.parse(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("code", ["en", "pt-BR", "spa", "zh-Hant"])
def test_language_codes(code):
    assert subtitles.validate_language(code) == code


@pytest.mark.parametrize("code", ["", "english", "e", "en_US", "../x"])
def test_bad_language_codes(code):
    with pytest.raises(subtitles.SubtitleInvalid):
        subtitles.validate_language(code)


@pytest.fixture
def ready_video(clips, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["720p"], published=True)
        services.video_request_processing(video)
    assert run_recorded() == ["done"]
    return Video.objects.get(pk=video.pk)


def add_track(video, data=SRT, language="en", label="English", default=True):
    track = Subtitle(video=video, language=language, label=label, is_default=default)
    track.file = SimpleUploadedFile("english.srt", data.encode() if isinstance(data, str) else data)
    return services.subtitle_save(track)


@pytest.mark.slow
@pytest.mark.django_db
def test_uploaded_track_is_in_both_manifests(ready_video):
    add_track(ready_video)
    add_track(ready_video, VTT, language="de", label="Deutsch", default=False)
    video = Video.objects.get(pk=ready_video.pk)
    master = m3u8.load(str(checks.stored(video.hls_path)))
    subs = [m for m in master.media if m.type == "SUBTITLES"]
    assert [(m.language, m.name, m.default) for m in subs] == [
        ("de", "Deutsch", "NO"),
        ("en", "English", "YES"),
    ]
    assert all(p.stream_info.subtitles == "subs" for p in master.playlists)

    english = video.subtitles.get(language="en")
    assert english.status == PartStatus.READY and english.cue_count == 2
    playlist = m3u8.load(str(checks.stored(english.playlist_path)))
    top = video.renditions.get(name="720p")
    # one WebVTT segment per media segment, on the same grid
    assert [s.duration for s in playlist.segments] == [d for _, d in top.segments]
    texts = [
        checks.stored(english.playlist_path).parent.joinpath(s.uri).read_text() for s in playlist.segments
    ]
    assert "Hello <b>there</b>" in texts[0] and "Second cue" in texts[1] and texts[1].startswith("WEBVTT")

    whole = list(webvtt.read(str(checks.stored(english.vtt_path))))
    assert [c.raw_text for c in whole] == ["Hello <b>there</b>", "Second cue\nacross two lines"]

    mpd = MPEGDASHParser.parse(checks.stored(video.dash_path).read_text())
    text_sets = [s for s in mpd.periods[0].adaptation_sets if s.content_type == "text"]
    assert sorted(s.lang for s in text_sets) == ["de", "en"]
    assert all(s.mime_type == "text/vtt" for s in text_sets)

    api = video_status(video)["subtitles"]
    assert {(s["language"], s["label"], s["status"]) for s in api} == {
        ("en", "English", "ready"),
        ("de", "Deutsch", "ready"),
    }
    assert all(s["vtt_url"].endswith(".vtt") for s in api)
    assert checks.decode_errors(str(checks.stored(video.hls_path))) == ""


@pytest.mark.slow
@pytest.mark.django_db
def test_track_uploaded_before_processing_is_published_by_the_encode(
    clips, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["silent"])
        add_track(video)
        assert video.subtitles.get().status == PartStatus.QUEUED
        services.video_request_processing(video)
    assert run_recorded() == ["done"]
    track = Subtitle.objects.get(video=video)
    assert track.status == PartStatus.READY
    assert "TYPE=SUBTITLES" in checks.stored(Video.objects.get(pk=video.pk).hls_path).read_text()


@pytest.mark.slow
@pytest.mark.django_db
def test_removing_a_track_takes_it_out_of_the_manifests(ready_video):
    track = add_track(ready_video)
    services.subtitle_delete(track)
    video = Video.objects.get(pk=ready_video.pk)
    assert "SUBTITLES" not in checks.stored(video.hls_path).read_text()
    assert not checks.stored(track.vtt_path).exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_admin_refuses_a_broken_subtitle_file_and_changes_nothing(admin_client, ready_video):
    master_before = checks.stored(ready_video.hls_path).read_text()
    url = f"/admin/transcoding/video/{ready_video.pk}/change/"
    form = {
        "title": ready_video.title, "description": "", "preset": ready_video.preset_id, "poster_time": "",
        "published": "on", "speech_language": "",
        "subtitles-TOTAL_FORMS": "1", "subtitles-INITIAL_FORMS": "0", "subtitles-MIN_NUM_FORMS": "0",
        "subtitles-MAX_NUM_FORMS": "1000",
        "subtitles-0-language": "en", "subtitles-0-label": "English", "subtitles-0-kind": "subtitles",
        "subtitles-0-file": SimpleUploadedFile("broken.srt", b"this is not a subtitle file"),
        "renditions-TOTAL_FORMS": "0", "renditions-INITIAL_FORMS": "0",
        "jobs-TOTAL_FORMS": "0", "jobs-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "The subtitle file is neither SRT nor WebVTT." in response.content.decode()
    assert not Subtitle.objects.exists()
    assert checks.stored(ready_video.hls_path).read_text() == master_before

    form["subtitles-0-file"] = SimpleUploadedFile("good.srt", SRT.encode())
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Subtitle.objects.get().status == PartStatus.READY


# --- legacy encodings of short texts, and text that could break a manifest line ------------------
@pytest.mark.parametrize(
    "text, encoding, language",
    [
        ("crème", "cp1252", "fr"),
        ("crème", "cp1252", ""),  # no language given: Western European wins a tie
        ("naïve façade", "cp1252", "en"),
        ("Não, obrigação.", "cp1252", "pt"),
        ("¿Qué pasó, señor?", "cp1252", "es"),
        ("Grüße aus München", "cp1252", "de"),
        ("Zażółć gęślą jaźń", "cp1250", "pl"),
        ("Příliš žluťoučký kůň", "cp1250", "cs"),
        ("Привет, как дела?", "cp1251", "ru"),
        ("Καλημέρα, τι κάνεις;", "cp1253", "el"),
        ("Teşekkürler, güzel bir gün", "cp1254", "tr"),
    ],
)
def test_short_legacy_texts_decode_as_written(text, encoding, language):
    data = f"1\n00:00:01,000 --> 00:00:02,000\n{text}\n".encode(encoding)
    assert subtitles.decode(data, language) == data.decode(encoding)
    assert subtitles.parse(data, language)[0].text == text


@pytest.mark.parametrize("label", ["English\r#EXT-X-ENDLIST", "English\n#EXTINF:1,", 'A "quoted"\x00 label'])
def test_a_label_never_breaks_a_line_of_the_master_playlist(label):
    track = manifests.SubtitleTrack(
        language="en", name=label, playlist_uri="s/en/index.m3u8", vtt_uri="s/en.vtt"
    )
    video = manifests.VideoVariant(
        name="360p", playlist_uri="360p/index.m3u8", init_uri="360p/init.mp4", media_template="x",
        segments=(), width=640, height=360, fps=30, codec="avc1.64001e", peak_bitrate=1, average_bitrate=1,
    )  # fmt: skip
    lines = manifests.master_playlist((video,), None, (track,)).splitlines()
    assert all(line.startswith("#EXT") or line.endswith(".m3u8") for line in lines), lines
    assert len(lines) == 6
    with pytest.raises(subtitles.SubtitleInvalid):
        subtitles.validate_label(label)


def test_cue_text_with_blank_lines_stays_one_cue():
    text = manifests.webvtt([manifests.Cue(1, 2, "Hi\n\n00:00:03.000 --> 00:00:04.000\nInjected\r\x07")])
    cues = list(webvtt.from_buffer(io.StringIO(text)))
    assert len(cues) == 1 and cues[0].text == "Hi\n00:00:03.000 -> 00:00:04.000\nInjected"


@pytest.mark.django_db
def test_cues_made_to_overlap_everything_are_refused_before_anything_is_stored(clips):
    """20,000 cues, each from 0 to 99 hours: every segment would hold all of them."""
    video = video_create(source=clips["silent"], title="v")
    Video.objects.filter(pk=video.pk).update(duration=400.0)
    video.renditions.create(name="240p", status=PartStatus.READY, segments=[["s", 4.0]] * 100)
    body = "".join(f"{n}\n00:00:00,000 --> 99:00:00,000\nline {n}\n\n" for n in range(1, 20_001))
    track = add_track(Video.objects.get(pk=video.pk), body.encode())
    track.refresh_from_db()
    assert track.status == PartStatus.FAILED
    assert track.error.startswith("The subtitle track's cues overlap too much to be cut into segments")
    assert track.vtt_path == "" and not default_storage.exists(subtitles.track_prefix(track) + ".vtt")


def test_cues_are_cut_to_the_video():
    cues = [manifests.Cue(1, 5, "a"), manifests.Cue(8, 99_000, "b"), manifests.Cue(12, 13, "c")]
    assert subtitles.clip_to(cues, 10.0) == [manifests.Cue(1, 5, "a"), manifests.Cue(8, 10.0, "b")]
