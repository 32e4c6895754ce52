"""B7's client: ask for one video to be processed and wait until it is ready, while a real
local worker (`manage.py worker`, started by bench/b7.py on the same scratch database) does the
work. Run with the scratch environment and TRANSCODING_DISPATCH=local:

    python bench/requester.py SOURCE     -> one JSON object on stdout (last line)

video_create stores the original (an upload; not timed). The clock runs from
video_request_processing (the job is a row; the local dispatcher sees a worker running and
starts none) until the video's status is `ready`, polled every 50 ms. The product's own rows
say the rest: every job's claim and finish times and ffmpeg CPU (`cpu_seconds`).
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POLL = 0.05


def _epoch(value) -> float | None:
    return value.timestamp() if value else None


def main(source: str, timeout: float) -> dict:
    import django

    django.setup()
    from transcoding.ingest.create import video_create
    from transcoding.models import ProcessingJob, Video, VideoStatus
    from transcoding.services import video_request_processing

    video = video_create(source=Path(source), title="bench b7")
    requested = time.time()
    video_request_processing(video)
    deadline = time.monotonic() + timeout
    while True:
        status = Video.objects.filter(pk=video.pk).values_list("status", flat=True).get()
        if status in (VideoStatus.READY, VideoStatus.FAILED):
            ready = time.time()
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"video {video.pk} not ready within {timeout:g} s (status {status})")
        time.sleep(POLL)
    video.refresh_from_db()
    if status != VideoStatus.READY:
        raise SystemExit(f"video ended {status}: {video.error}")
    jobs = []
    for job in ProcessingJob.objects.filter(video=video).order_by("chunk", "pk"):
        span = job.options.get("span") or {}
        jobs.append(
            {
                "chunk": job.chunk or 0,
                "step": job.step,
                "worker": job.worker,
                "state": job.state,
                "attempts": job.attempt,
                "seconds": span.get("end", video.duration or 0) - span.get("start", 0),
                "cpu": job.cpu_seconds,
                "created": _epoch(job.created_at) - requested,
                "started": _epoch(job.started_at) - requested if job.started_at else None,
                "finished": _epoch(job.finished_at) - requested if job.finished_at else None,
            }
        )
    return {
        "video": video.pk,
        "duration": video.duration,
        "requested": requested,
        "ready": ready - requested,
        "jobs": jobs,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 3600.0)))
