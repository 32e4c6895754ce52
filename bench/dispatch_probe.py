"""B3's dispatch measurement: from `enqueue` (the product's CeleryDispatcher, as fan-out calls
it) to a real `celery worker` starting the task, through the Redis broker at 127.0.0.1:6379.

The worker is this module's `worker` command: the project's Celery app with the task signals
noting the time each task starts and ends (`task_prerun` / `task_postrun`, in the pool process)
in a file. The client (`client N`) enqueues job ids that do not exist, one at a time on an idle
worker: the real task runs (`tasks.process_job`: the claim's conditional UPDATE matches no row,
"skipped"), so nothing is encoded and nothing is written. Both run against the scratch database
with their own broker key prefix in Redis DB 15 (kombu `global_keyprefix`), deleted afterwards.

    python -m bench.dispatch_probe worker | client N     (run by measure())
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REDIS = ("127.0.0.1", 6379, 15)
MISSING_JOB = 10**9


def redis_missing() -> str | None:
    host, port, _ = REDIS
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"Redis is not reachable at {host}:{port} ({exc})"
    return None if reply.startswith(b"+PONG") else f"Redis at {host}:{port} answered {reply!r}"


def _events(path: Path) -> dict[tuple[int, str], float]:
    found = {}
    if path.exists():
        for line in path.read_text().splitlines():
            job, event, at = line.split()
            found[(int(job), event)] = float(at)
    return found


def _wait(path: Path, job: int, event: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at = _events(path).get((job, event))
        if at is not None:
            return at
        time.sleep(0.002)
    raise TimeoutError(f"the Celery worker did not {event} job {job} within {timeout:g} s")


def client(samples: int, log: Path) -> dict:
    import django

    django.setup()
    from transcoding.jobs.dispatch import get_dispatcher

    dispatcher = get_dispatcher()
    started = float(os.environ["BENCH_WORKER_STARTED"])
    dispatcher.enqueue(MISSING_JOB)  # the first task also tells when the worker was ready
    first = _wait(log, MISSING_JOB, "end", 120)
    rows = []
    for i in range(1, samples + 1):
        time.sleep(0.2)  # an idle worker waiting on the broker, as between chunks
        job = MISSING_JOB + i
        t0 = time.time()
        dispatcher.enqueue(job)
        sent = time.time()
        start = _wait(log, job, "start", 30)
        end = _wait(log, job, "end", 30)
        rows.append({"enqueue_call": sent - t0, "to_start": start - t0, "to_end": end - t0})
    return {"worker_boot": first - started, "samples": rows, "backend": type(dispatcher).__name__}


def worker(log: Path) -> None:
    import django

    django.setup()
    from celery.signals import task_postrun, task_prerun

    from videoproject.celery import app

    def note(event):
        def handler(args=None, **kwargs):
            with open(log, "a") as handle:
                handle.write(f"{int(args[0])} {event} {time.time():.6f}\n")

        return handler

    task_prerun.connect(note("start"), weak=False)
    task_postrun.connect(note("end"), weak=False)
    app.worker_main(
        ["worker", "--pool", "prefork", "-c", "1", "-l", "WARNING", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"]
    )  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    """A warm shutdown of the worker this module started, then SIGKILL to whatever is left of
    its process group (its pool process)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def measure(env: dict[str, str], workdir: Path, samples: int) -> dict:
    """Start a worker, run the client, stop the worker (its process group) and delete the
    broker keys. Returns the client's numbers."""
    import redis

    host, port, db = REDIS
    prefix = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}:"
    log = workdir / f"celery-{prefix.rstrip(':')}.log"
    env = {
        **env,
        "TRANSCODING_DISPATCH": "celery",
        "CELERY_BROKER_URL": f"redis://{host}:{port}/{db}",
        "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": prefix}),
        "BENCH_WORKER_STARTED": f"{time.time():.6f}",
    }
    command = [sys.executable, "-m", "bench.dispatch_probe"]
    with open(workdir / "celery-worker.out", "ab") as out:
        proc = subprocess.Popen(
            [*command, "worker", str(log)], env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        result = subprocess.run(
            [*command, "client", str(samples), str(log)], env=env, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(f"dispatch probe failed: {result.stderr[-1500:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        _stop(proc)
        broker = redis.Redis(host=host, port=port, db=db)
        keys = list(broker.scan_iter(f"{prefix}*"))
        if keys:
            broker.delete(*keys)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if sys.argv[1] == "worker":
        worker(Path(sys.argv[2]))
    else:
        print(json.dumps(client(int(sys.argv[2]), Path(sys.argv[3]))))
