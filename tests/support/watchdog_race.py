"""Run inside `manage.py shell` against a PostgreSQL scenario (tests/jobs/test_slots_postgres.py):
the watchdog fails a video's stuck root for good (no attempts left) while another chunk of the
same video ends. The chunk's end takes the video's row lock, then its job's row (the order every
writer keeps: `status.videos.video_lock`); the watchdog must keep it too, or each waits for the
other's lock and PostgreSQL breaks the deadlock by failing one of them. Prints, as JSON, the
errors each side met and how the rows ended."""

import json
import threading
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from tests.support.pg_races import run_together, side, until_another_waits
from transcoding import services
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, ProcessingJob, Video
from transcoding.status import parts as part_status
from transcoding.status import videos


def stuck_root(title: str, attempt: int) -> tuple[Video, ProcessingJob]:
    """A processing video whose root job's worker stopped (its lease expired)."""
    video = Video.objects.create(title=title, source="originals/x/source", status="processing")
    root = ProcessingJob.objects.create(
        video=video, chunk=0, parts=["renditions"], state=JobState.RUNNING, attempt=attempt, max_attempts=3,
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )  # fmt: skip
    return video, root


def main() -> None:
    now = timezone.now()
    video, root = stuck_root("watchdog race", attempt=3)  # no attempts left: it fails for good
    chunk = ProcessingJob.objects.create(
        video=video, parent=root, chunk=1, parts=["renditions"], state=JobState.RUNNING, attempt=1,
        lease_expires_at=now + timedelta(minutes=5),
    )  # fmt: skip
    errors = {}
    video_locked, watchdog_waits = threading.Event(), threading.Event()

    def chunk_ends():
        """What the runner does at a job's end (`runner._end_under_the_video_lock`)."""
        with transaction.atomic():
            videos.video_lock(video.pk)
            video_locked.set()
            watchdog_waits.wait(10)  # the watchdog is blocked on a lock now
            ProcessingJob.objects.filter(pk=chunk.pk).update(progress=100)

    def watchdog():
        video_locked.wait(10)
        jobs_recover_stuck()

    def release_when_the_watchdog_waits():
        try:
            until_another_waits()
            watchdog_waits.set()
        finally:
            connection.close()

    run_together(
        side(errors, "chunk", chunk_ends), side(errors, "watchdog", watchdog), release_when_the_watchdog_waits
    )
    states = dict(ProcessingJob.objects.filter(video=video).values_list("chunk", "state"))
    print(json.dumps({
        "errors": errors,
        "states": {str(k): v for k, v in states.items()},
        "video": Video.objects.get(pk=video.pk).status,
    }))  # fmt: skip
    connection.close()


def cancel_meets_the_watchdog() -> None:
    """Staff cancel a video while the watchdog requeues its stuck root. The cancel held the job
    rows and then wanted the video's lock, the reverse of the watchdog's order (and every
    other writer's): PostgreSQL failed one of them with a deadlock. The cancel is paused with
    its rows written until the watchdog waits on a lock."""
    video, root = stuck_root("cancel race", attempt=1)  # requeued by the watchdog
    errors = {}
    cancelling = threading.Event()
    parts_cancel = part_status.parts_cancel

    def paused_parts_cancel(video_id, reason):
        cancelling.set()  # the jobs' rows are written
        until_another_waits()
        parts_cancel(video_id, reason)

    part_status.parts_cancel = paused_parts_cancel

    def watchdog():
        cancelling.wait(10)
        jobs_recover_stuck()

    run_together(
        side(errors, "cancel", lambda: services.video_cancel(Video.objects.get(pk=video.pk))),
        side(errors, "watchdog", watchdog),
    )
    part_status.parts_cancel = parts_cancel
    print(json.dumps({"errors": errors, "job": ProcessingJob.objects.get(pk=root.pk).state}))
    connection.close()
