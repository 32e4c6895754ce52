"""Sources that are not videos but make FFmpeg open other things: playlists and manifests that
name URLs (cloud metadata credentials) or files elsewhere on the disk, concat lists that name
themselves, images. Each is refused with one line, fails at the first attempt, and fetches
nothing: a canary HTTP server on 127.0.0.1 counts the requests it gets (tests/support/canary.py).
Against S3 (moto's server over HTTP) and local storage; nothing patched."""

import functools
import http.server
import threading

import pytest
from django.core.files.storage import default_storage

from tests.support.direct_upload import upload_file
from tests.support.media import ffmpeg as run
from tests.support.media import make_clip
from transcoding import services
from transcoding.conf import ffmpeg_binary
from transcoding.errors import EncodeError, SourceRejected
from transcoding.ingest.create import video_create, video_create_from_stored
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.media import containers, ffmpeg
from transcoding.media.containers import source_input
from transcoding.media.ffmpeg_process import run_ffmpeg
from transcoding.media.ladder import SourceInfo, plan_encode
from transcoding.media.probe import probe_source
from transcoding.models import PartStatus, Video, preset_spec

NOT_ACCEPTED = "not accepted (a playlist, an image or another non-video format); upload a video file"
NOT_A_VIDEO = "The file is not a video or is truncated: FFmpeg cannot read its container."


def refused(message: str) -> bool:
    """One of the two one-line refusals: FFmpeg recognised a format that is not allowed, or
    no allowed format (the server's content type gives HLS no hint) recognised the bytes."""
    return (NOT_ACCEPTED in message or message == NOT_A_VIDEO) and "\n" not in message


def playlist(urls: list[str]) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:10", "#EXT-X-MEDIA-SEQUENCE:0"]
    for url in urls:
        lines += ["#EXTINF:4.0,", url]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def dash_manifest(base: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
     type="static" mediaPresentationDuration="PT4S" minBufferTime="PT2S">
 <Period id="0" start="PT0S"><AdaptationSet id="0" contentType="video" mimeType="video/mp4">
  <Representation id="v" bandwidth="100000" codecs="avc1.64001e" width="320" height="240">
   <SegmentTemplate timescale="1000" duration="2000" startNumber="1"
     initialization="{base}/init.mp4" media="{base}/seg$Number$.m4s"/>
  </Representation></AdaptationSet></Period></MPD>
""".encode()


def metadata_urls(canary) -> list[str]:
    return [canary.url(f"/latest/meta-data/iam/security-credentials/role-{n}.mp4") for n in range(3)]


def assert_failed_once(video: Video) -> Video:
    video = Video.objects.get(pk=video.pk)
    assert video.status == "failed", video.status
    assert refused(video.error), video.error
    job = video.jobs.get()
    assert job.state == "failed" and job.attempt == 1  # refused, not retried
    assert not video.playable and not video.renditions.filter(status=PartStatus.READY).exists()
    return video


# --- through the product ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_playlist_uploaded_to_s3_as_mp4_is_refused_and_fetches_nothing(admin_client, s3, canary, tmp_path):
    """A direct upload named holiday.mp4, sent as an HLS playlist (its content type too)."""
    holiday = tmp_path / "holiday.mp4"
    holiday.write_bytes(playlist(metadata_urls(canary)))

    response = upload_file(admin_client, holiday, content_type="application/vnd.apple.mpegurl", title="x")

    assert response.status_code == 400
    assert refused(response.json()["error"])
    assert canary.hits == []
    assert s3.keys() == [] and not Video.objects.exists()  # the refused object is deleted


@pytest.mark.django_db
def test_a_playlist_in_the_bucket_fails_in_the_worker_and_fetches_nothing(
    s3, canary, django_capture_on_commit_callbacks
):
    """An object dropped under incoming/ (the S3 router makes a video of it) with the playlist
    content type S3 then serves it with: the probe in the worker refuses it."""
    s3.client.put_object(
        Bucket=s3.name,
        Key="incoming/holiday.mp4",
        Body=playlist(metadata_urls(canary)),
        ContentType="application/vnd.apple.mpegurl",
    )
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create_from_stored("incoming/holiday.mp4")
        services.video_request_processing(video)

    assert run_recorded() == ["failed"]

    assert_failed_once(video)
    assert canary.hits == []
    assert s3.keys() == ["incoming/holiday.mp4"]  # the original is kept; nothing was published


@pytest.mark.django_db
def test_a_playlist_naming_a_file_elsewhere_on_the_disk_is_refused(
    tmp_path, django_capture_on_commit_callbacks
):
    """Local storage: a playlist whose segment is a video elsewhere on the server's disk."""
    (tmp_path / "elsewhere").mkdir()
    secret = make_clip(tmp_path / "elsewhere" / "secret.mp4", seconds=2, size="320x240")
    holiday = tmp_path / "holiday.m3u8"
    holiday.write_bytes(playlist([f"file://{secret}"]))
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=holiday)
        services.video_request_processing(video)

    assert run_recorded() == ["failed"]

    video = assert_failed_once(video)
    assert not video.source.name.endswith(".m3u8")  # the stored name is the server's
    assert not default_storage.exists(f"videos/{video.pk}/poster.jpg")
    assert default_storage.listdir(".")[0] == ["originals"]  # no outputs at all


# --- the probe: every kind of file that opens others ----------------------------------------------


def _files(tmp_path, canary) -> dict:
    concat = tmp_path / "loop.mp4"
    concat.write_text(f"ffconcat version 1.0\nfile '{concat}'\nfile '{concat}'\n")
    png = tmp_path / "frame.mp4"
    run(
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=64x64",
        "-frames:v",
        "1",
        "-f",
        "image2",
        "-c:v",
        "png",
        str(png),
    )
    return {
        "hls playlist": playlist(metadata_urls(canary)),
        "dash manifest": dash_manifest(canary.url("/latest/meta-data")),
        "self-referencing ffconcat": concat.read_bytes(),
        "png image": png.read_bytes(),
        "html page": b"<!doctype html><html><script>alert(document.cookie)</script></html>\n" * 20,
        "srt subtitles": b"1\n00:00:01,000 --> 00:00:02,000\nHello\n\n" * 20,
    }


@pytest.mark.parametrize(
    "kind",
    ["hls playlist", "dash manifest", "self-referencing ffconcat", "png image", "html page", "srt subtitles"],
)
def test_the_probe_refuses_what_is_not_a_video_container(kind, tmp_path, canary):
    data = _files(tmp_path, canary)[kind]
    path = tmp_path / "upload.mp4"
    path.write_bytes(data)
    with pytest.raises(SourceRejected) as refusal:
        probe_source(source_input(str(path)), size=len(data))
    assert refused(str(refusal.value))
    assert canary.hits == []


def test_the_probe_accepts_real_containers(clips, tmp_path):
    mkv, ts = tmp_path / "clip.mkv", tmp_path / "clip.ts"
    run("-i", str(clips["silent"]), "-c", "copy", str(mkv))
    run("-i", str(clips["silent"]), "-c", "copy", str(ts))
    found = {
        path.suffix: probe_source(source_input(str(path)), size=path.stat().st_size).container
        for path in (clips["silent"], mkv, ts)
    }
    assert found == {".mp4": "mov,mp4,m4a,3gp,3g2,mj2", ".mkv": "matroska,webm", ".ts": "mpegts"}


# --- the ffmpeg commands: the demuxer is forced, the protocol fixed --------------------------------


@pytest.fixture
def file_server(tmp_path):
    """A plain HTTP server for tmp_path (the way a presigned URL serves the original)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _commands(source, workdir) -> dict:
    info = SourceInfo(container="mp4", duration=4.0, width=320, height=240, video_codec="h264", fps=30,
                      audio_codec="aac", audio_channels=2, audio_sample_rate=48000)  # fmt: skip
    plan = plan_encode(info, preset_spec(None))
    binary = ffmpeg_binary()
    return {
        "encode": ffmpeg.build_encode_args(binary, source, plan, workdir, ("storyboard",)),
        "audio": ffmpeg.build_audio_args(binary, source, plan, workdir),
        "speech": ffmpeg.build_audio_extract_args(binary, source, f"{workdir}/speech.wav"),
    }


@pytest.mark.parametrize("kind", ["hls playlist", "dash manifest"])
def test_no_ffmpeg_command_follows_what_a_manifest_names(kind, tmp_path, canary, file_server):
    """Even if a manifest got past the probe, each ffmpeg command opens its source with the
    demuxer the probe found and only over the source's own protocol: the manifest is not read
    as one, and the canary gets nothing."""
    data = _files(tmp_path, canary)[kind]
    (tmp_path / "original").write_bytes(data)
    workdir = tmp_path / "work"
    (workdir / "storyboard").mkdir(parents=True)
    (workdir / "audio").mkdir()
    for location in (f"{file_server}/original", str(tmp_path / "original")):
        source = source_input(location, "mov,mp4,m4a,3gp,3g2,mj2")
        for args in _commands(source, str(workdir)).values():
            with pytest.raises(EncodeError):
                run_ffmpeg(args, lambda progress: None)
    assert canary.hits == []


def test_only_allowed_demuxers_can_be_forced_and_only_over_one_protocol():
    for container in ("hls", "dash", "concat", "image2", "png_pipe", "srt", "tee", ""):
        with pytest.raises(SourceRejected):
            containers.demuxer_for(container)
    with pytest.raises(SourceRejected):
        source_input("ftp://example.com/x.mp4")
    with pytest.raises(ValueError):  # a command from an unprobed source is a program error
        containers.ffmpeg_input_options(source_input("/x/source"))
    assert containers.demuxer_for("matroska,webm") == "matroska"
    args = containers.ffmpeg_input_options(source_input("https://bucket.example/o?sig=1", "mov,mp4"))
    assert args[:4] == [
        "-protocol_whitelist",
        "https,tls,tcp",
        "-format_whitelist",
        containers.FORMAT_WHITELIST,
    ]
    assert args[args.index("-f") + 1] == "mov" and args[args.index("-enable_drefs") + 1] == "0"
    assert source_input("/media/originals/x/source").location == "file:/media/originals/x/source"
