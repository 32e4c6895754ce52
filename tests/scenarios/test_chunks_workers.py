"""Split and stitch across real processes. tests/scenarios/test_chunks.py runs every chunk in the test
process; here the chunks go through the machinery that makes them worth having: a broker that
hands them to worker processes running side by side, and a worker that dies for real (SIGKILL)
in the middle of a chunk, so that only a lease and the watchdog can tell.

The Celery test runs against PostgreSQL and Redis as tests/jobs/test_celery.py does (its scenario
fixture and helpers are reused) and is skipped, with the reason, when either is missing. The
kill test runs the local worker (`manage.py worker`) against this suite's SQLite test database.
"""

import os
import signal
import subprocess

import pytest
from django.utils import timezone

from tests.support import checks
from tests.support.media import make_clip
from tests.support.processes import (
    ffmpeg_in_group,
    group_alive,
    kill_group,
    start_worker,
    wait_for,
    worker_env,
)
from tests.support.services import (
    assert_outputs_in_subprocess,
    celery_worker,
    ingest,
    real_services,
    shell,
    video_row,
)
from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch.recording import outbox
from transcoding.jobs.tasks import process_job
from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.models import JobState, ProcessingJob, Rendition, Video

LADDER = ["720p", "480p", "360p", "240p"]
SMALL_LADDER = ["360p", "240p"]
SECONDS = 24.0
FRAME = 1001 / 30000  # one frame of the 29.97 fps clip
# Three 8 s chunks for the 24 s clip, in every process of a test.
CHUNKED = {"TRANSCODING_CHUNK_SECONDS": "8", "TRANSCODING_CHUNK_THRESHOLD_SECONDS": "12"}


def ntsc_clip(directory, size: str):
    """24 s at 29.97 fps: the chunk boundaries (8 and 16 s) fall between frames."""
    return make_clip(directory / f"ntsc-{size}.mp4", seconds=SECONDS, size=size, rate="30000/1001")


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    """Two rungs (360p, 240p): the joins are what is tested here, not the ladder, and the
    test encodes the clip twice (chunked, then whole) on a machine the chunks share."""
    return ntsc_clip(tmp_path_factory.mktemp("chunks-workers"), "640x360")


@pytest.fixture(scope="module")
def hd_clip(tmp_path_factory):
    """The whole ladder, and chunks that take seconds each: long enough to be caught mid-encode."""
    return ntsc_clip(tmp_path_factory.mktemp("chunks-workers"), "1280x720")


# --- Celery: three chunks on two worker processes -------------------------------------------


def job_rows(pg, video_id: int) -> list[dict]:
    columns = ("id", "chunk", "state", "attempt", "worker", "started_at", "finished_at", "result")
    rows = pg.query(
        f"SELECT {', '.join(columns)} FROM transcoding_processingjob WHERE video_id = %s ORDER BY chunk",
        video_id,
    )
    return [dict(zip(columns, row)) for row in rows]


def renditions(pg, video_id: int) -> dict[str, Rendition]:
    """The video's renditions as stored in PostgreSQL, as (unsaved) model instances, so that
    tests/support/checks.py reads their files as it does for videos of this process."""
    rows = pg.query(
        "SELECT name, kind, segments, duration, playlist_path FROM transcoding_rendition WHERE video_id = %s",
        video_id,
    )
    return {
        name: Rendition(name=name, kind=kind, segments=segments, duration=duration, playlist_path=path)
        for name, kind, segments, duration, path in rows
    }


def pid_of(worker: str) -> str:
    """The process in a claim token ("host:pid:nonce"); the nonce is new at every claim."""
    return worker.split(":")[1]


def encode_unchunked(env: dict, clip) -> int:
    """The same clip as one chunk, encoded in a `manage.py shell` against the scenario's
    database; `force` keeps it from reusing the chunked video's outputs (same bytes)."""
    env = {**env, "TRANSCODING_DISPATCH": "recording", "TRANSCODING_CHUNK_THRESHOLD_SECONDS": "1000"}
    done = shell(
        env,
        "import json; from transcoding import services; from transcoding.jobs import tasks; "
        "from transcoding.ingest.create import video_create; "
        f"video = video_create(source={str(clip)!r}); "
        "job = services.video_request_processing(video, force=True); "
        "print(json.dumps({'video': video.pk, 'outcome': tasks.process_job(job.pk)}))",
        timeout=240,
    )
    assert done["outcome"] == "done", done
    return done["video"]


@pytest.mark.slow
@real_services
def test_three_chunks_on_two_celery_processes_stitch_into_what_one_encode_makes(
    scenario,  # noqa: F811
    small_clip,
    settings,
):
    """The broker, not the test, decides who runs which chunk: the chunks must still meet at
    the joins and the last one to finish must stitch, whichever process that is."""
    env = {**scenario.env, **CHUNKED}
    log = scenario.root / "worker-chunks.log"
    with celery_worker(env, log, concurrency=2):
        video_id = ingest(env, small_clip)["id"]
        wait_for(
            lambda: video_row(scenario, video_id)["status"] in ("ready", "failed"), 180, "never finished", 0.5
        )
    row = video_row(scenario, video_id)
    assert row["status"] == "ready", (row, log.read_text()[-3000:])

    jobs = job_rows(scenario, video_id)
    assert [j["chunk"] for j in jobs] == [0, 1, 2]
    assert [(j["state"], j["attempt"]) for j in jobs] == [("done", 1)] * 3, log.read_text()[-3000:]
    assert jobs[0]["result"]["stitched"] and all(j["result"]["complete"] for j in jobs)
    # Two pool processes took part, and chunk 1 started while the root still encoded chunk 0.
    assert len({pid_of(j["worker"]) for j in jobs}) == 2, [j["worker"] for j in jobs]
    assert jobs[1]["started_at"] < jobs[0]["finished_at"]
    for name in SMALL_LADDER:
        assert len({j["result"]["inits"][name] for j in jobs}) == 1, name  # one init per rung

    assert_outputs_in_subprocess(env, video_id, SECONDS, SMALL_LADDER)

    whole_id = encode_unchunked(scenario.env, small_clip)
    assert [j["chunk"] for j in job_rows(scenario, whole_id)] == [0]
    settings.MEDIA_ROOT = str(scenario.media)  # where checks.concatenated reads the segments
    chunked, whole = renditions(scenario, video_id), renditions(scenario, whole_id)
    for name in [*SMALL_LADDER, "audio"]:
        a, b = chunked[name], whole[name]
        assert [s[0] for s in a.segments] == [s[0] for s in b.segments], name
        for (_, da), (_, db) in zip(a.segments, b.segments):
            assert abs(da - db) <= FRAME + 1e-6, name
        assert abs(a.duration - b.duration) <= FRAME, name
    for name in SMALL_LADDER:
        times = checks.packet_times(chunked[name])
        assert times == pytest.approx(checks.packet_times(whole[name]), abs=1e-6), name
        gaps = {round(t2 - t1, 6) for t1, t2 in zip(times, times[1:])}
        assert gaps == {round(FRAME, 6)}, name  # continuous across the joins at 8 and 16 s
    audio = checks.packet_times(chunked["audio"])
    assert {round(t2 - t1, 6) for t1, t2 in zip(audio, audio[1:])} == {round(1024 / 48000, 6)}
    assert abs(len(audio) * 1024 / 48000 - SECONDS) < 0.05


# --- The local worker: a chunk's worker killed with SIGKILL ---------------------------------


def chunk_mid_encode(root: ProcessingJob, worker: subprocess.Popen) -> ProcessingJob | None:
    """A chunk job (not the root) the worker has claimed, with its ffmpeg at work."""
    running = ProcessingJob.objects.filter(parent=root, state=JobState.RUNNING, progress__gt=0).first()
    return running if running is not None and ffmpeg_in_group(worker.pid) else None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chunk_whose_worker_is_killed_is_retried_alone(hd_clip, settings, tmp_path):
    """Nobody reports a SIGKILLed worker's chunk as failed: its lease runs out, the watchdog
    requeues that chunk, and the video finishes without redoing the chunks that were done."""
    settings.TRANSCODING_CHUNK_SECONDS = 8
    settings.TRANSCODING_CHUNK_THRESHOLD_SECONDS = 12
    video = video_create(source=hd_clip)
    root = services.video_request_processing(video)  # recording backend: nothing runs yet
    assert process_job(outbox.pop(0)) == "done"  # the root, here: plans, fans out, encodes chunk 0
    chunks = list(ProcessingJob.objects.filter(parent=root).order_by("chunk"))
    assert [c.chunk for c in chunks] == [1, 2] and outbox == [c.pk for c in chunks]
    outbox.clear()  # the workers below find the queued chunks in the table

    env = {**worker_env(tmp_path, lease=3), **CHUNKED}
    with open(tmp_path / "worker-a.log", "wb") as log_a:
        first = start_worker(env, log_a, concurrency=1)
        try:
            killed = wait_for(lambda: chunk_mid_encode(root, first), 60, "no chunk was ever mid-encode", 0.1)
            os.kill(first.pid, signal.SIGKILL)  # the worker only: its ffmpeg must die with it
            first.wait(timeout=10)
            wait_for(lambda: not group_alive(first.pid), 5, "ffmpeg outlived its killed worker")
        finally:
            kill_group(first, signal.SIGKILL, wait=10)
    killed.refresh_from_db()
    assert (killed.state, killed.attempt) == (JobState.RUNNING, 1)  # nobody says it stopped
    assert Video.objects.get(pk=video.pk).status == "processing"

    wait_for(lambda: ProcessingJob.objects.get(pk=killed.pk).lease_expires_at < timezone.now(), 10, "lease")
    requeued, failed, _ = jobs_recover_stuck()
    assert (requeued, failed) == ([killed.pk], [])  # that chunk only; the other one never started
    outbox.clear()

    # A longer lease: under load, the two threads of this worker must not take each other's jobs.
    env = {**env, "TRANSCODING_LEASE_SECONDS": "60"}
    with open(tmp_path / "worker-b.log", "wb") as log_b:
        second = start_worker(env, log_b, concurrency=2)
        try:
            wait_for(
                lambda: Video.objects.get(pk=video.pk).status in ("ready", "failed"),
                120,
                "never finished",
                0.5,
            )
        finally:
            kill_group(second, signal.SIGINT, wait=20)
            kill_group(second, signal.SIGKILL, wait=10)
        assert not group_alive(second.pid)

    log = (tmp_path / "worker-b.log").read_text()
    jobs = {j.chunk: j for j in ProcessingJob.objects.filter(video=video)}
    expected = {0: 1, 1: 1, 2: 1} | {killed.chunk: 2}  # the killed chunk alone ran twice
    assert {chunk: job.attempt for chunk, job in jobs.items()} == expected, log
    assert all(j.state == JobState.DONE for j in jobs.values()), log
    assert pid_of(jobs[killed.chunk].worker) == str(second.pid)  # the retry ran in the new worker
    assert jobs[0].result["stitched"]
    video = Video.objects.get(pk=video.pk)
    checks.assert_all_outputs(video, SECONDS, LADDER, audio=True)
