"""Run inside `manage.py shell` against a PostgreSQL scenario (tests/jobs/test_slots_postgres.py):
many threads claim the chunk jobs of a few videos at once under the caps, each holding its job
for a moment, handing its slot on when it ends, and claiming again what was held. Prints, as
JSON, the most jobs that went ahead at once (in all, and of one video: from each job's own
interval between its claim returning it and its end), how often a claim was refused, and how
every job ended."""

import json
import random
import threading
import time

from django.db import connection
from django.db.models import Count

from transcoding.encoding.fanout import dispatch_released
from transcoding.models import ProcessingJob, Video
from transcoding.status import jobs


def most_at_once(spans) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def main(videos: int = 3, chunks: int = 12, threads: int = 16) -> None:
    ids = []
    for v in range(videos):
        video = Video.objects.create(title=f"race {v}", source="originals/x/source")
        root = ProcessingJob.objects.create(video=video, chunk=0, parts=["renditions"])
        ids.append(root.pk)
        ids += [
            ProcessingJob.objects.create(video=video, parent=root, chunk=i, parts=["renditions"]).pk
            for i in range(1, chunks)
        ]
    seen = {"total": 0, "per_video": 0, "held": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + 60

    spans = []  # (start, end, video) of every job that went ahead

    def work():
        try:
            while time.monotonic() < deadline:
                queued = list(ProcessingJob.objects.filter(state="queued").values_list("pk", flat=True))
                if not queued:
                    return
                try:
                    job = jobs.job_claim(random.choice(queued))
                except jobs.JobHeld:
                    with lock:
                        seen["held"] += 1
                    time.sleep(0.01)
                    continue
                if job is None:
                    continue
                start = time.monotonic()
                time.sleep(0.2)
                end = time.monotonic()
                jobs.job_finish(job)
                with lock:
                    spans.append((start, end, job.video_id))
                dispatch_released()
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    seen["total"] = most_at_once(spans)
    seen["per_video"] = max(most_at_once([s for s in spans if s[2] == v]) for v in {s[2] for s in spans})
    rows = ProcessingJob.objects.filter(pk__in=ids)
    states = dict(rows.values("state").annotate(n=Count("pk")).values_list("state", "n"))
    attempts = sorted(set(rows.values_list("attempt", flat=True)))
    print(json.dumps({**seen, "states": states, "attempts": attempts}))
