"""Run inside `manage.py shell` against a PostgreSQL scenario (tests/jobs/test_slots_postgres.py):
many threads claim the chunk jobs of a few videos at once under the caps, each holding its job
for a moment, handing its slot on when it ends, and claiming again what was held. Prints, as
JSON, the most encodes ever seen in flight at once (in all, and of one video) and how every job
ended."""

import json
import random
import threading
import time

from django.db import connection
from django.db.models import Count

from transcoding.encoding.fanout import dispatch_released
from transcoding.models import ProcessingJob, Video
from transcoding.status import jobs


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

    def observe():
        rows = ProcessingJob.objects.in_flight().values("video_id").annotate(n=Count("pk"))
        counts = [r["n"] for r in rows]
        with lock:
            seen["total"] = max(seen["total"], sum(counts))
            seen["per_video"] = max(seen["per_video"], max(counts, default=0))

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
                observe()
                time.sleep(0.2)
                jobs.job_finish(job)
                dispatch_released()
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    rows = ProcessingJob.objects.filter(pk__in=ids)
    states = dict(rows.values("state").annotate(n=Count("pk")).values_list("state", "n"))
    attempts = sorted(set(rows.values_list("attempt", flat=True)))
    print(json.dumps({**seen, "states": states, "attempts": attempts}))
