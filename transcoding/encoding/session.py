"""One chunk's encode, start to end (`ChunkSession.run`): its work directory, its ffmpeg
processes (the chunk's video, and the whole video's audio beside chunk 0 of several), the
uploader that stores each segment as ffmpeg finishes it, the live publisher that extends what
players see, and the progress writer that heart-beats the job. Then what the chunk made is
published: its audio, its result for the stitch, the stitch itself when it is the last, and
the poster.

A short video is one chunk: there is one code path.
"""

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from django.db import InterfaceError, OperationalError, close_old_connections

from transcoding.conf import ffmpeg_binary, settings
from transcoding.downloads.requests import downloads_after_encode
from transcoding.encoding import fanout, live, publish, stitch
from transcoding.encoding.segment_uploader import SegmentUploader
from transcoding.errors import RUNGS_PER_PROCESS, OutOfMemory
from transcoding.media import ffmpeg
from transcoding.media.chunking import ChunkSpan
from transcoding.media.ffmpeg_process import run_encodes
from transcoding.media.ladder import Plan
from transcoding.models import PartKind, ProcessingJob, Video
from transcoding.status import parts as part_status
from transcoding.storage import objects

log = logging.getLogger(__name__)

# Share of a part's progress spent encoding; the rest is storing its files.
ENCODE_SHARE = 90


class ProgressWriter:
    """ffmpeg's progress callback: heart-beats, lets the live publisher store and publish what
    is finished, and writes encode progress at most once per interval.

    Progress is the further of two measures: ffmpeg's own report (frames of the first output),
    and the segments the top rung has finished in the work directory, which keep counting while
    ffmpeg's report is held back. A chunk of several writes its own progress, and the chunked
    parts show the mean over chunks (`fanout.record_progress`). When the rungs are made by
    several processes one after another (`begin_pass`), ffmpeg's report counts for its share,
    and the segments are counted over every rung."""

    def __init__(self, session: "ChunkSession", parts: tuple[str, ...]):
        self.session, self.parts = session, parts
        self.rungs = [r.name for r in session.plan.rungs] if PartKind.RENDITIONS in parts else []
        self.reported, self.last_write, self.last_percent = 0.0, 0.0, -1
        self.pass_index, self.pass_count = 0, 1
        self.last_ok = time.monotonic()  # the claim has just granted the lease

    def begin_pass(self, index: int, count: int) -> None:
        self.pass_index, self.pass_count = index, count

    def segments_done(self) -> float:
        if not self.rungs:
            return 0.0
        plan, uploader = self.session.plan, self.session.uploader
        rungs = self.rungs if self.pass_count > 1 else self.rungs[:1]
        finished = sum(uploader.finished_segments(name) for name in rungs) / len(rungs)
        return min(1.0, finished * plan.segment_seconds / max(plan.duration, 0.001))

    def __call__(self, progress: ffmpeg.Progress | None) -> None:
        session = self.session
        if progress is not None:
            fraction = ffmpeg.progress_fraction(progress, session.plan, self.parts)
            if self.pass_count > 1:
                fraction = min(1.0, (self.pass_index + fraction) / self.pass_count)
            self.reported = max(self.reported, fraction)
        now = time.monotonic()
        if now - self.last_write < settings.PROGRESS_INTERVAL and not (progress and progress.done):
            return
        self.last_write = now
        try:
            self._write()
        except (OperationalError, InterfaceError) as exc:
            self._database_away(exc, now)
        else:
            self.last_ok = now

    def _write(self) -> None:
        session = self.session
        session.heartbeat()
        session.live.tick()
        percent = int(max(self.reported, self.segments_done()) * ENCODE_SHARE)
        if percent == self.last_percent:
            return
        if session.span.whole:
            part_status.parts_progress(session.video.pk, self.parts, percent)
            Video.objects.filter(pk=session.video.pk).update(progress=percent)
        else:
            fanout.record_progress(session.job, session.root_id, self.parts, percent)
        self.last_percent = percent

    def _database_away(self, exc: Exception, now: float) -> None:
        """The database went away mid-encode (a restart, a failover): ffmpeg goes on, and the
        writes are tried again at the next tick, for half a lease since the last tick that got
        through. The lease was renewed at most a quarter lease before that tick, so it still
        holds a quarter lease when this gives up: nobody else may have claimed the job while
        this one kept encoding. Past that, the attempt stops (the error is raised) and the
        watchdog hands the job on once its lease is over."""
        if now - self.last_ok >= settings.LEASE_SECONDS / 2:
            raise exc
        log.warning("job %s: database unavailable, encoding on: %s", self.session.job.pk, exc)
        close_old_connections()  # the next tick connects again


class ChunkSession:
    """Makes `parts` of `span` for the video, planned by `plan` (the whole video's)."""

    def __init__(self, video: Video, job: ProcessingJob, root_id: int, plan: Plan, span: ChunkSpan,
                 parts: tuple[str, ...], heartbeat: Callable[[], None]):  # fmt: skip
        self.video, self.job, self.root_id, self.span, self.heartbeat = video, job, root_id, span, heartbeat
        self.whole_plan, self.plan = plan, replace(plan, duration=span.duration)
        self.parts = parts
        made_by_ffmpeg = tuple(p for p in parts if p in ffmpeg.ALL_PARTS)
        # The audio of a video in several chunks is one process over the whole file, beside chunk 0.
        self.side_audio = PartKind.AUDIO in made_by_ffmpeg and plan.audio is not None and not span.whole
        self.ffmpeg_parts = made_by_ffmpeg
        self.main_parts = tuple(p for p in made_by_ffmpeg if not (self.side_audio and p == PartKind.AUDIO))
        self.prefix = objects.video_prefix(video.pk)

    def run(self) -> float:
        """Encode, store, publish. Returns the ffmpeg CPU seconds."""
        with tempfile.TemporaryDirectory(prefix=f"video{self.video.pk}-", dir=settings.WORK_DIR) as workdir:
            self.workdir = Path(workdir)
            cpu = self._encode()
            self._publish(cpu)
        return cpu

    def _commands(self, dirs: list[str], passes) -> tuple[list[list[str]], list[str] | None]:
        for directory in dirs:
            (self.workdir / directory).mkdir(parents=True, exist_ok=True)
        source = objects.source_location(self.video.source.name, self.video.container)
        binary, workdir = ffmpeg_binary(), str(self.workdir)
        main = [
            ffmpeg.build_encode_args(binary, source, plan, workdir, parts, self.span)
            for plan, parts in passes
        ]
        side = ffmpeg.build_audio_args(binary, source, self.whole_plan, workdir) if self.side_audio else None
        return main, side

    def _passes(self) -> list:
        """One ffmpeg for the chunk, or one per rung after running out of memory (the job's
        options say so: `errors.smaller_footprint`)."""
        if not self.main_parts:
            return []
        per_process = (self.job.options or {}).get(RUNGS_PER_PROCESS)
        return ffmpeg.encode_passes(self.plan, self.main_parts, per_process)

    def _run_encodes(self, passes, main_args, side_args):
        """run_encodes; out of memory is reported with how many rungs the process held."""
        try:
            return run_encodes(main_args, side_args, ProgressWriter(self, self.main_parts))
        except OutOfMemory as exc:
            rungs = max(
                (len(plan.rungs) for plan, parts in passes if PartKind.RENDITIONS in parts), default=0
            )
            reason = str(exc)
            if len(passes) > 1:
                per = "one rung" if rungs == 1 else f"{rungs} rungs"
                reason = f"{reason.rstrip('.')}, even with {per} per process."
            raise OutOfMemory(reason, rungs_at_once=rungs) from exc

    def _encode(self) -> float:
        dirs = ffmpeg.output_dirs(self.plan, self.ffmpeg_parts)
        passes = self._passes()
        main_args, side_args = self._commands(dirs, passes)
        span = self.span
        where = f"{span.start:.1f}-{span.end:.1f} s, chunk {span.index + 1}/{span.count}"
        log.info(
            "video %s: encoding %s (%s) in %d ffmpeg process(es)",
            self.video.pk, ", ".join(self.ffmpeg_parts), where, max(1, len(passes)),
        )  # fmt: skip
        segment_dirs = [d for d in dirs if d != ffmpeg.STORYBOARD_DIR]
        with SegmentUploader(self.workdir, self.prefix, segment_dirs) as self.uploader:
            self.live = live.LivePublisher(self.job, self.root_id, self.workdir, segment_dirs, self.uploader)
            stderr, cpu, peak_rss = self._run_encodes(passes, main_args, side_args)
        ProcessingJob.objects.filter(pk=self.job.pk).update(
            peak_rss_bytes=peak_rss or None, peak_temp_bytes=self.uploader.peak_local_bytes
        )
        if stderr.strip():
            log.warning("video %s: ffmpeg said: %s", self.video.pk, stderr.strip()[-500:])
        log.info(
            "video %s: at most %d bytes on local disk at a time",
            self.video.pk,
            self.uploader.peak_local_bytes,
        )
        return cpu

    def _publish(self, cpu: float) -> None:
        parts, stored = self.parts, self.uploader.sizes
        if PartKind.RENDITIONS in parts:
            publish.check_complete(self.plan, self.workdir)  # a damaged file can decode partway
        self.live.tick()
        if PartKind.AUDIO in parts and self.whole_plan.audio is not None:
            # The audio's playlist ends as the rungs' do. On a first encode they grow until the
            # stitch, which ends every playlist (so this one too); a video finished before (it
            # has its MPD) serves its old, ended rungs until then, so the audio ends now.
            rungs_follow = PartKind.RENDITIONS in self.job.parts
            finished_before = Video.objects.filter(pk=self.video.pk).exclude(dash_path="").exists()
            growing = rungs_follow and not finished_before
            publish.publish_audio(self.video, self.workdir, stored, self.live, ended=not growing)
            if not rungs_follow:  # else the stitch queues them
                # The preset's MP4s (or those the request asked for), with the new audio.
                downloads_after_encode(self.video, asked=bool(self.job.options.get("downloads")))
        if any(p in fanout.CHUNKED_PARTS for p in parts):
            result = stitch.chunk_result(self.plan, self.workdir, parts, stored, self.live, cpu_seconds=cpu)
            stitch.finish_chunk(self.job, result)
            if live.is_frontier(self.job, self.root_id):
                live.publish_live(self.video.pk, self.root_id)
        stitch.fan_in(self.job, self.root_id, self.whole_plan)
        # The poster last: if storing it fails, the retry makes only the poster.
        if PartKind.POSTER in parts:
            publish.publish_poster(self.video, self.plan, self.workdir, self.prefix)
