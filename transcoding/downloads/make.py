"""The download step: for each rung asked for, one MP4 made from what is stored already.

A rung's init segment followed by its media segments is a valid fragmented MP4 (CMAF), and so
is the audio's; each is copied from storage into a local file (streamed, a buffer at a time:
a video is never held in memory), then ffmpeg copies both tracks' packets into one MP4 with
its index first (`media.ffmpeg.build_remux_args`: no decoding, no encoding, the timestamps
moved back to 0). Segments are named by the rendition rows, wherever they are stored (a chunked
encode's chunks all write under the rung's directory; a video playing another's outputs names
that video's), and each key is checked against the video's prefixes before it is read.

ffmpeg reads only those local files, through the forced `mov` demuxer over `file` (the input
rules of `media.containers`): never a playlist, a concat list or anything else a user could
have written. The result is probed before it is stored: a video stream starting at 0 and
lasting as long as the rendition, and the audio when the video has one.
"""

import logging
import posixpath
import tempfile
from collections.abc import Callable
from pathlib import Path

import av

from transcoding.conf import ffmpeg_binary, settings
from transcoding.errors import EncodeError, PermanentError
from transcoding.media import ffmpeg
from transcoding.media.containers import pyav_open_kwargs, source_input
from transcoding.media.ffmpeg_process import run_ffmpeg
from transcoding.models import RUNG_NAME, Download, PartStatus, ProcessingJob, Rendition, Video
from transcoding.status import parts as part_status
from transcoding.status.parts import part_ready
from transcoding.storage import objects, signing

log = logging.getLogger(__name__)

# How far the download's video may start from 0, and its length from the rendition's.
START_TOLERANCE = 0.05
DURATION_TOLERANCE = 0.25


def make_downloads(job: ProcessingJob, heartbeat: Callable[[], None]) -> float:
    """Make each rung's MP4 the job names. Returns ffmpeg's CPU seconds. A retry skips the
    downloads an earlier attempt finished."""
    video = Video.objects.get(pk=job.video_id)
    audio = _audio(video)
    cpu = 0.0
    for name in job.options.get("rungs", []):
        row = Download.objects.filter(video=video, name=name).first() if RUNG_NAME.match(name) else None
        if row is None:
            continue  # removed meanwhile (the renditions are being made again)
        if row.status == PartStatus.READY and row.finished_at and row.finished_at >= job.created_at:
            continue
        rendition = video.renditions.filter(kind=Rendition.Kind.VIDEO, name=name, status=PartStatus.READY)
        rendition = rendition.first()
        if rendition is None:
            part_status.downloads_fail(video.pk, f"The {name} rendition is not ready.", [name])
            continue
        part_status.download_start(row)
        cpu += make_download(video, row, rendition, audio, heartbeat)
    return cpu


def _audio(video: Video) -> Rendition | None:
    """The audio rendition to mux in: None for a silent video; refused while it is not made."""
    audio = video.renditions.filter(kind=Rendition.Kind.AUDIO).first()
    if audio is None or audio.status == PartStatus.SKIPPED:
        return None
    if audio.status != PartStatus.READY:
        raise PermanentError("The audio is not ready: downloads are made once it is.")
    return audio


def make_download(
    video: Video, row: Download, rendition: Rendition, audio: Rendition | None, heartbeat: Callable[[], None]
) -> float:
    """One rung's MP4, stored under the video's prefix and marked ready. Returns CPU seconds."""
    signer = signing.video_signer(video)
    with tempfile.TemporaryDirectory(prefix=f"download{video.pk}-", dir=settings.WORK_DIR) as work:
        work = Path(work)
        video_track = fetch_track(rendition, work / "video.mp4", signer.check, heartbeat)
        audio_track = audio and fetch_track(audio, work / "audio.mp4", signer.check, heartbeat)
        out = work / "download.mp4"
        args = ffmpeg.build_remux_args(
            ffmpeg_binary(),
            source_input(str(video_track), ffmpeg.TRACK_CONTAINER),
            audio_track and source_input(str(audio_track), ffmpeg.TRACK_CONTAINER),
            str(out),
        )
        run = run_ffmpeg(args, lambda _progress: heartbeat())
        duration = check_download(out, rendition.duration or 0.0, audio=audio is not None)
        key = objects.download_key(video.pk, row.name)
        size = objects.store_file(out, key)
    part_ready(row, path=key, size=size, duration=duration, bytes_written=size, cpu_seconds=run.cpu_seconds)
    log.info("video %s: %s download made, %d bytes", video.pk, row.name, size)
    return run.cpu_seconds


def track_keys(rendition: Rendition) -> list[str]:
    """The stored keys of a rendition as one stream: its init segment, then its segments."""
    if not rendition.init_path:
        raise PermanentError(f"The {rendition.name} rendition has no init segment.")
    base = posixpath.dirname(rendition.init_path)
    return [rendition.init_path, *(f"{base}/{uri}" for uri, _ in rendition.segments)]


def fetch_track(rendition: Rendition, path: Path, check: Callable[[str], None], heartbeat) -> Path:
    """Copy a rendition's init segment and segments, in order, into one local file. Every key
    must be under the video's prefixes (`check`) and a plain file name beside the init segment."""
    with open(path, "wb") as handle:
        for key in track_keys(rendition):
            check(key)
            objects.append_to(key, handle)
            heartbeat()
    return path


def check_download(path: Path, expected: float, *, audio: bool) -> float:
    """Probe the MP4 as a player would: H.264 video starting at 0 and lasting `expected`
    seconds (the rendition's), AAC audio when there is audio. Returns the video's duration.
    Anything else is a fault of the step, not of a source: EncodeError, not retried."""
    opened = pyav_open_kwargs(source_input(str(path), ffmpeg.TRACK_CONTAINER))
    with av.open(f"file:{path}", **opened) as container:
        videos, audios = container.streams.video, container.streams.audio
        if len(videos) != 1 or videos[0].codec_context.name != "h264":
            raise EncodeError("The download has no H.264 video stream.")
        if audio and (len(audios) != 1 or audios[0].codec_context.name != "aac"):
            raise EncodeError("The download has no AAC audio stream.")
        stream = videos[0]
        start = float((stream.start_time or 0) * stream.time_base)
        duration = float((stream.duration or 0) * stream.time_base)
    if abs(start) > START_TOLERANCE:
        raise EncodeError(f"The download starts at {start:.3f} s instead of 0.")
    if abs(duration - expected) > DURATION_TOLERANCE:
        raise EncodeError(f"The download lasts {duration:.2f} s, the rendition {expected:.2f} s.")
    return round(duration, 3)
