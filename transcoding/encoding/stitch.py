"""Fan-in: the chunks of a video joined by their manifests, without copying or re-encoding.

A chunk that finished records its complete result (`finish_chunk`), in its own transaction,
then takes the video's row lock (`fan_in`): the last one finds every chunk complete and nobody
stitched yet, checks that the chunks can be joined (identical init segments, no gap in the
segment numbers), and writes the VOD playlists and the MPD naming the chunks' segments where
they are, and a storyboard WebVTT pointing into each chunk's sheets; then queues the MP4
downloads the preset asks for (`downloads.requests`), in the same transaction.
"""

import logging
import posixpath
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from transcoding import packaging
from transcoding.captions.subtitles import republish_tracks
from transcoding.downloads.requests import downloads_after_encode
from transcoding.encoding import publish
from transcoding.encoding.fanout import chunk_count
from transcoding.encoding.results import ChunkResult
from transcoding.errors import StitchError, StorageIncomplete
from transcoding.media import chunking, ffmpeg, manifests
from transcoding.media.ladder import Plan
from transcoding.models import JobState, PartKind, PartStatus, ProcessingJob, Rendition, Storyboard, Video
from transcoding.status.parts import part_ready
from transcoding.storage import objects

log = logging.getLogger(__name__)


def chunk_result(
    plan: Plan, workdir: Path, parts: tuple[str, ...], stored: dict[str, int], live, *, cpu_seconds: float
) -> ChunkResult:
    """What a chunk made, for the stitch: each rung's segments (all stored by now), its init
    segment's checksum and codec, and the storyboard sheets. `plan` is the chunk's: its
    duration is the chunk's. `stored`: relative path -> bytes."""
    prefix = objects.video_prefix(live.job.video_id)
    result = ChunkResult(cpu=cpu_seconds)
    if PartKind.RENDITIONS in parts:
        for rung in plan.rungs:
            directory = workdir / rung.name
            segments = publish.finished_segments(directory, stored)
            if len(segments) != len(publish.read_segments(directory)):
                raise StorageIncomplete(f"Some {rung.name} segments were not stored.")
            if rung.name not in live.inits:
                live.store_init(rung.name)
            result.segments[rung.name] = segments
            result.inits[rung.name] = live.inits[rung.name]
            result.codecs[rung.name] = live.codecs[rung.name]
            result.init_bytes[rung.name] = (directory / ffmpeg.INIT_NAME).stat().st_size
    if PartKind.STORYBOARD in parts:
        sheets = sorted(k for k in stored if k.startswith(f"{ffmpeg.STORYBOARD_DIR}/"))
        result.sheets = [f"{prefix}/{k}" for k in sheets]
        result.sheet_bytes = sum(stored[k] for k in sheets)
    return result


def finish_chunk(job: ProcessingJob, result: ChunkResult) -> None:
    """Mark this chunk complete, in its own transaction: whoever stitches sees it. Its
    progress becomes 100 in the same write, and only then (a running chunk writes at most
    90): `progress < 100` is the cheap test for an incomplete chunk (`fan_in`,
    `live.is_frontier`), read without parsing any result."""
    result.complete = True
    ProcessingJob.objects.filter(pk=job.pk).update(result=result.to_json(), progress=100)
    job.result = result.to_json()


def _check_joins(name: str, results: list[ChunkResult]) -> list:
    inits = {r.inits.get(name) for r in results}
    if len(inits) != 1 or None in inits:
        raise StitchError(f"The chunks of {name} have different init segments; they cannot be joined.")
    segments = [s for r in results for s in r.segments.get(name, [])]
    expected = [ffmpeg.SEGMENT_PATTERN % n for n in range(1, len(segments) + 1)]
    if [s[0] for s in segments] != expected:
        raise StitchError(f"The chunks of {name} leave a gap in the segment numbers.")
    return segments


def _stitch_rendition(row: Rendition, results: list[ChunkResult], prefix: str) -> None:
    publish.publish_rendition(
        row,
        _check_joins(row.name, results),
        prefix,
        codec=results[0].codecs.get(row.name, row.codec),
        init_bytes=results[0].init_bytes.get(row.name, 0),
    )


def _stitch_storyboard(video: Video, plan: Plan, results: list[ChunkResult], spans, prefix: str) -> None:
    sb = plan.storyboard
    tiles = []  # (sheet key, position in sheet) per tile, in time order
    for span, result in zip(spans, results):
        if len(result.sheets) < -(-span.tiles // sb.per_sheet):
            raise StitchError(f"Chunk {span.index} made too few storyboard sheets: the file is damaged.")
        tiles += [(result.sheets[i // sb.per_sheet], i % sb.per_sheet) for i in range(span.tiles)]
    vtt_key = f"{prefix}/{ffmpeg.STORYBOARD_DIR}/storyboard.vtt"
    text = manifests.storyboard_vtt_tiles(sb, plan.duration, [(posixpath.basename(k), p) for k, p in tiles])
    written = objects.store_text(vtt_key, text)
    part_ready(
        Storyboard.objects.get(video=video),
        interval=sb.interval,
        tile_width=sb.tile_width,
        tile_height=sb.tile_height,
        columns=sb.columns,
        rows=sb.rows,
        tile_count=len(tiles),
        vtt_path=vtt_key,
        image_paths=[k for r in results for k in r.sheets],
        bytes_written=written + sum(r.sheet_bytes for r in results),
    )


def fan_in(job: ProcessingJob, root_id: int, plan: Plan) -> bool:
    """Stitch if every chunk is complete and nobody has yet; True when this call stitched.
    The video's row lock makes the decision one at a time (on SQLite, the IMMEDIATE
    transaction's write lock does).

    Every chunk calls this as it ends, so a chunk that sees another still incomplete returns
    before the lock, reading one row (a complete chunk stays complete, and this chunk's own
    completion committed before: of the last two to finish, the later sees both). Only a
    call that may stitch takes the lock and reads every chunk's result: without the early
    return, a video of n chunks read n results under its row lock n times."""
    if ProcessingJob.objects.batch(root_id).filter(progress__lt=100).exists():
        return False
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=job.video_id)
        jobs = list(ProcessingJob.objects.batch(root_id))
        root, results = jobs[0], [ChunkResult.from_json(j.result) for j in jobs]
        if results[0].stitched or not all(r.complete for r in results):
            return False
        if any(j.state == JobState.CANCELLED for j in jobs) or len(jobs) != chunk_count(root):
            return False
        spans = [chunking.ChunkSpan.from_json(j.options["span"]) for j in jobs]
        prefix = objects.video_prefix(video.pk)
        batch_parts = tuple(root.parts)
        if PartKind.RENDITIONS in batch_parts:
            for row in video.renditions.filter(kind=Rendition.Kind.VIDEO).order_by("height"):
                _stitch_rendition(row, results, prefix)
        # Every stitch ends the audio's playlist with the rungs': a first chunk publishes it
        # whole but growing (`publish.publish_audio`), and the batch that stitches may be a
        # later request's without the audio (renditions reprocessed after a failed encode).
        audio = video.renditions.filter(kind=Rendition.Kind.AUDIO, status=PartStatus.READY).first()
        if audio and audio.playlist_path:
            publish.end_playlist(audio)
        if PartKind.STORYBOARD in batch_parts:
            _stitch_storyboard(video, plan, results, spans, prefix)
        results[0].stitched = True
        ProcessingJob.objects.filter(pk=root.pk).update(result=results[0].to_json())
        packaging.write_manifests(video)
        if PartKind.RENDITIONS in batch_parts:
            republish_tracks(video)  # the subtitle tracks' segments follow the new grid
            # The preset's MP4s (or those the request asked for), of the new renditions.
            downloads_after_encode(video, asked=bool(root.options.get("downloads")))
        publish.apportion_cpu(video, batch_parts, sum(r.cpu for r in results), plan)
        Video.objects.filter(pk=video.pk).update(updated_at=timezone.now())
    log.info("video %s: stitched %d chunks", job.video_id, len(jobs))
    return True
