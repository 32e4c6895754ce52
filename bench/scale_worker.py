"""One B6 worker process: `BENCH_SCALE_THREADS` threads, each a simulated worker that takes job
ids from the shared queue (bench/scale_queue.py) and runs them through the product's real
`transcoding.jobs.tasks.process_job` (claim by conditional UPDATE, heartbeats, progress, chunk
results, fan-in under the video's row lock, status refresh), closing its connection after each
job as Celery's Django fixup and the local worker do.

Only two things are stood in for, in this process only (module attributes replaced at start;
nothing in transcoding/ changes):

- the probe (`encoding.encode.probe_and_record` / `probe_as_recorded`): a 320x180 30 fps source
  with audio, as long as the video's title asks ("scale N": N chunks);
- ffmpeg (`encoding.session.run_encodes`): sleeps for the chunk's modelled time
  (`modelled_seconds`), writing what ffmpeg would, tiny: each rung's init segment (a real one,
  made once by the controller) and its segments as time passes, with the HLS playlist that lists
  them, the storyboard sheets, the poster, and chunk 0's audio for the whole video; calling the
  product's progress writer (heartbeat, live publishing, progress) as ffmpeg's progress does.

Every job is measured on its own thread: wall, database queries and rows written (Django's
`execute_wrapper` on the thread's connection), split by the protocol step that made them, and
the wait for the video's row lock (`SELECT ... FOR UPDATE` on the video) per step. The records
go to `BENCH_SCALE_OUT` (JSON) when the process is told to stop.
"""

import json
import math
import os
import queue
import random
import shutil
import signal
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# step -> functions, as (module, attribute) or (module, class, attribute); a call inside
# another measured call counts for the outer one.
STEPS = {
    "claim": [("transcoding.status.jobs", "job_claim")],
    "connect": [("transcoding.jobs.runner", "database_wait")],
    "heartbeat": [("transcoding.status.jobs", "job_heartbeat")],
    "progress": [("transcoding.encoding.fanout", "record_progress")],
    "live": [
        ("transcoding.encoding.live", "LivePublisher", "tick"),
        ("transcoding.encoding.live", "publish_live"),
    ],
    "fan-out": [("transcoding.encoding.fanout", "fan_out")],
    "finish chunk": [
        ("transcoding.encoding.stitch", "finish_chunk"),
        ("transcoding.encoding.live", "is_frontier"),
    ],
    "fan-in": [("transcoding.encoding.stitch", "fan_in")],
    "job end lock": [("transcoding.status.videos", "video_lock")],
    "finish job": [("transcoding.status.jobs", "job_finish")],
    "refresh": [("transcoding.status.videos", "video_refresh_status")],
}
WRITES = ("INSERT", "UPDATE", "DELETE")


def modelled_seconds(video_id: int, chunk: int, low: float, high: float) -> float:
    """A chunk's encode time, the same in every process for the same video and chunk."""
    return random.Random(f"{video_id}:{chunk}").uniform(low, high)


def chunks_of(title: str) -> int:
    return int(title.rsplit(" ", 1)[-1])


class Meter(threading.local):
    """This thread's current job record and the step being measured."""

    record: dict | None = None
    step: str = "other"


meter = Meter()


def _count(execute, sql, params, many, context):
    record = meter.record
    if record is None:
        return execute(sql, params, many, context)
    started = time.monotonic()
    try:
        return execute(sql, params, many, context)
    finally:
        spent = time.monotonic() - started
        step = record["steps"].setdefault(meter.step, [0, 0, 0, 0.0])  # calls, queries, rows, s
        step[1] += 1
        head = sql.lstrip()[:6].upper()
        if head in WRITES:
            rows = max(context["cursor"].cursor.rowcount, 0)
            step[2] += rows
            record["rows"] += rows
        record["queries"] += 1
        if "FOR UPDATE" in sql and '"transcoding_video"' in sql.split("FROM", 1)[-1][:40]:
            locks = record["lock_wait"]
            locks[meter.step] = locks.get(meter.step, 0.0) + spent


def _measured(step: str, function):
    def wrapper(*args, **kwargs):
        if meter.record is None or meter.step != "other":
            return function(*args, **kwargs)
        meter.step = step
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            entry = meter.record["steps"].setdefault(step, [0, 0, 0, 0.0])
            entry[0] += 1
            entry[3] += time.monotonic() - started
            meter.step = "other"

    wrapper.__wrapped__ = function
    return wrapper


def install_meters() -> None:
    import importlib

    for step, targets in STEPS.items():
        for target in targets:
            owner = importlib.import_module(target[0])
            for name in target[1:-1]:
                owner = getattr(owner, name)
            setattr(owner, target[-1], _measured(step, getattr(owner, target[-1])))


# --- the stand-ins ------------------------------------------------------------------------------
def source_info(duration: float):
    from transcoding.media.ladder import SourceInfo

    return SourceInfo(
        container="mov,mp4,m4a,3gp,3g2,mj2", duration=duration, width=320, height=180,
        video_codec="h264", fps=Fraction(30), audio_codec="aac", audio_channels=2,
        audio_sample_rate=48000, size=1000,
    )  # fmt: skip


def probe_and_record(video):
    """The video is as long as its title's chunk count asks (a hair short of whole chunks)."""
    from transcoding.conf import chunk_seconds

    info = source_info(chunks_of(video.title) * chunk_seconds() - 0.5)
    video.duration, video.width, video.height = info.duration, info.width, info.height
    video.container, video.video_codec, video.audio_codec = info.container, "h264", "aac"
    video.fps = 30.0
    video.save(
        update_fields=["duration", "width", "height", "container", "video_codec", "audio_codec", "fps"]
    )
    return info


def probe_as_recorded(video):
    return source_info(video.duration)


def _playlist(names: list[tuple[str, float]], ended: bool) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", '#EXT-X-MAP:URI="init.mp4"']
    for name, duration in names:
        lines += [f"#EXTINF:{duration:.6f},", name]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class Output:
    """One HLS output directory the stand-in grows: segments numbered from `first`."""

    def __init__(self, directory: Path, first: int, durations: list[float], template: Path):
        self.dir, self.first, self.durations = directory, first, durations
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, self.dir / "init.mp4")
        self.written = 0

    def grow(self, fraction: float) -> None:
        target = len(self.durations) if fraction >= 1 else int(fraction * len(self.durations))
        if target <= self.written:
            return
        from transcoding.media import ffmpeg

        for i in range(self.written, target):
            (self.dir / (ffmpeg.SEGMENT_PATTERN % (self.first + i))).write_bytes(b"\0" * 2000)
        self.written = target
        names = [(ffmpeg.SEGMENT_PATTERN % (self.first + i), self.durations[i]) for i in range(target)]
        (self.dir / ffmpeg.MEDIA_PLAYLIST).write_text(_playlist(names, target == len(self.durations)))


def _durations(total: float, step: float) -> list[float]:
    count = max(1, math.ceil(total / step - 1e-6))
    return [step] * (count - 1) + [total - step * (count - 1)]


ENCODES: list[tuple[int, int, int]] = []  # (job id, video id, chunk) per stand-in encode
ENCODES_LOCK = threading.Lock()


def stand_in_encodes(main_args, side_args, writer):
    """ffmpeg's place: the outputs, tiny, over the chunk's modelled time."""
    from transcoding.conf import settings
    from transcoding.media import ffmpeg
    from transcoding.media.ffmpeg_process import FfmpegRun

    session = writer.session
    plan, span, workdir = session.plan, session.span, session.workdir
    template = Path(os.environ["BENCH_SCALE_TEMPLATE"])
    low, high = (float(x) for x in os.environ["BENCH_SCALE_ENCODE"].split(","))
    seconds = modelled_seconds(session.video.pk, span.index, low, high)
    with ENCODES_LOCK:
        ENCODES.append((session.job.pk, session.video.pk, span.index))
    outputs = []
    if ffmpeg.RENDITIONS in session.main_parts:
        for rung in plan.rungs:
            durations = _durations(span.duration, plan.segment_seconds)
            outputs.append(Output(workdir / rung.name, span.first_segment, durations, template))
    if (ffmpeg.AUDIO in session.main_parts or session.side_audio) and session.whole_plan.audio is not None:
        durations = _durations(session.whole_plan.duration, plan.segment_seconds)
        outputs.append(Output(workdir / ffmpeg.AUDIO_DIR, 1, durations, template))
    frames = ffmpeg.expected_frames(plan, session.main_parts)
    tick = min(1.0, settings.PROGRESS_INTERVAL)
    started = time.monotonic()
    while True:
        fraction = min(1.0, (time.monotonic() - started) / seconds)
        for output in outputs:
            output.grow(fraction)
        if fraction >= 1:
            break
        writer(
            ffmpeg.Progress(
                frame=int(fraction * frames), out_time=fraction * plan.duration, speed="", done=False
            )
        )
        time.sleep(min(tick, max(0.0, seconds - (time.monotonic() - started))))
    if ffmpeg.STORYBOARD in session.main_parts:
        (workdir / ffmpeg.STORYBOARD_DIR).mkdir(parents=True, exist_ok=True)
        for n in range(1, max(1, -(-span.tiles // plan.storyboard.per_sheet)) + 1):
            (workdir / ffmpeg.STORYBOARD_DIR / (ffmpeg.sheet_pattern(span) % n)).write_bytes(b"\xff\xd8jpg")
    if ffmpeg.POSTER in session.main_parts:
        (workdir / ffmpeg.POSTER_NAME).write_bytes(b"\xff\xd8jpg")
    writer(ffmpeg.Progress(frame=int(frames), out_time=plan.duration, speed="", done=True))
    return FfmpegRun("", 0.0, 0)


def install_stand_ins() -> None:
    from transcoding.encoding import encode, segment_uploader, session

    encode.probe_and_record = probe_and_record
    encode.probe_as_recorded = probe_as_recorded
    session.run_encodes = stand_in_encodes
    # The uploader polls the work directory every 0.25 s: a machine's cost, not the database's;
    # a thousand of them on two cores would measure only this.
    init = segment_uploader.SegmentUploader.__init__
    segment_uploader.SegmentUploader.__init__ = lambda self, *a, interval=1.0, **k: init(
        self, *a, interval=interval, **k
    )


# --- the process ------------------------------------------------------------------------------
def _requeue_later(sender, job_id: int) -> None:
    """A retry, a wait or a deferral: delivered again when due (as Celery's eta does)."""
    from django.db import connection
    from django.utils import timezone

    from transcoding.models import ProcessingJob

    due = ProcessingJob.objects.filter(pk=job_id).values_list("next_attempt_at", flat=True).first()
    connection.close()
    delay = max(0.05, (due - timezone.now()).total_seconds()) if due else 0.5
    threading.Timer(delay, sender.put, args=(job_id,)).start()


def _thread(local: queue.Queue, idle: threading.Semaphore, records: list, sender) -> None:
    from django.db import close_old_connections, connection

    from transcoding.jobs import tasks

    while True:
        job_id = local.get()
        if job_id is None:
            return
        record = {"job": job_id, "start": time.time(), "queries": 0, "rows": 0, "steps": {}, "lock_wait": {}}
        meter.record, meter.step = record, "other"
        close_old_connections()
        try:
            with connection.execute_wrapper(_count):
                record["outcome"] = tasks.process_job(job_id)
        except Exception as exc:  # recorded, and the job stays as the product left it
            record["outcome"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            meter.record = None
            record["end"] = time.time()
            connection.close()
            records.append(record)
        if record["outcome"] in ("retry", "waiting", "deferred"):
            _requeue_later(sender, job_id)
        idle.release()


def _write(path: Path, records: list) -> None:
    with ENCODES_LOCK:
        encodes = list(ENCODES)
    path.write_text(json.dumps({"records": list(records), "encodes": encodes}))


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoproject.settings")
    import django

    django.setup()
    install_stand_ins()
    install_meters()
    from bench import scale_queue

    threads = int(os.environ["BENCH_SCALE_THREADS"])
    sender = scale_queue.sender()
    shared = scale_queue.connect()
    local: queue.Queue = queue.Queue()
    idle = threading.Semaphore(threads)
    records: list[dict] = []
    workers = [
        threading.Thread(target=_thread, args=(local, idle, records, sender), daemon=True, name=f"w{i}")
        for i in range(threads)
    ]
    for thread in workers:
        thread.start()
    out = Path(os.environ["BENCH_SCALE_OUT"])

    def stopped(*_):  # the controller gave up waiting (threads stuck): report what was done
        _write(out, records)
        os._exit(0)

    signal.signal(signal.SIGTERM, stopped)
    print("ready", flush=True)
    while True:  # fetch only for an idle thread: nothing is held here that another could run
        idle.acquire()
        item = shared.get()
        if item == "stop":
            break
        local.put(item)
    for _ in workers:
        local.put(None)
    for thread in workers:
        thread.join(60)
    _write(out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
