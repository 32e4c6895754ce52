"""Chunked encodes: fan out, publish while the chunks run, fan in.

The encode job a request creates (the root) plans the chunks, creates one ProcessingJob per
further chunk, dispatches them in time order and encodes chunk 0 itself, so the start of the
video never waits for a dispatch. Every chunk records what it made in its job's `result`:
while it runs, the segments stored so far ("live"); at the end, all of them and each rung's
init checksum ("complete").

Publishing follows the segments in order: each rung's playlist is an HLS EVENT playlist of
the longest run of segments from the first that exist, and the master playlist goes out as
soon as every rung and the audio have a first segment (the video is `playable` then).

Fan-in is decided in the database: a chunk marks itself complete in one transaction, then
takes the video's row lock and stitches if every chunk is complete and nobody stitched yet.
Stitching writes no media: the final VOD playlists and the MPD name the chunks' segments
where they are.
"""

import hashlib
import logging
import posixpath
from pathlib import Path

from django.db import transaction
from django.db.models import Avg, Q
from django.utils import timezone

from transcoding.conf import chunk_seconds, chunk_threshold_seconds, settings
from transcoding.encoding import publish
from transcoding.errors import LimitExceeded, StitchError, StorageIncomplete
from transcoding.media import chunking, ffmpeg, manifests
from transcoding.media.ladder import Plan, SourceInfo
from transcoding.models import JobState, PartKind, PartStatus, ProcessingJob, Rendition, Storyboard, Video
from transcoding.storage import objects as outputs

log = logging.getLogger(__name__)

# Parts that are made chunk by chunk; audio and the poster are made once.
CHUNKED_PARTS = (PartKind.RENDITIONS, PartKind.STORYBOARD)


def plan_spans(plan: Plan, info: SourceInfo, parts: tuple[str, ...]) -> tuple[chunking.ChunkSpan, ...]:
    """Chunks only when renditions are encoded: a storyboard or poster alone is one pass. A
    plan of more chunk jobs than `TRANSCODING_MAX_CHUNKS` is refused before any is created."""
    threshold = chunk_threshold_seconds() if PartKind.RENDITIONS in parts else float("inf")
    spans = chunking.plan_chunks(
        plan.duration,
        info.fps,
        segment_seconds=plan.segment_seconds,
        chunk_seconds=chunk_seconds(),
        threshold_seconds=threshold,
        tile_interval=plan.storyboard.interval,
        tile_count=plan.storyboard.count,
    )
    if len(spans) > settings.MAX_CHUNKS:
        raise LimitExceeded(
            f"The video would need {len(spans)} chunk jobs, beyond the {settings.MAX_CHUNKS} limit "
            "(TRANSCODING_MAX_CHUNKS)."
        )
    return spans


def _poster_chunk(plan: Plan, spans) -> int:
    """The chunk that makes the poster: the one holding the chosen time, else the first (its
    frames stand for the video; the poster is then ready as early as anything)."""
    return 0 if plan.poster.time is None else chunking.chunk_containing(spans, plan.poster.time).index


def chunk_parts(parts: tuple[str, ...], plan: Plan, spans, index: int) -> tuple[str, ...]:
    """What chunk `index` makes of the requested parts."""
    made = []
    for part in parts:
        if (
            part in CHUNKED_PARTS
            or (part == PartKind.AUDIO and index == 0)
            or (part == PartKind.POSTER and index == _poster_chunk(plan, spans))
        ):
            made.append(part)
    return tuple(made)


def fan_out(root: ProcessingJob, spans, plan: Plan, parts: tuple[str, ...]) -> list[int]:
    """Create the jobs of chunks 1..n (once: a retried root finds them) and dispatch the new
    ones, in time order, after commit. Returns their ids."""
    from transcoding.jobs.dispatch import get_dispatcher

    created = []
    with transaction.atomic():
        options = {**root.options, "span": spans[0].to_json(), "chunks": len(spans)}
        ProcessingJob.objects.filter(pk=root.pk).update(chunk=0, options=options)
        root.chunk, root.options = 0, options
        for span in spans[1:]:
            job, new = ProcessingJob.objects.get_or_create(
                parent=root,
                chunk=span.index,
                defaults={
                    "video_id": root.video_id,
                    "step": ProcessingJob.Step.ENCODE,
                    "parts": list(chunk_parts(parts, plan, spans, span.index)),
                    "options": {"span": span.to_json(), "chunks": len(spans)},
                    "max_attempts": root.max_attempts,
                },
            )
            if new:
                created.append(job.pk)
        dispatcher = get_dispatcher()
        for job_id in created:
            transaction.on_commit(lambda job_id=job_id: dispatcher.enqueue(job_id), robust=True)
    if created:
        log.info("video %s: %d chunks; dispatched %d", root.video_id, len(spans), len(created))
    return created


def batch(root_id: int):
    """The root job and its chunk jobs, in time order."""
    return ProcessingJob.objects.filter(Q(pk=root_id) | Q(parent_id=root_id)).order_by("chunk", "pk")


def chunk_count(job: ProcessingJob) -> int:
    return int(job.options.get("chunks", 1))


def record_progress(job: ProcessingJob, root_id: int, parts: tuple[str, ...], percent: int) -> int:
    """This chunk's own progress, and the chunked parts' progress as the mean over chunks.
    Returns the video's progress."""
    ProcessingJob.objects.filter(pk=job.pk).update(progress=percent)
    mean = round(batch(root_id).aggregate(mean=Avg("progress"))["mean"] or 0)
    if PartKind.RENDITIONS in parts:
        Rendition.objects.filter(
            video_id=job.video_id, kind=Rendition.Kind.VIDEO, status=PartStatus.RUNNING
        ).update(progress=mean)
    if PartKind.STORYBOARD in parts:
        Storyboard.objects.filter(video_id=job.video_id, status=PartStatus.RUNNING).update(progress=mean)
    Video.objects.filter(pk=job.video_id).update(progress=mean)
    return mean


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class LivePublisher:
    """Called while ffmpeg runs: records the segments stored so far in the job's result, and
    when this chunk is the earliest one still running, publishes the playlists."""

    def __init__(self, job: ProcessingJob, root_id: int, workdir: Path, dirs: list[str], uploader):
        self.job, self.root_id, self.workdir, self.dirs, self.uploader = job, root_id, workdir, dirs, uploader
        self.inits: dict[str, str] = {}
        self.codecs: dict[str, str] = {}
        self.last: dict = {}

    def store_init(self, name: str) -> None:
        """Each rung's init segment, stored once its first segment exists (so it is whole).
        Every chunk makes the same bytes (the stitch checks their checksums); the first chunk
        stores them, a later one only if they are missing (its chunk may finish first)."""
        from django.core.files.storage import default_storage

        path = self.workdir / name / ffmpeg.INIT_NAME
        key = f"{outputs.video_prefix(self.job.video_id)}/{name}/{ffmpeg.INIT_NAME}"
        if not self.job.chunk or not default_storage.exists(key):
            outputs.store_file(path, key)
        self.inits[name] = sha256_file(path)
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
        self.last = segments
        result = {"live": segments, "inits": self.inits, "codecs": self.codecs}
        ProcessingJob.objects.filter(pk=self.job.pk).update(result=result)
        if is_frontier(self.job, self.root_id):
            publish_live(self.job.video_id, self.root_id)


def is_frontier(job: ProcessingJob, root_id: int) -> bool:
    """Every earlier chunk is complete: this chunk's segments extend what players see."""
    earlier = batch(root_id).filter(chunk__lt=job.chunk or 0)
    return not earlier.exclude(result__complete=True).exists()


def _segments(result: dict, name: str) -> list:
    return result.get("segments" if result.get("complete") else "live", {}).get(name, [])


def contiguous(results: list[dict], name: str) -> list:
    """The segments of `name` from the first, through the chunks in order, up to the first gap."""
    found = []
    for result in results:
        found += _segments(result, name)
        if not result.get("complete"):
            break
    return found


def publish_live(video_id: int, root_id: int) -> bool:
    """Grow the EVENT playlists to the segments that exist in order; put out the master
    playlist once every rung and the audio can play. Returns whether the video is playable."""
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video_id)
        if batch(root_id).filter(state=JobState.CANCELLED).exists():
            return video.playable  # replaced by a newer request: its chunks publish, not these
        results = list(batch(root_id).values_list("result", flat=True))
        prefix = outputs.video_prefix(video_id)
        rows = [r for r in video.renditions.all() if r.status in (PartStatus.QUEUED, PartStatus.RUNNING)]
        grew = False
        for row in rows:
            name = ffmpeg.AUDIO_DIR if row.kind == Rendition.Kind.AUDIO else row.name
            segments = contiguous(results, name)
            if len(segments) <= len(row.segments or []) and row.playlist_path:
                continue
            if not segments:
                continue
            codecs = next((r["codecs"][name] for r in results if name in r.get("codecs", {})), "")
            key = f"{prefix}/{name}/{ffmpeg.MEDIA_PLAYLIST}"
            listed = tuple(manifests.Segment(uri, duration) for uri, duration, _ in segments)
            outputs.store_text(key, manifests.media_playlist(ffmpeg.INIT_NAME, listed, ended=False))
            Rendition.objects.filter(pk=row.pk).update(
                segments=[[uri, duration] for uri, duration, _ in segments],
                playlist_path=key,
                init_path=f"{prefix}/{name}/{ffmpeg.INIT_NAME}",
                codec=codecs or row.codec,
            )
            grew = True
        if grew and not video.playable:
            written = publish.write_manifests(video, live=True)
            if written:
                Video.objects.filter(pk=video_id).update(playable=True)
                log.info("video %s: playable (first segments published)", video_id)
                return True
    return video.playable


def _check_joins(name: str, results: list[dict]) -> list:
    inits = {r["inits"].get(name) for r in results}
    if len(inits) != 1 or None in inits:
        raise StitchError(f"The chunks of {name} have different init segments; they cannot be joined.")
    segments = [s for r in results for s in r["segments"].get(name, [])]
    expected = [ffmpeg.SEGMENT_PATTERN % n for n in range(1, len(segments) + 1)]
    if [s[0] for s in segments] != expected:
        raise StitchError(f"The chunks of {name} leave a gap in the segment numbers.")
    return segments


def _stitch_rendition(row: Rendition, results: list[dict], prefix: str) -> None:
    publish.publish_rendition(
        row,
        _check_joins(row.name, results),
        prefix,
        codec=results[0]["codecs"].get(row.name, row.codec),
        init_bytes=results[0].get("init_bytes", {}).get(row.name, 0),
    )


def _stitch_storyboard(video: Video, plan: Plan, results: list[dict], spans, prefix: str) -> None:
    sb = plan.storyboard
    tiles = []  # (sheet key, position in sheet) per tile, in time order
    for span, result in zip(spans, results):
        sheets = result.get("sheets", [])
        if len(sheets) < -(-span.tiles // sb.per_sheet):
            raise StitchError(f"Chunk {span.index} made too few storyboard sheets: the file is damaged.")
        tiles += [(sheets[i // sb.per_sheet], i % sb.per_sheet) for i in range(span.tiles)]
    base = f"{prefix}/{ffmpeg.STORYBOARD_DIR}"
    vtt_key = f"{base}/storyboard.vtt"
    text = manifests.storyboard_vtt_tiles(sb, plan.duration, [(posixpath.basename(k), p) for k, p in tiles])
    written = outputs.store_text(vtt_key, text)
    sheets = [k for r in results for k in r.get("sheets", [])]
    publish.mark_ready(
        Storyboard.objects.get(video=video),
        interval=sb.interval,
        tile_width=sb.tile_width,
        tile_height=sb.tile_height,
        columns=sb.columns,
        rows=sb.rows,
        tile_count=len(tiles),
        vtt_path=vtt_key,
        image_paths=sheets,
        bytes_written=written + sum(r.get("sheet_bytes", 0) for r in results),
    )


def chunk_result(
    plan: Plan, workdir: Path, parts: tuple[str, ...], stored: dict[str, int], live, *, cpu_seconds: float
) -> dict:
    """What a chunk made, for the stitch (`stitch.finish_chunk`): each rung's segments (all
    stored by now), its init segment's checksum and codec, and the storyboard sheets. `plan`
    is the chunk's: its duration is the chunk's. `stored`: relative path -> bytes."""
    prefix = outputs.video_prefix(live.job.video_id)
    result = {"segments": {}, "inits": {}, "codecs": {}, "init_bytes": {}, "sheets": [], "cpu": cpu_seconds}
    if PartKind.RENDITIONS in parts:
        for rung in plan.rungs:
            directory = workdir / rung.name
            segments = publish.finished_segments(directory, stored)
            if len(segments) != len(publish.read_segments(directory)):
                raise StorageIncomplete(f"Some {rung.name} segments were not stored.")
            if rung.name not in live.inits:
                live.store_init(rung.name)
            result["segments"][rung.name] = segments
            result["inits"][rung.name] = live.inits[rung.name]
            result["codecs"][rung.name] = live.codecs[rung.name]
            result["init_bytes"][rung.name] = (directory / ffmpeg.INIT_NAME).stat().st_size
    if PartKind.STORYBOARD in parts:
        directory = f"{ffmpeg.STORYBOARD_DIR}/"
        sheets = sorted(k for k in stored if k.startswith(directory))
        result["sheets"] = [f"{prefix}/{k}" for k in sheets]
        result["sheet_bytes"] = sum(stored[k] for k in sheets)
    return result


def finish_chunk(job: ProcessingJob, result: dict) -> None:
    """Mark this chunk complete, in its own transaction: whoever stitches sees it."""
    ProcessingJob.objects.filter(pk=job.pk).update(result={**result, "complete": True}, progress=100)
    job.result = {**result, "complete": True}


def fan_in(job: ProcessingJob, root_id: int, plan: Plan) -> bool:
    """Stitch if every chunk is complete and nobody has yet; True when this call stitched.
    The video's row lock makes the decision one at a time (on SQLite, the IMMEDIATE
    transaction's write lock does)."""
    from transcoding.captions.subtitles import republish_tracks

    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=job.video_id)
        jobs = list(batch(root_id))
        root = jobs[0]
        if root.result.get("stitched") or not all(j.result.get("complete") for j in jobs):
            return False
        if any(j.state == JobState.CANCELLED for j in jobs):
            return False
        if len(jobs) != chunk_count(root):
            return False
        results = [j.result for j in jobs]
        spans = [chunking.ChunkSpan.from_json(j.options["span"]) for j in jobs]
        prefix = outputs.video_prefix(video.pk)
        batch_parts = tuple(root.parts)
        if PartKind.RENDITIONS in batch_parts:
            for row in video.renditions.filter(kind=Rendition.Kind.VIDEO).order_by("height"):
                _stitch_rendition(row, results, prefix)
        if PartKind.STORYBOARD in batch_parts:
            _stitch_storyboard(video, plan, results, spans, prefix)
        ProcessingJob.objects.filter(pk=root.pk).update(result={**root.result, "stitched": True})
        publish.write_manifests(video)
        if PartKind.RENDITIONS in batch_parts:
            republish_tracks(video)
        publish.apportion_cpu(video, batch_parts, sum(r.get("cpu", 0.0) for r in results), plan)
        Video.objects.filter(pk=video.pk).update(updated_at=timezone.now())
    log.info("video %s: stitched %d chunks", job.video_id, len(jobs))
    return True


def cancel_siblings(job: ProcessingJob, reason: str) -> int:
    """A chunk failed for good: the other chunks' work is wasted, stop it."""
    root_id = job.parent_id or job.pk
    return (
        batch(root_id)
        .exclude(pk=job.pk)
        .filter(state__in=[JobState.QUEUED, JobState.RUNNING])
        .update(state=JobState.CANCELLED, finished_at=timezone.now(), error=reason[:500])
    )


__all__ = [
    "LivePublisher",
    "StitchError",
    "cancel_siblings",
    "chunk_parts",
    "fan_in",
    "fan_out",
    "finish_chunk",
    "plan_spans",
    "publish_live",
    "record_progress",
]
