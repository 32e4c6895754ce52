"""One run of our whole pipeline through the real service path, in a fresh process so its
memory peak is its own. Run by bench/ours.py with the scratch environment:

    python bench/worker.py SOURCE [--announce]     -> one JSON object on stdout (last line)

video_create stores the original (an upload; not timed), then the clock runs from
video_request_processing to the video being ready: the recorded jobs are delivered in order,
one after another, as a single worker would (claim, probe, plan, one ffmpeg per job, segments
stored while it runs, publish manifests). A chunked encode (TRANSCODING_CHUNK_* in the
environment) is the root job, which encodes chunk 0 and records the other chunks' jobs, then
those jobs. Every job is timed (bench/instrument.py). `--announce` first prints a line
{"requested": <time.time()>, "video": <id>} just before the request, for a watcher (B4).
"""

import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.instrument import Timers  # noqa: E402
from transcoding.media.ffmpeg_process import peak_resident_bytes  # noqa: E402


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def vm_hwm(pid: int | str = "self") -> int:
    """Peak RSS of a process's current image, in bytes (0 if it is gone). Unlike ru_maxrss,
    it starts afresh at exec: ru_maxrss of a child carries the RSS of the process that forked
    it, so a small ffmpeg started by a big worker would report the worker's size."""
    return peak_resident_bytes(pid)


class ChildPeak(threading.Thread):
    """Samples VmHWM of this process's children (ffmpeg) a few times a second; keeps the max."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.peak = interval, 0
        self._done = threading.Event()

    def children(self) -> set[str]:
        pids = set()
        for task in Path("/proc/self/task").iterdir():
            try:
                pids.update((task / "children").read_text().split())
            except OSError:
                pass
        return pids

    def run(self):
        while not self._done.wait(self.interval):
            for pid in self.children():
                self.peak = max(self.peak, vm_hwm(pid))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _job_rows(video, timers: Timers) -> list[dict]:
    """Every job of the video in chunk order: the database's record and the bench's timers."""
    from transcoding.models import ProcessingJob

    measured = {j["id"]: j for j in timers.jobs}
    rows = []
    for job in ProcessingJob.objects.filter(video=video).order_by("chunk", "pk"):
        span = job.options.get("span") or {}
        segments = (job.result.get("segments") or {}).values()
        rows.append(
            {
                "chunk": job.chunk or 0,
                "parts": list(job.parts),
                "state": job.state,
                "attempts": job.attempt,
                "seconds": span.get("end", video.duration or 0) - span.get("start", 0),
                "segments": max((len(s) for s in segments), default=0),
                "cpu": job.cpu_seconds,
                "db_wall": (job.finished_at - job.started_at).total_seconds() if job.finished_at else None,
                "peak_rss": job.peak_rss_bytes,
                "peak_temp": job.peak_temp_bytes,
                **measured.get(job.pk, {}),
            }
        )
    return rows


def main(source: str, announce: bool = False) -> dict:
    import django

    django.setup()
    from transcoding.ingest.create import video_create
    from transcoding.jobs.dispatch.recording import run_recorded
    from transcoding.models import VideoStatus
    from transcoding.services import video_request_processing
    from transcoding.storage import objects

    video = video_create(source=Path(source), title="bench")
    rss_before = vm_hwm()
    sampler = ChildPeak()
    sampler.start()
    timers = Timers()
    with timers.installed():
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        if announce:
            print(json.dumps({"requested": time.time(), "video": video.pk}), flush=True)
        started = time.perf_counter()

        video_request_processing(video)
        outcomes = run_recorded()

        wall = time.perf_counter() - started
    ffmpeg_hwm = sampler.stop()
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    video.refresh_from_db()
    jobs = _job_rows(video, timers)
    if video.status != VideoStatus.READY:
        raise SystemExit(f"video ended {video.status}: {video.error} ({outcomes})")
    if _cpu(children_after) == _cpu(children_before) or any(j["peak_rss"] is None for j in jobs):
        raise SystemExit(
            f"video {video.pk} became ready without an encode: nothing was measured ({outcomes})"
        )
    output_dir = Path(objects.local_path(objects.video_prefix(video.pk)))
    children_cpu = _cpu(children_after) - _cpu(children_before)
    recorded = all(j["cpu"] is not None for j in jobs)
    return {
        "wall": wall,
        # The jobs' numbers; if a job ever finishes without one, the children's rusage instead.
        "ffmpeg_cpu": sum(j["cpu"] for j in jobs) if recorded else children_cpu,
        "ffmpeg_cpu_from": "job" if recorded else "rusage children",
        "attempts": max(j["attempts"] for j in jobs),
        "outcomes": outcomes,
        # CPU of every child reaped meanwhile (ffmpeg): a cross-check of the jobs' number.
        "children_cpu": children_cpu,
        "python_cpu": _cpu(self_after) - _cpu(self_before),
        # As the job records it (ffmpeg's VmHWM, sampled twice a second by the runner) ...
        "ffmpeg_peak_rss": max(j["peak_rss"] for j in jobs),
        # ... and sampled here five times a second (a cross-check; both may miss a last-moment peak).
        "ffmpeg_vmhwm": ffmpeg_hwm,
        "peak_temp": max(j["peak_temp"] or 0 for j in jobs),
        "python_rss_before": rss_before,
        "python_peak_rss": vm_hwm(),
        "output_bytes": sum(p.stat().st_size for p in output_dir.rglob("*") if p.is_file()),
        "output_dir": str(output_dir),
        "rungs": list(video.renditions.filter(kind="video").values_list("name", flat=True)),
        "segments": {r.name: [d for _, d in r.segments] for r in video.renditions.all() if r.segments},
        "jobs": jobs,
        "timers": timers.totals,
        "stitch": timers.stitched_in,
        "queries": timers.queries,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], "--announce" in sys.argv[2:])))
