"""B6's broker: one queue of job ids on 127.0.0.1 (a `multiprocessing` manager served by the
controller), and the dispatch backend that puts ids on it (`TRANSCODING_DISPATCH=
bench.scale_queue.QueueDispatcher`: the product's own dotted-path setting; nothing in
transcoding/ knows about it).

Like a Celery broker it holds every message until a worker takes it (`keeps_messages`), and
delivers at least once: with `BENCH_SCALE_DUPLICATES` a share of ids is put twice, so the
claim's conditional UPDATE has duplicates to turn away. Each process talks to the manager from
one thread (`_Sender`), so a thousand worker threads make a handful of connections.
"""

import os
import queue
import random
import threading
from multiprocessing.managers import BaseManager

from transcoding.jobs.dispatch.base import BaseDispatcher

_jobs: queue.Queue = queue.Queue()


class Manager(BaseManager):
    pass


Manager.register("jobs", callable=lambda: _jobs)


def serve(authkey: bytes) -> tuple[Manager, tuple[str, int]]:
    """Start the queue server in a thread of this process; returns it and its address."""
    manager = Manager(address=("127.0.0.1", 0), authkey=authkey)
    server = manager.get_server()
    threading.Thread(target=server.serve_forever, daemon=True, name="scale-queue").start()
    return manager, server.address


def connect():
    """The shared queue's proxy, from the address and key in the environment."""
    host, port = os.environ["BENCH_SCALE_QUEUE"].rsplit(":", 1)
    manager = Manager(address=(host, int(port)), authkey=os.environ["BENCH_SCALE_KEY"].encode())
    manager.connect()
    return manager.jobs()


class _Sender:
    """One thread per process forwards ids to the shared queue (proxies are per thread)."""

    def __init__(self):
        self.local: queue.Queue = queue.Queue()
        self.duplicates = float(os.environ.get("BENCH_SCALE_DUPLICATES", "0") or 0)
        self.sent = 0
        threading.Thread(target=self._run, daemon=True, name="scale-sender").start()

    def _run(self):
        jobs = connect()
        while True:
            item = self.local.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            jobs.put(item)
            self.sent += 1
            if isinstance(item, int) and random.random() < self.duplicates:
                jobs.put(item)  # delivered twice: the claim must make it a no-op

    def put(self, item) -> None:
        self.local.put(item)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until everything put so far has been forwarded."""
        done = threading.Event()
        self.local.put(done)
        done.wait(timeout)


_sender: _Sender | None = None
_lock = threading.Lock()


def sender() -> _Sender:
    global _sender
    with _lock:
        if _sender is None:
            _sender = _Sender()
        return _sender


class QueueDispatcher(BaseDispatcher):
    """The dispatch contract over the shared queue (see transcoding/jobs/dispatch/base.py)."""

    keeps_messages = True

    def enqueue(self, job_id: int) -> None:
        sender().put(int(job_id))

    def deliver_webhook(self, delivery_id: int) -> None:
        pass  # no endpoints in the benchmark's database

    def while_waiting(self, video_ids: list[int]) -> None:
        pass
