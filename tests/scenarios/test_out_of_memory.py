"""An ffmpeg out of memory is retried once with a smaller footprint: every rung in a process of
its own (`errors.smaller_footprint`, `media.ffmpeg.encode_passes`), never again the same way.

The numbers were measured on the 6 s 720p test clip (the `clips` fixture), ffmpeg's peak
resident memory: the whole ladder in one process about 305 MiB; one rung at a time at most
157 MiB (720p), 68 MiB for 240p with the storyboard, poster and audio beside it about 107 MiB.
A 230 MiB limit sits between: the full ladder is over it, every single rung under it.

Two ways to run out: the product's own limit (TRANSCODING_FFMPEG_MAX_MEMORY_MB, RSS read from
/proc; deterministic), and the kernel's (a cgroup v1 memory controller limit: the OOM killer
sends SIGKILL; skipped where the cgroup cannot be made).
"""

import time
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from tests.support import checks
from transcoding import services
from transcoding.conf import ffmpeg_binary
from transcoding.errors import RUNGS_PER_PROCESS
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.jobs.tasks import process_job
from transcoding.models import ProcessingJob, Rendition, Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

LADDER = ["720p", "480p", "360p", "240p"]
SECONDS = 6.0
FITS_ONE_RUNG_MB = 230  # over one rung's peak (157 MiB), under the whole ladder's (305 MiB)
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")


def process(path, capture, force: bool = False) -> Video:
    with capture(execute=True):
        video = video_create(source=path)
        services.video_request_processing(video, force=force)
    return video


def run_retry(job: ProcessingJob) -> str:
    """The retry, now: its backoff is the watchdog's and the clock's business, not this test's."""
    ProcessingJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    return process_job(job.pk)


def rungs(video: Video) -> dict[str, tuple]:
    """What a viewer gets of each rung: size, codec and segment count and durations."""
    return {
        r.name: (r.width, r.height, r.codec, [round(d, 3) for _, d in r.segments])
        for r in Rendition.objects.filter(video=video)
    }


def assert_retried_one_rung_at_a_time(video: Video, normal: Video | None = None) -> None:
    """Ready after two attempts, the second with one rung per process; the outputs check out
    like any encode's, and the rungs are those of a normal encode of the same clip."""
    job = ProcessingJob.objects.get(video=video)
    video = Video.objects.get(pk=video.pk)
    assert (job.state, job.attempt) == ("done", 2), (job.state, job.attempt, job.error)
    assert job.options[RUNGS_PER_PROCESS] == 1
    checks.assert_all_outputs(video, SECONDS, LADDER, audio=True)
    if normal is not None:
        assert rungs(video) == rungs(normal)


def test_over_the_memory_limit_is_retried_once_one_rung_at_a_time(
    settings, clips, django_capture_on_commit_callbacks
):
    normal = process(clips["720p"], django_capture_on_commit_callbacks)
    assert run_recorded() == ["done"]

    settings.TRANSCODING_FFMPEG_MAX_MEMORY_MB = FITS_ONE_RUNG_MB
    video = process(clips["720p"], django_capture_on_commit_callbacks, force=True)
    assert run_recorded() == ["retry"]
    job = ProcessingJob.objects.get(video=video)
    # The reason, one line, where the admin and the API show it (the job, the parts).
    assert job.error == (
        f"ffmpeg used more than the {FITS_ONE_RUNG_MB} MiB memory limit (TRANSCODING_FFMPEG_MAX_MEMORY_MB) "
        "and was stopped. Retrying with one rung per ffmpeg process."
    )
    assert Rendition.objects.get(video=video, name="720p").error == f"Will retry: {job.error}"
    assert job.options[RUNGS_PER_PROCESS] == 1

    assert run_retry(job) == "done"
    assert_retried_one_rung_at_a_time(video, normal)


def test_out_of_memory_one_rung_at_a_time_fails_for_good_at_the_second_attempt(
    settings, clips, django_capture_on_commit_callbacks
):
    """Not three times the same way: the smaller footprint is tried once, then the job fails."""
    settings.TRANSCODING_FFMPEG_MAX_MEMORY_MB = 40  # under any rung
    video = process(clips["720p"], django_capture_on_commit_callbacks)
    assert run_recorded() == ["retry"]
    job = ProcessingJob.objects.get(video=video)
    assert run_retry(job) == "failed"

    job.refresh_from_db()
    video.refresh_from_db()
    assert (job.state, job.attempt) == ("failed", 2)
    assert video.status == "failed"
    assert video.error == (
        "ffmpeg used more than the 40 MiB memory limit (TRANSCODING_FFMPEG_MAX_MEMORY_MB) and was stopped, "
        "even with one rung per process."
    )


@pytest.fixture
def memory_cgroup():
    """A cgroup v1 memory controller group limited to FITS_ONE_RUNG_MB, without swap; removed
    at the end. Skips where it cannot be made (no v1 memory controller, not root)."""
    group = MEMORY_CGROUPS / f"videoproject-oom-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(f"{FITS_ONE_RUNG_MB}M")
        (group / "memory.swappiness").write_text("0")
    except OSError as exc:
        if group.exists():
            group.rmdir()
        pytest.skip(f"cannot make a memory cgroup under {MEMORY_CGROUPS} ({exc.strerror})")
    try:
        yield group
    finally:
        for _ in range(50):  # the last ffmpeg may still be leaving
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_killed_by_the_kernel_out_of_memory_is_retried_once_one_rung_at_a_time(
    settings, clips, tmp_path, memory_cgroup, django_capture_on_commit_callbacks
):
    """The kernel's OOM killer (the cgroup's limit) sends SIGKILL: nobody in the worker sent it,
    so it is out of memory, and the retry fits one rung at a time."""
    wrapper = tmp_path / "ffmpeg-in-cgroup"
    wrapper.write_text(f'#!/bin/sh\necho $$ > {memory_cgroup}/cgroup.procs\nexec {ffmpeg_binary()} "$@"\n')
    wrapper.chmod(0o755)
    settings.TRANSCODING_FFMPEG_BINARY = str(wrapper)
    video = process(clips["720p"], django_capture_on_commit_callbacks)
    assert run_recorded() == ["retry"]
    job = ProcessingJob.objects.get(video=video)
    assert job.error.startswith("ffmpeg was killed (SIGKILL) by the system"), job.error
    kills = dict(line.split() for line in (memory_cgroup / "memory.oom_control").read_text().splitlines())
    assert int(kills["oom_kill"]) >= 1  # the kernel's OOM killer did it

    assert run_retry(job) == "done"
    assert_retried_one_rung_at_a_time(video)
