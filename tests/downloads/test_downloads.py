"""MP4 downloads made for real: a clip encoded with the small preset, then each rung's
segments and the audio remuxed into one MP4. The file must decode with ffmpeg, carry its index
before its media (faststart), hold H.264 and AAC, start at 0, last as long as the video, and
hold the very packets of the stored segments (copied, never re-encoded); a chunked encode
gives one continuous file. Requests with rungs a video does not have are refused in one line."""

import hashlib
import struct
import subprocess
from pathlib import Path

import av
import pytest
import requests
from django.core.files.storage import default_storage

from tests.support import checks
from tests.support.media import make_clip
from transcoding import selectors, services
from transcoding.conf import ffmpeg_binary
from transcoding.errors import InvalidRequest
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.models import Download, JobState, PartStatus, ProcessingJob, Rendition, Video

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def encoded(path: Path, capture, **fields) -> Video:
    """Uploaded, encoded and every job it queued (the downloads too) run."""
    with capture(execute=True):
        video = video_create(source=path, **fields)
        services.video_request_processing(video, force=True)
    assert set(run_all(capture)) == {"done"}
    return Video.objects.get(pk=video.pk)


def run_all(capture) -> list[str]:
    """Run the recorded jobs, and those they queue after their commits, until none is left."""
    outcomes = []
    while True:
        with capture(execute=True):
            ran = run_recorded()
        if not ran:
            return outcomes
        outcomes += ran


def top_atoms(path: Path) -> list[str]:
    data, found, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        found.append(kind.decode("latin-1"))
        at += size or len(data)
    return found


def packets_digest(path: Path, kind: str) -> tuple[int, str]:
    """(count, SHA-256 of every packet's bytes in decode order) of the first stream of `kind`."""
    digest, count = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        for packet in container.demux(getattr(container.streams, kind)[0]):
            if packet.size:
                digest.update(bytes(packet))
                count += 1
    return count, digest.hexdigest()


def decoded(path: Path) -> dict:
    """ffmpeg decodes every stream without an error; frames and seconds of the video."""
    result = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "frames": frames,
            "start": float((video.start_time or 0) * video.time_base),
            "duration": float(video.duration * video.time_base),
            "codecs": sorted(s.codec_context.name for s in container.streams),
        }


def stored(download: Download) -> Path:
    return Path(default_storage.path(download.path))


def assert_remuxed(download: Download, rendition: Rendition, audio: Rendition | None, seconds: float):
    path = stored(download)
    assert top_atoms(path)[:2] == ["ftyp", "moov"] and "mdat" in top_atoms(path)  # faststart
    info = decoded(path)
    assert info["codecs"] == (["aac", "h264"] if audio else ["h264"])
    assert abs(info["start"]) < 0.001
    assert abs(info["duration"] - seconds) <= checks.DURATION_TOLERANCE
    assert info["frames"] == checks.decoded_frames(rendition)
    for kind, track in (("video", rendition), ("audio", audio)):
        if track is not None:
            segments = checks.concatenated(track)
            try:
                assert packets_digest(path, kind) == packets_digest(segments, kind), (
                    kind
                )  # copied, not encoded
            finally:
                segments.unlink()
    assert download.size == path.stat().st_size and download.duration == pytest.approx(seconds, abs=0.25)


def test_the_preset_makes_every_rung_s_mp4_before_the_video_is_ready(
    small_preset, clips, django_capture_on_commit_callbacks
):
    small_preset.download_rungs = "all"
    small_preset.save()
    video = encoded(clips["720p"], django_capture_on_commit_callbacks, title="Été à Paris")
    assert video.status == "ready", video.error
    job = ProcessingJob.objects.get(video=video, step=ProcessingJob.Step.DOWNLOAD)
    assert job.state == JobState.DONE and job.options == {"rungs": ["360p", "240p"]}
    audio = video.renditions.get(kind=Rendition.Kind.AUDIO)
    for download in video.downloads.all():
        assert (
            download.status == PartStatus.READY
            and download.path == f"videos/{video.pk}/downloads/{download.name}.mp4"
        )
        assert_remuxed(download, video.renditions.get(name=download.name), audio, 6.0)
    document = selectors.video_document(selectors.with_parts(Video.objects.filter(pk=video.pk)).get())
    assert list(document["download_urls"]) == ["360p", "240p"]


def test_a_silent_video_gets_a_video_only_mp4(small_preset, clips, django_capture_on_commit_callbacks):
    video = encoded(clips["silent"], django_capture_on_commit_callbacks)
    assert not video.downloads.exists()  # the preset asks for none
    with django_capture_on_commit_callbacks(execute=True):
        job = services.downloads_request(video)
    assert job.options == {"rungs": ["360p"]}  # the highest rung
    assert Video.objects.get(pk=video.pk).status == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        assert run_recorded() == ["done"]
    assert Video.objects.get(pk=video.pk).status == "ready"
    download = video.downloads.get()
    assert_remuxed(download, video.renditions.get(name="360p"), None, 5.0)

    again = services.downloads_request(video, ["360p"])  # made already, from these renditions
    assert again.state == JobState.DONE and run_recorded() == []
    forced = services.downloads_request(video, ["360p"], force=True)
    assert forced.state == JobState.QUEUED


def test_a_chunked_encode_gives_one_continuous_mp4_from_0(
    small_preset, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_CHUNK_SECONDS = 4
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 6
    small_preset.download_rungs = "highest"
    small_preset.save()
    clip = make_clip(tmp_path / "twelve.mp4", seconds=12, size="640x360", rate="30000/1001")
    video = encoded(clip, django_capture_on_commit_callbacks)
    assert ProcessingJob.objects.filter(video=video, step=ProcessingJob.Step.ENCODE).count() == 3
    download = video.downloads.get()
    assert download.name == "360p" and download.status == PartStatus.READY
    audio = video.renditions.get(kind=Rendition.Kind.AUDIO)
    assert_remuxed(download, video.renditions.get(name="360p"), audio, 12.0)
    with av.open(str(stored(download))) as container:
        stream = container.streams.video[0]
        times = sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None)
    steps = {round(b - a, 4) for a, b in zip(times, times[1:])}
    assert times[0] == 0 and steps == {round(1001 / 30000, 4)}  # no gap, no overlap at the joins


def test_requests_name_only_rungs_the_video_has(small_preset, clips, django_capture_on_commit_callbacks):
    video = video_create(source=clips["silent"])
    with pytest.raises(InvalidRequest, match="not ready"):
        services.downloads_request(video)
    video = encoded(clips["silent"], django_capture_on_commit_callbacks)
    for rungs in (
        ["1080p"],
        ["../../etc/passwd"],
        ["360p", "x" * 10_000],
        ["720p\n"],
        "360p",
        [],
        [["360p"]],
        [360],
        {"360p": 1},
    ):
        with pytest.raises(InvalidRequest) as refused:
            services.downloads_request(video, rungs)
        assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    assert not video.downloads.exists() and not ProcessingJob.objects.filter(step="download").exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video, parts=["downloads"])
    assert ProcessingJob.objects.get(step="download").options == {"rungs": ["360p"]}


def test_reprocessing_the_renditions_removes_the_downloads_and_remakes_those_asked_for(
    small_preset, clips, django_capture_on_commit_callbacks
):
    video = encoded(clips["silent"], django_capture_on_commit_callbacks)  # the preset asks for none
    with django_capture_on_commit_callbacks(execute=True):
        services.downloads_request(video, ["240p"])
    assert run_all(django_capture_on_commit_callbacks) == ["done"]
    first = video.downloads.get()
    assert default_storage.exists(first.path)
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video, parts=["renditions", "downloads"], force=True)
    assert not video.downloads.exists() and not default_storage.exists(first.path)
    assert run_all(django_capture_on_commit_callbacks) == ["done", "done"]  # the encode, then the downloads
    remade = Video.objects.get(pk=video.pk).downloads.get()
    assert remade.name == "360p" and remade.status == PartStatus.READY and default_storage.exists(remade.path)
    services.video_delete(video)
    assert not default_storage.exists(remade.path)


def test_on_s3_the_download_is_made_from_streamed_segments_and_fetched_by_its_signed_url(
    s3, small_preset, tiny, client, tmp_path, django_capture_on_commit_callbacks
):
    small_preset.download_rungs = "highest"
    small_preset.save()
    video = encoded(tiny, django_capture_on_commit_callbacks, title="On S3")
    assert video.private and video.status == "ready", video.error
    download = video.downloads.get()
    assert s3.keys(f"videos/{video.pk}/downloads/") == [download.path]
    url = selectors.video_document(selectors.with_parts(Video.objects.filter(pk=video.pk)).get())[
        "download_urls"
    ][download.name]
    redirect = client.get(url)
    assert redirect.status_code == 302
    fetched = requests.get(redirect["Location"], timeout=30)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "video/mp4"
    assert fetched.headers["Content-Disposition"].startswith(
        f'attachment; filename="on-s3-{download.name}.mp4"'
    )
    path = tmp_path / "download.mp4"
    path.write_bytes(fetched.content)
    assert top_atoms(path)[:2] == ["ftyp", "moov"]
    info = decoded(path)
    assert info["codecs"] == ["aac", "h264"] and abs(info["duration"] - 2.0) <= checks.DURATION_TOLERANCE
