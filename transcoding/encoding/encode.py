"""The encode step: probe, plan, fan out, encode a chunk, publish. Its ffmpeg processes run
through runner.py.

Everything is written to a temporary work directory first; `publish` then stores each part's
files and marks the part ready only once all of them are stored.
"""

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from transcoding.conf import ffmpeg_binary, settings
from transcoding.encoding import ffmpeg_process as runner
from transcoding.encoding import publish, stitch
from transcoding.encoding.segment_uploader import SegmentUploader
from transcoding.errors import EncodeError, SourceRejected
from transcoding.media import ffmpeg
from transcoding.media.chunking import ChunkSpan
from transcoding.media.ladder import Plan, SourceInfo, plan_encode
from transcoding.media.probe import probe_source
from transcoding.models import (
    PartKind,
    PartStatus,
    Poster,
    Rendition,
    Storyboard,
    Video,
    VideoStatus,
    preset_spec,
)
from transcoding.storage import objects as outputs
from transcoding.storage import references as cleanup

log = logging.getLogger(__name__)

# Share of a part's progress spent encoding; the rest is storing its files.
ENCODE_SHARE = 90


def sha256_of(name: str) -> str:
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _part_models(parts: tuple[str, ...]) -> list:
    return [
        (model, filters)
        for kind, model, filters in (
            (PartKind.RENDITIONS, Rendition, {"kind": Rendition.Kind.VIDEO}),
            (PartKind.AUDIO, Rendition, {"kind": Rendition.Kind.AUDIO}),
            (PartKind.STORYBOARD, Storyboard, {}),
            (PartKind.POSTER, Poster, {}),
        )
        if kind in parts
    ]


def _update_parts(video: Video, parts: tuple[str, ...], **fields) -> None:
    for model, filters in _part_models(parts):
        model.objects.filter(video=video, **filters).exclude(status=PartStatus.SKIPPED).update(**fields)


def probe_and_record(video: Video) -> SourceInfo:
    """Probe the original and keep what was learned on the video."""
    info = probe_source(
        outputs.source_location(video.source.name),
        size=video.source_size if video.source_size is not None else video.source.size,
    )
    width, height = info.display_size
    report = {
        k: (str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v)
        for k, v in asdict(info).items()
    }
    video.duration, video.width, video.height = info.duration, width, height
    video.container, video.video_codec, video.audio_codec = info.container, info.video_codec, info.audio_codec
    video.fps = round(float(info.fps), 3)
    video.probe = report
    if not video.source_sha256 and outputs.local_path(video.source.name):
        # Uploads are hashed as they stream in; this covers files placed in local storage by
        # other means. A remote original is never downloaded just to hash it.
        video.source_sha256 = sha256_of(video.source.name)
    video.save(
        update_fields=[
            "duration", "width", "height", "container", "video_codec", "audio_codec", "fps",
            "probe", "source_sha256", "updated_at",
        ]
    )  # fmt: skip
    return info


def sync_renditions(video: Video, plan: Plan, parts: tuple[str, ...]) -> None:
    """Make the Rendition rows match the plan; rungs no longer planned go, with their files."""
    if PartKind.RENDITIONS in parts:
        planned = {r.name for r in plan.rungs}
        for stale in video.renditions.filter(kind=Rendition.Kind.VIDEO).exclude(name__in=planned):
            cleanup.delete_prefix(f"{outputs.video_prefix(video.pk)}/{stale.name}")
            stale.delete()
        for rung in plan.rungs:
            Rendition.objects.update_or_create(
                video=video,
                name=rung.name,
                defaults={
                    "kind": Rendition.Kind.VIDEO,
                    "width": rung.width,
                    "height": rung.height,
                    "fps": round(float(rung.fps), 3),
                    "crf": rung.crf,
                    "bitrate": rung.max_bitrate,
                    "status": PartStatus.QUEUED,
                    "progress": 0,
                    "error": "",
                },
            )
    if PartKind.AUDIO in parts:
        audio, _ = Rendition.objects.get_or_create(
            video=video, name="audio", defaults={"kind": Rendition.Kind.AUDIO}
        )
        if plan.audio is None:
            audio.status, audio.error, audio.progress = PartStatus.SKIPPED, "The source has no audio.", 0
            audio.bitrate = None
        else:
            audio.status, audio.error, audio.progress = PartStatus.QUEUED, "", 0
            audio.bitrate = plan.audio.bitrate
        audio.codec = "" if plan.audio is None else "mp4a.40.2"
        audio.save()


class ProgressWriter:
    """Heartbeats, writes encode progress at most once per interval, and lets the live
    publisher store and publish what is finished.

    Progress is the further of two measures: ffmpeg's own report (frames of the first output),
    and the segments the top rung has finished in the work directory, which keep counting while
    ffmpeg's report is held back. A chunk writes its own progress; the chunked parts show the
    mean over chunks (`stitch.record_progress`)."""

    def __init__(self, video, plan: Plan, parts: tuple[str, ...], heartbeat: Callable[[], None], uploader,
                 *, job=None, root_id=None, live=None):  # fmt: skip
        self.video, self.plan, self.parts, self.heartbeat = video, plan, parts, heartbeat
        self.uploader, self.job, self.root_id, self.live = uploader, job, root_id, live
        self.chunked = job is not None and stitch.chunk_count(job) > 1
        self.top = plan.rungs[0].name if PartKind.RENDITIONS in parts else None
        self.reported = 0.0
        self.last_write = 0.0
        self.last_percent = -1

    def segments_done(self) -> float:
        if self.top is None:
            return 0.0
        finished = self.uploader.finished_segments(self.top)
        return min(1.0, finished * self.plan.segment_seconds / max(self.plan.duration, 0.001))

    def __call__(self, progress: ffmpeg.Progress | None) -> None:
        if progress is not None:
            self.reported = max(self.reported, ffmpeg.progress_fraction(progress, self.plan, self.parts))
        now = time.monotonic()
        if now - self.last_write < settings.PROGRESS_INTERVAL and not (progress and progress.done):
            return
        self.last_write = now
        self.heartbeat()
        if self.live is not None:
            self.live.tick()
        percent = int(max(self.reported, self.segments_done()) * ENCODE_SHARE)
        if percent == self.last_percent:
            return
        self.last_percent = percent
        if self.chunked:
            stitch.record_progress(self.job, self.root_id, self.parts, percent)
        else:
            _update_parts(self.video, self.parts, progress=percent)
            Video.objects.filter(pk=self.video.pk).update(progress=percent)


def finished_earlier(video: Video, job) -> set[str]:
    """Part kinds an earlier attempt of this job already finished: a retry never redoes them."""
    since = job.created_at
    done = set()
    rungs = video.renditions.filter(kind=Rendition.Kind.VIDEO)
    if rungs.exists() and not rungs.exclude(status=PartStatus.READY, finished_at__gte=since).exists():
        done.add(PartKind.RENDITIONS)
    for kind, model, filters in (
        (PartKind.AUDIO, Rendition, {"kind": Rendition.Kind.AUDIO}),
        (PartKind.STORYBOARD, Storyboard, {}),
        (PartKind.POSTER, Poster, {}),
    ):
        if model.objects.filter(
            video=video, status=PartStatus.READY, finished_at__gte=since, **filters
        ).exists():
            done.add(kind)
    return {str(kind) for kind in done}


def _start(video: Video, plan: Plan, parts: tuple[str, ...]) -> None:
    """The root job marks the parts it is about to make as running."""
    now = timezone.now()
    sync_renditions(video, plan, parts)
    for model, filters in _part_models(parts):
        for part in model.objects.filter(video=video, **filters).exclude(status=PartStatus.SKIPPED):
            part.status, part.started_at, part.finished_at = PartStatus.RUNNING, now, None
            part.attempts += 1
            part.save(update_fields=["status", "started_at", "finished_at", "attempts"])


def _source_info(video: Video, root: bool) -> SourceInfo:
    """The root records what the probe learns; a chunk only needs the plan it implies, and
    reads the source as the root found it (its demuxer, no second timestamp scan)."""
    if root:
        return probe_and_record(video)
    return probe_source(
        outputs.source_location(video.source.name, video.container), size=video.source_size or 0, scan=False
    )


def encode(job, heartbeat: Callable[[], None]) -> float:
    """Run one encode job: the root plans the chunks, fans them out and makes chunk 0 (with
    the audio, and the poster); a chunk job makes its time range. The last chunk to finish
    stitches. Returns the ffmpeg CPU seconds. Raises SourceRejected for input that can never
    work, EncodeError or storage errors otherwise."""
    video = Video.objects.select_related("preset").get(pk=job.video_id)
    is_root = job.parent_id is None
    root_id = job.pk if is_root else job.parent_id
    parts = tuple(job.parts)
    if job.attempt > 1 and is_root:
        done = finished_earlier(video, job)
        if done:
            skipped = ", ".join(sorted(done))
            log.info("video %s: attempt %s skips %s, finished before", video.pk, job.attempt, skipped)
        parts = tuple(p for p in parts if p not in done)
        if not parts:
            return 0.0
    if is_root:
        with transaction.atomic():
            Video.objects.filter(pk=video.pk).update(
                status=VideoStatus.PROCESSING, error="", processing_started_at=timezone.now()
            )
            Storyboard.objects.get_or_create(video=video)
            Poster.objects.get_or_create(video=video)

    info = _source_info(video, is_root)
    spec = preset_spec(video.preset)
    plan = plan_encode(info, spec, segment_seconds=settings.SEGMENT_SECONDS, poster_time=video.poster_time)
    if is_root:
        # Planned from the job's parts, not what is left of them: a retry plans the same chunks
        # (and finds their jobs already there).
        spans = stitch.plan_spans(plan, info, tuple(job.parts))
        _start(video, plan, parts)
        stitch.fan_out(job, spans, plan, tuple(job.parts))
        span, mine = spans[0], stitch.chunk_parts(parts, plan, spans, 0)
    else:
        span, mine = ChunkSpan.from_json(job.options["span"]), parts

    if job.result.get("complete"):
        # An earlier attempt made and recorded this chunk; what is left is the stitch, and
        # whatever failed after it (the poster).
        mine = tuple(p for p in mine if p not in stitch.CHUNKED_PARTS)
    if not mine:
        stitch.fan_in(job, root_id, plan)
        return 0.0
    return _encode_chunk(video, job, root_id, plan, span, mine, heartbeat)


def _encode_chunk(video, job, root_id, plan: Plan, span: ChunkSpan, parts, heartbeat) -> float:
    """One ffmpeg process for the chunk's range: every rung, its storyboard tiles, and the
    poster when it is this chunk's; chunk 0 of several also runs the whole video's audio
    beside it. Stores segments as they finish, publishes them in order, then records the chunk
    as complete."""
    chunk_plan = replace(plan, duration=span.duration)
    ff_parts = tuple(p for p in parts if p in ffmpeg.ALL_PARTS)
    side_audio = PartKind.AUDIO in ff_parts and plan.audio is not None and not span.whole
    main_parts = tuple(p for p in ff_parts if not (side_audio and p == PartKind.AUDIO))
    source, binary = outputs.source_location(video.source.name, video.container), ffmpeg_binary()
    with tempfile.TemporaryDirectory(prefix=f"video{video.pk}-", dir=settings.WORK_DIR) as workdir:
        dirs = ffmpeg.output_dirs(chunk_plan, ff_parts)
        for directory in dirs:
            Path(workdir, directory).mkdir(parents=True, exist_ok=True)
        main_args = main_parts and ffmpeg.build_encode_args(
            binary, source, chunk_plan, workdir, main_parts, span
        )
        side_args = ffmpeg.build_audio_args(binary, source, plan, workdir) if side_audio else None
        where = f"{span.start:.1f}-{span.end:.1f} s, chunk {span.index + 1}/{span.count}"
        log.info("video %s: encoding %s (%s)", video.pk, ", ".join(ff_parts), where)
        segment_dirs = [d for d in dirs if d != ffmpeg.STORYBOARD_DIR]
        with SegmentUploader(Path(workdir), outputs.video_prefix(video.pk), segment_dirs) as uploader:
            live = stitch.LivePublisher(job, root_id, Path(workdir), segment_dirs, uploader)
            writer = ProgressWriter(
                video, chunk_plan, main_parts, heartbeat, uploader, job=job, root_id=root_id, live=live
            )
            stderr, cpu, peak_rss = runner.run_encodes(main_args, side_args, writer)
        type(job).objects.filter(pk=job.pk).update(
            peak_rss_bytes=peak_rss, peak_temp_bytes=uploader.peak_local_bytes
        )
        if stderr.strip():
            log.warning("video %s: ffmpeg said: %s", video.pk, stderr.strip()[-500:])
        log.info("video %s: at most %d bytes on local disk at a time", video.pk, uploader.peak_local_bytes)
        workdir = Path(workdir)
        if PartKind.RENDITIONS in parts:
            publish.check_complete(chunk_plan, workdir)  # a damaged file can decode partway
        live.tick()
        if PartKind.AUDIO in parts and plan.audio is not None:
            publish.publish_audio(video, workdir, uploader.sizes, live)
        if any(p in stitch.CHUNKED_PARTS for p in parts):
            result = stitch.chunk_result(chunk_plan, workdir, parts, uploader.sizes, live, cpu_seconds=cpu)
            stitch.finish_chunk(job, result)
            if stitch.is_frontier(job, root_id):
                stitch.publish_live(video.pk, root_id)
        stitch.fan_in(job, root_id, plan)
        # The poster last: if storing it fails, the retry makes only the poster.
        if PartKind.POSTER in parts:
            publish.publish_poster(video, chunk_plan, workdir, outputs.video_prefix(video.pk))
    return cpu


def run_step(job, heartbeat: Callable[[], None]) -> float:
    """Run the job's step; returns the CPU seconds of its subprocesses."""
    if job.step == job.Step.SUBTITLES:
        from transcoding.captions.speech import generate  # speech imports this module (probe_and_record)

        return generate(job, heartbeat)
    return encode(job, heartbeat)


def mark_retrying(job, reason: str) -> None:
    """A transient failure with attempts left: the unfinished parts wait for the retry."""
    from transcoding.models import Subtitle

    waiting = {"status": PartStatus.QUEUED, "error": f"Will retry: {reason}"[:500]}
    if job.parent_id is not None:
        return  # one chunk of several: the parts are still being made by the others
    if job.step == job.Step.SUBTITLES:
        Subtitle.objects.filter(
            video_id=job.video_id, origin=Subtitle.Origin.GENERATED, status=PartStatus.RUNNING
        ).update(**waiting)
        return
    for model, filters in _part_models(tuple(job.parts)):
        model.objects.filter(video_id=job.video_id, status=PartStatus.RUNNING, **filters).update(**waiting)


def mark_failed(job, reason: str) -> None:
    """The job failed for good. An encode fails the video (every waiting part, with the
    reason; the original stays); a subtitles job fails only its track, the video plays on."""
    from transcoding.services import video_fail

    if job.step == job.Step.SUBTITLES:
        from transcoding.models import Subtitle

        Subtitle.objects.filter(
            video_id=job.video_id,
            origin=Subtitle.Origin.GENERATED,
            status__in=[PartStatus.QUEUED, PartStatus.RUNNING],
        ).update(status=PartStatus.FAILED, error=reason[:500], finished_at=timezone.now())
        return
    stitch.cancel_siblings(job, f"Another chunk failed: {reason}")
    video_fail(Video.objects.get(pk=job.video_id), reason)


__all__ = ["EncodeError", "SourceRejected", "encode", "mark_failed", "run_step"]
