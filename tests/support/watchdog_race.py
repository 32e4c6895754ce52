"""Run inside `manage.py shell` against a PostgreSQL scenario (tests/jobs/test_slots_postgres.py):
the watchdog fails a video's stuck root for good (no attempts left) while another chunk of the
same video ends. The chunk's end takes the video's row lock, then its job's row (the order every
writer keeps: `status.videos.video_lock`); the watchdog must keep it too, or each waits for the
other's lock and PostgreSQL breaks the deadlock by failing one of them. Prints, as JSON, the
errors each side met and how the rows ended."""

import json
import threading
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from transcoding import services
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, ProcessingJob, Video
from transcoding.status import parts as part_status
from transcoding.status import videos


def waiting_on_a_lock() -> bool:
    """Whether a session of this database waits for a lock (read fresh: inside a transaction
    PostgreSQL would answer from the snapshot of its first read)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def main() -> None:
    now = timezone.now()
    video = Video.objects.create(title="watchdog race", source="originals/x/source", status="processing")
    root = ProcessingJob.objects.create(
        video=video, chunk=0, parts=["renditions"], state=JobState.RUNNING, attempt=3, max_attempts=3,
        lease_expires_at=now - timedelta(seconds=5),
    )  # fmt: skip
    chunk = ProcessingJob.objects.create(
        video=video, parent=root, chunk=1, parts=["renditions"], state=JobState.RUNNING, attempt=1,
        lease_expires_at=now + timedelta(minutes=5),
    )  # fmt: skip
    errors = {"chunk": [], "watchdog": []}
    video_locked, watchdog_waits = threading.Event(), threading.Event()

    def chunk_ends():
        """What the runner does at a job's end (`runner._end_under_the_video_lock`)."""
        try:
            with transaction.atomic():
                videos.video_lock(video.pk)
                video_locked.set()
                watchdog_waits.wait(10)  # the watchdog is blocked on a lock now
                ProcessingJob.objects.filter(pk=chunk.pk).update(progress=100)
        except Exception as exc:
            errors["chunk"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            connection.close()

    def watchdog():
        try:
            jobs_recover_stuck()
        except Exception as exc:
            errors["watchdog"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            connection.close()

    ending = threading.Thread(target=chunk_ends)
    ending.start()
    video_locked.wait(10)
    passing = threading.Thread(target=watchdog)
    passing.start()
    deadline = time.monotonic() + 10
    while not waiting_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.05)
    watchdog_waits.set()
    ending.join(30)
    passing.join(30)
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
    now = timezone.now()
    video = Video.objects.create(title="cancel race", source="originals/x/source", status="processing")
    root = ProcessingJob.objects.create(
        video=video, chunk=0, parts=["renditions"], state=JobState.RUNNING, attempt=1, max_attempts=3,
        lease_expires_at=now - timedelta(seconds=5),
    )  # fmt: skip
    errors = {"cancel": [], "watchdog": []}
    cancelling = threading.Event()
    parts_cancel = part_status.parts_cancel

    def paused_parts_cancel(video_id, reason):
        cancelling.set()  # the jobs' rows are written
        deadline = time.monotonic() + 10
        while not waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        parts_cancel(video_id, reason)

    part_status.parts_cancel = paused_parts_cancel

    def cancel():
        try:
            services.video_cancel(Video.objects.get(pk=video.pk))
        except Exception as exc:
            errors["cancel"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            connection.close()

    def watchdog():
        try:
            cancelling.wait(10)
            jobs_recover_stuck()
        except Exception as exc:
            errors["watchdog"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            connection.close()

    threads = [threading.Thread(target=cancel), threading.Thread(target=watchdog)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    part_status.parts_cancel = parts_cancel
    print(json.dumps({"errors": errors, "job": ProcessingJob.objects.get(pk=root.pk).state}))
    connection.close()
