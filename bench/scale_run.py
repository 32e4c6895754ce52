"""One B6 run, in a process of its own (its Django is set up on the run's PostgreSQL database):

    python -m bench.scale_run CONFIG.json OUT.json

A throwaway database on the shared server (and a role with a CONNECTION LIMIT when asked),
migrated; PgBouncer in transaction pooling mode in front of it when the workers outnumber
`direct_max` connections; the queue server; `processes` worker processes sharing `workers`
threads (bench/scale_worker.py); then the videos are requested through the product's services
(`video_create`, `video_request_processing`), the watchdog runs every `watchdog_seconds` as a
Celery beat would, and the server's connections are sampled until every video is ready or
failed (or `timeout`). Everything is removed at the end, whatever happened.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import scale_pg, scale_queue  # noqa: E402
from bench.scale_worker import modelled_seconds  # noqa: E402

DEFAULTS = {
    "workers": 64,
    "processes": 4,
    "videos": [100, 100],  # chunks per video, requested at once
    "encode": [4.0, 8.0],  # a chunk's modelled encode time, uniform in [low, high] seconds
    "chunk_seconds": 8.0,
    "progress_interval": 1.0,
    "duplicates": 0.05,  # share of deliveries sent twice
    "role_limit": None,  # CONNECTION LIMIT of the workers' role (direct connections)
    "direct_max": 40,  # more workers than this go through PgBouncer
    "pool_size": 40,  # PgBouncer's server connections
    "watchdog_seconds": 10.0,
    "lease_seconds": 120,  # the product default
    "timeout": 900.0,
}


def _template(root: Path) -> Path:
    """A real H.264 init segment (the stitch checks checksums and reads the codec from it)."""
    from transcoding.conf import ffmpeg_binary

    out = root / "template"
    out.mkdir()
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-t", "4",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "120", "-f", "hls", "-hls_time", "4",
         "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
         "-hls_segment_filename", str(out / "seg_%05d.m4s"), str(out / "index.m3u8")],
        check=True, timeout=60,
    )  # fmt: skip
    return out / "init.mp4"


def _spawn(env: dict, threads: int, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.scale_worker"],
        cwd=ROOT,
        env={**env, "BENCH_SCALE_THREADS": str(threads), "BENCH_SCALE_OUT": str(out)},
        stdout=subprocess.PIPE,
        stderr=out.with_suffix(".log").open("wb"),  # noqa: SIM115 (the child keeps it)
        text=True,
    )
    return proc


def _watchdog(samples: list):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from transcoding.jobs.watchdog import jobs_recover_stuck

    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        requeued, failed, due = jobs_recover_stuck()
    samples.append(
        {"seconds": time.monotonic() - started, "queries": len(queries), "requeued": len(requeued),
         "failed": len(failed), "due": len(due)}
    )  # fmt: skip


def run(config: dict) -> dict:
    config = {**DEFAULTS, **config}
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    procs: list[subprocess.Popen] = []
    try:
        with scale_pg.Database(config["role_limit"]) as db:
            return _run(config, db, root, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _run(config: dict, db: scale_pg.Database, root: Path, procs: list) -> dict:
    for name in ("media", "work", "run"):
        (root / name).mkdir()
    key = uuid.uuid4().hex
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "videoproject.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db.url(),
        "MEDIA_ROOT": str(root / "media"),
        "STORAGE": "local",
        "SECRET_KEY": "bench-only-" + "k" * 50,
        "LOG_LEVEL": "WARNING",
        "TRANSCODING_DISPATCH": "bench.scale_queue.QueueDispatcher",
        "TRANSCODING_WORK_DIR": str(root / "work"),
        "TRANSCODING_RUN_DIR": str(root / "run"),
        "TRANSCODING_CHUNK_SECONDS": str(config["chunk_seconds"]),
        "TRANSCODING_CHUNK_THRESHOLD_SECONDS": str(config["chunk_seconds"]),
        "TRANSCODING_PROGRESS_INTERVAL": str(config["progress_interval"]),
        "TRANSCODING_LEASE_SECONDS": str(config["lease_seconds"]),
        # The caps on chunks in flight, when the product has them: high, so the database is measured.
        "TRANSCODING_MAX_CHUNKS_IN_FLIGHT": str(config.get("max_chunks_in_flight", 100000)),
        "TRANSCODING_MAX_ENCODES_IN_FLIGHT": str(config.get("max_encodes_in_flight", 100000)),
        "BENCH_SCALE_ENCODE": ",".join(str(x) for x in config["encode"]),
        "BENCH_SCALE_DUPLICATES": str(config["duplicates"]),
        "BENCH_SCALE_KEY": key,
    }
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    began = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    config["migrate_seconds"] = round(time.monotonic() - began, 1)
    if db.role:
        db.grant()
    env["BENCH_SCALE_TEMPLATE"] = str(_template(root))
    _, address = scale_queue.serve(key.encode())
    env["BENCH_SCALE_QUEUE"] = os.environ["BENCH_SCALE_QUEUE"] = f"{address[0]}:{address[1]}"

    workers, processes = int(config["workers"]), max(1, min(int(config["processes"]), int(config["workers"])))
    bouncer = None
    if workers > config["direct_max"]:
        bouncer = scale_pg.PgBouncer(db, config["pool_size"], workers + 50).__enter__()
        env["DATABASE_URL"] = bouncer.url()
        env["DATABASE_DISABLE_SERVER_SIDE_CURSORS"] = "1"
    else:
        env["DATABASE_URL"] = db.url(user=db.role or "postgres")
    try:
        return _measure(config, db, root, procs, env, workers, processes, bouncer)
    finally:
        from django.db import connections

        connections.close_all()
        if bouncer is not None:
            bouncer.__exit__()


def _measure(config, db, root, procs, env, workers, processes, bouncer) -> dict:
    from django.db import connection

    from transcoding.ingest.create import video_create
    from transcoding.models import ProcessingJob, Video
    from transcoding.services import video_request_processing

    outs = []
    for i in range(processes):
        threads = workers // processes + (1 if i < workers % processes else 0)
        outs.append(root / f"worker-{i}.json")
        procs.append(_spawn(env, threads, outs[-1]))
    began = time.monotonic()
    for proc, out in zip(procs, outs):
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker did not start: {out.with_suffix('.log').read_text()[-2000:]}")

    config["workers_start_seconds"] = round(time.monotonic() - began, 1)
    watchdog: list[dict] = []
    requested: dict[int, float] = {}
    with scale_pg.Sampler(db) as sampler:
        started = time.time()
        for n, chunks in enumerate(config["videos"]):
            source = root / f"source-{n}.mp4"
            source.write_bytes(f"scale benchmark source {n} {uuid.uuid4().hex}".encode() * 50)
            video = video_create(source=source, title=f"scale {chunks}")
            requested[video.pk] = time.time()
            video_request_processing(video, generate_subtitles=False)
        last_watchdog = time.monotonic()
        deadline = time.monotonic() + config["timeout"]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            pending = Video.objects.filter(pk__in=requested).exclude(status__in=("ready", "failed")).count()
            if not pending:
                break
            if time.monotonic() - last_watchdog >= config["watchdog_seconds"]:
                _watchdog(watchdog)
                last_watchdog = time.monotonic()
        _watchdog(watchdog)
        wall = time.time() - started
        scale_queue.sender().drain()
        jobs_queue = scale_queue.connect()
        for _ in procs:
            jobs_queue.put("stop")
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:  # threads still busy (a timed-out run): ask it to report
                proc.terminate()
                proc.wait(30)
    records, encodes = [], []
    for out in outs:
        if out.exists():
            data = json.loads(out.read_text())
            records += data["records"]
            encodes += data["encodes"]
    videos = list(
        Video.objects.filter(pk__in=requested).values("pk", "status", "processing_finished_at", "error")
    )
    jobs = list(
        ProcessingJob.objects.filter(video_id__in=requested).values(
            "pk", "video_id", "chunk", "state", "attempt"
        )
    )
    connection.close()
    return summarize(
        config, records, encodes, videos, jobs, requested, watchdog, sampler, wall, bouncer is not None
    )


def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else 0.0


def _p(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def summarize(config, records, encodes, videos, jobs, requested, watchdog, sampler, wall, pooled) -> dict:
    from transcoding.models import JobState

    chunks = len(jobs)
    states = Counter(j["state"] for j in jobs)
    by_job = Counter(job for job, _, _ in encodes)
    by_chunk = Counter((video, chunk) for _, video, chunk in encodes)
    duplicated = sum(n - 1 for n in by_chunk.values() if n > 1)
    claimed = [
        r for r in records if r.get("outcome") not in ("skipped",) and not r["outcome"].startswith("error")
    ]
    per_second = Counter(int(r["start"]) for r in claimed)
    first = min((r["start"] for r in claimed), default=0.0)
    last = max((r["start"] for r in claimed), default=0.0)
    steps: dict[str, list[float]] = {}
    for r in records:
        for step, (calls, queries, rows, seconds) in r["steps"].items():
            total = steps.setdefault(step, [0, 0, 0, 0.0])
            total[0] += calls
            total[1] += queries
            total[2] += rows
            total[3] += seconds
    fan_in_waits = [r["lock_wait"].get("fan-in", 0.0) for r in records if "fan-in" in r["steps"]]
    # The job's end takes the video's row lock (`videos.video_lock`), then refreshes its status.
    refresh_waits = [
        r["lock_wait"].get("job end lock", 0.0) + r["lock_wait"].get("refresh", 0.0)
        for r in records
        if "refresh" in r["steps"]
    ]
    connect = [r["steps"].get("connect", [0, 0, 0, 0.0])[3] for r in records]
    low, high = config["encode"]
    ready = []
    for v in videos:
        count = sum(1 for j in jobs if j["video_id"] == v["pk"])
        modelled = [modelled_seconds(v["pk"], c, low, high) for c in range(count)]
        ideal = max(max(modelled, default=0.0), sum(modelled) / max(1, config["workers"]))
        took = (
            v["processing_finished_at"].timestamp() - requested[v["pk"]]
            if v["processing_finished_at"]
            else None
        )
        ready.append(
            {"video": v["pk"], "chunks": count, "status": v["status"], "seconds": took, "ideal": ideal}
            | {"error": v["error"]}
        )
    watchdog_calls = [w for w in watchdog]
    return {
        "config": config,
        "pgbouncer": pooled,
        "wall": wall,
        "chunks": chunks,
        "states": dict(states),
        "videos_ready": sum(1 for v in videos if v["status"] == "ready"),
        "videos": len(videos),
        "lost": sum(1 for j in jobs if j["state"] in (JobState.QUEUED, JobState.RUNNING))
        + sum(1 for v in videos if v["status"] not in ("ready", "failed")),
        "failed": states.get(JobState.FAILED, 0) + sum(1 for v in videos if v["status"] == "failed"),
        "duplicated": duplicated,
        "encoded_jobs": len(by_job),
        "stuck": sum(w["requeued"] + w["failed"] for w in watchdog_calls),
        "errors": [r["outcome"] for r in records if r["outcome"].startswith("error")][:5],
        "deliveries": len(records),
        "skipped": sum(1 for r in records if r["outcome"] == "skipped"),
        "claims_per_second_mean": len(claimed) / max(last - first, 1.0),
        "claims_per_second_peak": max(per_second.values(), default=0),
        "queries_per_chunk": sum(r["queries"] for r in records) / max(1, chunks),
        "rows_per_chunk": sum(r["rows"] for r in records) / max(1, chunks),
        "steps_per_chunk": {
            k: [v[0] / max(1, chunks), v[1] / max(1, chunks), v[2] / max(1, chunks), v[3] / max(1, chunks)]
            for k, v in steps.items()
        },
        "fan_in_lock_wait_mean": _mean(fan_in_waits),
        "fan_in_lock_wait_p95": _p(fan_in_waits, 0.95),
        "fan_in_lock_wait_max": max(fan_in_waits, default=0.0),
        "refresh_lock_wait_mean": _mean(refresh_waits),
        "connect_wait_mean": _mean(connect),
        "connect_wait_max": max(connect, default=0.0),
        "connect_waited_jobs": sum(1 for c in connect if c > 0.05),
        "peak_server_connections": sampler.peak,
        "connection_samples": sampler.samples[:: max(1, len(sampler.samples) // 300)],
        "watchdog_seconds_mean": _mean(w["seconds"] for w in watchdog_calls),
        "watchdog_queries_mean": _mean(w["queries"] for w in watchdog_calls),
        "ready": ready,
        "claim_times": sorted(r["start"] - first for r in claimed)[:: max(1, len(claimed) // 2000)],
    }


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (database, pgbouncer) on kill
    config = json.loads(Path(argv[0]).read_text())
    result = run(config)
    Path(argv[1]).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
