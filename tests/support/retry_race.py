"""Run inside `manage.py shell` against a PostgreSQL scenario (tests/jobs/test_slots_postgres.py):
a retried root job starts its parts (`encode._start_parts`) while the last chunk's stitch holds
the video's row lock and has marked the rungs ready, not yet committed. The root must decide
what is left after the stitch commits (it waits for the same lock), and so find the rungs
finished; deciding before, it set them back to running once the stitch committed. Prints, as
JSON, the parts the root started and how the rungs ended."""

import json
import threading
from datetime import timedelta
from fractions import Fraction

from django.db import connection, transaction
from django.utils import timezone

from tests.support.pg_races import run_together, side, until_another_waits
from transcoding.encoding import encode
from transcoding.media.ladder import PresetSpec, RungSpec, SourceInfo, plan_encode
from transcoding.models import JobState, PartStatus, Poster, ProcessingJob, Rendition, Storyboard, Video


def main() -> None:
    info = SourceInfo(
        container="mov,mp4", duration=12.0, width=640, height=360, video_codec="h264", fps=Fraction(30),
        audio_codec="aac", audio_channels=2, audio_sample_rate=48000,
    )  # fmt: skip
    ladder = PresetSpec(rungs=(RungSpec(360, 800_000), RungSpec(240, 400_000)))
    plan = plan_encode(info, ladder, segment_seconds=4.0)
    earlier = timezone.now() - timedelta(minutes=1)
    video = Video.objects.create(title="retry race", source="originals/x/source", status="processing")
    root = ProcessingJob.objects.create(
        video=video, chunk=0, parts=["renditions", "audio", "storyboard", "poster"], state=JobState.RUNNING,
        attempt=2,
    )  # fmt: skip
    ProcessingJob.objects.filter(pk=root.pk).update(created_at=earlier)
    root.refresh_from_db()
    for rung in plan.rungs:
        Rendition.objects.create(video=video, name=rung.name, kind="video", status=PartStatus.RUNNING)
    finished = {"status": PartStatus.READY, "finished_at": timezone.now()}
    Rendition.objects.create(video=video, name="audio", kind="audio", **finished)
    Storyboard.objects.create(video=video, **finished)
    Poster.objects.create(video=video, **finished)

    stitched, started, errors = threading.Event(), {}, {}

    def stitch():
        """What `stitch.fan_in` does: the video's lock, the rungs ready, then the commit."""
        with transaction.atomic():
            Video.objects.select_for_update().get(pk=video.pk)
            Rendition.objects.filter(video=video, kind="video").update(
                status=PartStatus.READY, finished_at=timezone.now()
            )
            stitched.set()
            until_another_waits()  # the root's start waits for a lock of ours

    def root_starts():
        stitched.wait(10)
        started["parts"] = list(encode._start_parts(video, root, plan))

    run_together(side(errors, "stitch", stitch), side(errors, "root", root_starts))
    rungs = dict(Rendition.objects.filter(video=video, kind="video").values_list("name", "status"))
    print(json.dumps({"started": started.get("parts"), "rungs": rungs, "errors": errors}))
    connection.close()
