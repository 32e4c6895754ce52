"""Live publishing: a video plays while it still encodes.

While a chunk's ffmpeg runs, `LivePublisher.tick` records the segments stored so far in the
chunk's result; when every earlier chunk is complete (this chunk is the frontier), each
rendition's playlist is republished as an HLS EVENT playlist of the longest run of segments
from the first that exist, and the master playlist goes out once every rendition has a first
segment: the video is then `playable`.
"""

import logging
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction

from transcoding import packaging
from transcoding.encoding import publish
from transcoding.encoding.results import ChunkResult
from transcoding.ingest.hashing import sha256_of_path
from transcoding.media import ffmpeg
from transcoding.models import JobState, PartStatus, ProcessingJob, Rendition, Video
from transcoding.status import videos
from transcoding.storage import objects

log = logging.getLogger(__name__)


class LivePublisher:
    """Records this chunk's stored segments, init checksums and codecs as its result, and
    extends what players see when this chunk is the frontier."""

    def __init__(self, job: ProcessingJob, root_id: int, workdir: Path, dirs: list[str], uploader):
        self.job, self.root_id, self.workdir, self.dirs, self.uploader = job, root_id, workdir, dirs, uploader
        self.inits: dict[str, str] = {}
        self.codecs: dict[str, str] = {}
        self.last: dict = {}

    def store_init(self, name: str) -> None:
        """Each rung's init segment, stored once its first segment exists (so it is whole).
        Every chunk makes the same bytes (the stitch checks their checksums); the first chunk
        stores them, a later one only if they are missing (its chunk may finish first)."""
        path = self.workdir / name / ffmpeg.INIT_NAME
        key = f"{objects.video_prefix(self.job.video_id)}/{name}/{ffmpeg.INIT_NAME}"
        if not self.job.chunk or not default_storage.exists(key):
            objects.store_file(path, key)
        self.inits[name] = sha256_of_path(path)
        self.codecs[name] = "mp4a.40.2" if name == ffmpeg.AUDIO_DIR else publish.video_codec_string(path)

    def collect(self) -> dict[str, list]:
        stored = dict(self.uploader.sizes)
        segments = {}
        for name in self.dirs:
            found = publish.finished_segments(self.workdir / name, stored)
            if found and name not in self.inits:
                self.store_init(name)
            if found:
                segments[name] = found
        return segments

    def tick(self) -> None:
        segments = self.collect()
        if segments == self.last:
            return
        result = ChunkResult(segments=segments, inits=self.inits, codecs=self.codecs)
        ProcessingJob.objects.filter(pk=self.job.pk).update(result=result.to_json())
        if is_frontier(self.job, self.root_id):
            publish_live(self.job.video_id, self.root_id)
        self.last = segments  # only once written: a tick the database refused is done again


def is_frontier(job: ProcessingJob, root_id: int) -> bool:
    """Every earlier chunk is complete: this chunk's segments extend what players see. A
    chunk is complete when its progress is 100 (`stitch.finish_chunk`): one integer per row,
    where asking the results would parse every earlier chunk's JSON on every tick."""
    earlier = ProcessingJob.objects.batch(root_id).filter(chunk__lt=job.chunk or 0)
    return not earlier.filter(progress__lt=100).exists()


def contiguous(results: list[ChunkResult], name: str) -> list:
    """The segments of `name` from the first, through the chunks in order, up to the first gap."""
    found = []
    for result in results:
        found += result.segments.get(name, [])
        if not result.complete:
            break
    return found


def publish_live(video_id: int, root_id: int) -> bool:
    """Grow the EVENT playlists to the segments that exist in order; put out the master
    playlist once every rung and the audio can play. Returns whether the video is playable."""
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video_id)
        batch = ProcessingJob.objects.batch(root_id)
        if batch.filter(state=JobState.CANCELLED).exists():
            return video.playable  # replaced by a newer request: its chunks publish, not these
        results = [ChunkResult.from_json(r) for r in batch.values_list("result", flat=True)]
        prefix = objects.video_prefix(video_id)
        rows = [r for r in video.renditions.all() if r.status in (PartStatus.QUEUED, PartStatus.RUNNING)]
        grew = False
        for row in rows:
            name = ffmpeg.AUDIO_DIR if row.kind == Rendition.Kind.AUDIO else row.name
            segments = contiguous(results, name)
            if not segments or (len(segments) <= len(row.segments or []) and row.playlist_path):
                continue
            codec = next((r.codecs[name] for r in results if name in r.codecs), "")
            key = f"{prefix}/{name}/{ffmpeg.MEDIA_PLAYLIST}"
            publish.store_media_playlist(key, segments, ended=False)
            Rendition.objects.filter(pk=row.pk).update(
                segments=[[uri, duration] for uri, duration, _ in segments],
                playlist_path=key,
                init_path=f"{prefix}/{name}/{ffmpeg.INIT_NAME}",
                codec=codec or row.codec,
            )
            grew = True
        if grew and not video.playable and packaging.write_manifests(video, live=True):
            videos.video_playable(video_id)
            log.info("video %s: playable (first segments published)", video_id)
            return True
    return video.playable
