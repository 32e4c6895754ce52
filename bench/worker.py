"""One run of our whole pipeline through the real service path, in a fresh process so its
memory peak is its own. Run by bench/ours.py with the scratch environment:

    python bench/worker.py SOURCE      -> one JSON object on stdout

video_create stores the original (an upload; not timed), then the clock runs from
video_request_processing to the video being ready: the recorded job is delivered as a worker
would (claim, probe, plan, one ffmpeg, segments stored while it runs, publish manifests).
"""

import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def vm_hwm(pid: int | str = "self") -> int:
    """Peak RSS of a process's current image, in bytes (0 if it is gone). Unlike ru_maxrss,
    it starts afresh at exec: ru_maxrss of a child carries the RSS of the process that forked
    it, so a small ffmpeg started by a big worker would report the worker's size."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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


def main(source: str) -> dict:
    import django

    django.setup()
    from transcoding import outputs
    from transcoding.dispatch.recording import run_recorded
    from transcoding.models import ProcessingJob, VideoStatus
    from transcoding.services import video_create, video_request_processing

    video = video_create(source=Path(source), title="bench")
    rss_before = vm_hwm()
    sampler = ChildPeak()
    sampler.start()
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()

    job = video_request_processing(video)
    outcomes = run_recorded()

    wall = time.perf_counter() - started
    ffmpeg_hwm = sampler.stop()
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    video.refresh_from_db()
    job = ProcessingJob.objects.get(pk=job.pk)
    if video.status != VideoStatus.READY:
        raise SystemExit(f"video ended {video.status}: {video.error} ({outcomes})")
    if _cpu(children_after) == _cpu(children_before) or job.peak_rss_bytes is None:
        raise SystemExit(
            f"video {video.pk} became ready without an encode: nothing was measured ({outcomes})"
        )
    output_dir = Path(outputs.local_path(outputs.video_prefix(video.pk)))
    children_cpu = _cpu(children_after) - _cpu(children_before)
    return {
        "wall": wall,
        # The job's number; if a job ever finishes without one, the children's rusage instead.
        "ffmpeg_cpu": job.cpu_seconds if job.cpu_seconds is not None else children_cpu,
        "ffmpeg_cpu_from": "job" if job.cpu_seconds is not None else "rusage children",
        "attempts": job.attempt,
        "outcomes": outcomes,
        # CPU of every child reaped meanwhile (ffmpeg): a cross-check of the job's number.
        "children_cpu": children_cpu,
        "python_cpu": _cpu(self_after) - _cpu(self_before),
        # As the job records it (wait4 ru_maxrss: the worker's own RSS is its floor) ...
        "ffmpeg_peak_rss": job.peak_rss_bytes,
        # ... and sampled from /proc (ffmpeg's own image only; may miss a last-moment peak).
        "ffmpeg_vmhwm": ffmpeg_hwm,
        "peak_temp": job.peak_temp_bytes,
        "python_rss_before": rss_before,
        "python_peak_rss": vm_hwm(),
        "output_bytes": sum(p.stat().st_size for p in output_dir.rglob("*") if p.is_file()),
        "rungs": list(video.renditions.filter(kind="video").values_list("name", flat=True)),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
