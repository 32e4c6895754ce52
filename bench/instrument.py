"""Where a job's time goes besides ffmpeg: timers wrapped around the service path's own
functions, in the bench worker process only (bench/worker.py). Each wrapper calls the function
unchanged; nothing in transcoding/ is edited. A call made inside another timed call counts for
the outer one only, so the categories add up; the ffmpeg timer runs alongside them (the live
publishing and heartbeats happen while ffmpeg runs, in the same thread that reads its progress).

Per delivered job (`transcoding.jobs.tasks.process_job`): wall, the worker's own CPU, the database
queries it made (Django's execute_wrapper on this thread's connection) and the timers.
"""

import functools
import importlib
import resource
import threading
import time
from contextlib import contextmanager

# category -> functions, as (module, attribute) or (module, class, attribute)
TIMED = {
    "claim": [("transcoding.status.jobs", "job_claim")],
    "probe + plan": [
        ("transcoding.encoding.encode", "probe_and_record"),
        ("transcoding.encoding.encode", "probe_as_recorded"),
    ],
    "fan-out": [("transcoding.encoding.fanout", "fan_out")],
    "heartbeat": [("transcoding.status.jobs", "job_heartbeat")],
    "live publish": [
        ("transcoding.encoding.live", "LivePublisher", "tick"),
        ("transcoding.encoding.live", "publish_live"),
    ],
    "progress": [
        ("transcoding.encoding.fanout", "record_progress"),
        ("transcoding.status.parts", "parts_progress"),
    ],
    "store results": [
        ("transcoding.encoding.publish", "publish_audio"),
        ("transcoding.encoding.stitch", "chunk_result"),
        ("transcoding.encoding.publish", "publish_poster"),
    ],
    "finish chunk + fan-in": [
        ("transcoding.encoding.stitch", "finish_chunk"),
        ("transcoding.encoding.live", "is_frontier"),
        ("transcoding.encoding.stitch", "fan_in"),
    ],
    "finish job": [
        ("transcoding.status.jobs", "job_finish"),
        ("transcoding.status.videos", "video_refresh_status"),
    ],
}
# The encode as the job's thread waits for it: every ffmpeg of the job, from the first start to
# the last exit (`media.ffmpeg_process.run_encodes` runs chunk 0's audio beside its video), as
# the chunk session calls it.
FFMPEG = ("transcoding.encoding.session", "run_encodes")


class Timers:
    def __init__(self):
        self.totals: dict[str, float] = {}
        self.stitched_in: float = 0.0  # the fan_in call that stitched (returned True)
        self.queries = 0
        self.jobs: list[dict] = []
        self._depth = threading.local()

    def _wrap(self, category: str, func, outer: bool = True):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            depth = getattr(self._depth, "n", 0)
            if (outer and depth) or threading.current_thread() is not threading.main_thread():
                return func(*args, **kwargs)
            self._depth.n = depth + (1 if outer else 0)
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self._depth.n = depth
                self.totals[category] = self.totals.get(category, 0.0) + spent
            if func.__name__ == "fan_in" and result:
                self.stitched_in += spent
            return result

        return timed

    def _process_job(self, func):
        @functools.wraps(func)
        def process_job(job_id):
            before = (dict(self.totals), self.queries, _cpu(), time.perf_counter())
            outcome = func(job_id)
            totals, queries, cpu, started = before
            self.jobs.append(
                {
                    "id": int(job_id),
                    "outcome": outcome,
                    "wall": time.perf_counter() - started,
                    "python_cpu": _cpu() - cpu,
                    "queries": self.queries - queries,
                    "timers": {k: v - totals.get(k, 0.0) for k, v in self.totals.items()},
                }
            )
            return outcome

        return process_job

    def _count(self, execute, sql, params, many, context):
        self.queries += 1
        return execute(sql, params, many, context)

    @contextmanager
    def installed(self):
        """Wrap everything for the duration; count this thread's queries."""
        from django.db import connection

        patched = []
        targets = [(c, path) for c, paths in TIMED.items() for path in paths]
        targets.append(("ffmpeg", FFMPEG))
        for category, (module, *owner, name) in targets:
            holder = importlib.import_module(module)
            for attr in owner:
                holder = getattr(holder, attr)
            original = getattr(holder, name)
            patched.append((holder, name, original))
            setattr(holder, name, self._wrap(category, original, outer=category != "ffmpeg"))
        tasks = importlib.import_module("transcoding.jobs.tasks")
        patched.append((tasks, "process_job", tasks.process_job))
        tasks.process_job = self._process_job(tasks.process_job)
        try:
            with connection.execute_wrapper(self._count):
                yield self
        finally:
            for holder, name, original in reversed(patched):
                setattr(holder, name, original)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
