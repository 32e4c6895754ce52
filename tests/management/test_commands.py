"""The management commands of the interface contract: ingest, reprocess, video_status and
requeue_stuck. Encodes use a tiny clip (2 s, 320x180) so each takes well under a second."""

import io
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.support.media import make_clip
from transcoding import selectors, services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch import recording
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.management import waiting
from transcoding.models import (
    JobState,
    PartStatus,
    Preset,
    PresetRung,
    ProcessingJob,
    Rendition,
    Video,
    VideoStatus,
)

BASE_DIR = Path(__file__).resolve().parents[2]

# --wait runs the recorded jobs in-process, which needs the dispatch (on commit) to happen:
# a real transaction. serialized_rollback restores the default preset for later tests.
transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def documents(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


def run(name: str, *args) -> Result:
    """call_command with captured output; the exit status a shell would see."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *map(str, args), stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        return Result(exc.returncode, out.getvalue(), err.getvalue())
    return Result(0, out.getvalue(), err.getvalue())


@pytest.fixture
def text_mp4(tmp_path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("These are meeting notes, not a video.\n" * 20)
    return path


def make_video(title="v", status=VideoStatus.READY, **fields) -> Video:
    """A video row without any processing (for selection and bookkeeping tests)."""
    return Video.objects.create(title=title, source=f"originals/{title}/source.mp4", status=status, **fields)


def make_job(video, **fields) -> ProcessingJob:
    return ProcessingJob.objects.create(video=video, parts=["renditions"], **fields)


# ingest ------------------------------------------------------------------------------------


@transactional
def test_ingest_wait_json_ends_ready_and_video_status_agrees(tiny):
    result = run("ingest", tiny, "--title", "Tiny clip", "--wait", "--json")

    assert result.code == 0, result.err
    [doc] = result.documents()
    assert doc["status"] == "ready" and doc["playable"] is True and doc["progress"] == 100
    assert doc["title"] == "Tiny clip" and doc["error"] == ""
    assert doc["renditions"] and all(r["status"] == "ready" for r in doc["renditions"])
    assert doc["hls_url"].endswith(".m3u8") and doc["dash_url"].endswith(".mpd")
    assert doc["audio"]["status"] == "ready" and doc["storyboard"]["status"] == "ready"
    assert doc["duration"] == pytest.approx(2, abs=0.2) and (doc["width"], doc["height"]) == (320, 180)

    status = run("video_status", doc["id"], "--json")
    assert status.code == 0
    assert status.documents() == [doc]

    table = run("video_status")
    header, row, *parts = table.lines
    assert header.split() == [
        "ID",
        "STATUS",
        "PROGRESS",
        "PLAYABLE",
        "DURATION",
        "RESOLUTION",
        "TITLE",
        "ERROR",
    ]
    assert row.split()[:6] == [str(doc["id"]), "ready", "100%", "yes", "2.0s", "320x180"]
    assert "Tiny clip" in row
    names = [line.split()[0] for line in parts]
    assert names == [r["name"] for r in doc["renditions"]] + ["audio", "storyboard", "poster"]
    assert all(line.split()[1:3] == ["ready", "100%"] for line in parts)


@transactional
def test_ingest_bad_file_fails_with_one_line_reason_and_good_one_ends_ready(tiny, text_mp4):
    result = run("ingest", text_mp4, tiny, "--wait", "--json")

    assert result.code == 1
    bad, good = result.documents()
    assert bad["status"] == "failed" and bad["playable"] is False
    assert bad["error"].strip() and "\n" not in bad["error"]
    assert good["status"] == "ready" and good["playable"] is True
    assert f"video {bad['id']} failed: {bad['error']}" in result.err.splitlines()
    assert f"video {good['id']} failed" not in result.err
    # The original is kept.
    assert Path(Video.objects.get(pk=bad["id"]).source.path).read_bytes() == text_mp4.read_bytes()


@pytest.mark.django_db
def test_ingest_without_wait_queues_and_dispatches_after_commit(tiny, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = run("ingest", tiny, "--json")

    assert result.code == 0, result.err
    [doc] = result.documents()
    assert doc["status"] == "queued" and doc["title"] == "tiny"
    job = ProcessingJob.objects.get(video_id=doc["id"])
    assert recording.outbox == [job.pk]
    assert job.state == JobState.QUEUED


@pytest.mark.django_db
def test_ingest_plain_output_names_each_video(tiny):
    result = run("ingest", tiny, tiny, "--title", "Same")

    assert result.code == 0
    videos = list(Video.objects.order_by("pk"))
    assert [v.title for v in videos] == ["Same", "Same"]
    assert result.lines == [f"video {v.pk} queued: Same" for v in videos]


@pytest.mark.django_db
def test_ingest_missing_path_is_a_usage_error_and_creates_nothing(tiny, tmp_path):
    missing = tmp_path / "nope.mp4"
    result = run("ingest", tiny, missing, "--wait")

    assert result.code == 2
    assert f"No such file: {missing}" in result.err
    assert not Video.objects.exists() and not ProcessingJob.objects.exists()

    directory = run("ingest", tmp_path)
    assert directory.code == 2 and "Not a regular file" in directory.err
    assert run("ingest").code == 2
    assert not Video.objects.exists()


@pytest.mark.django_db
def test_ingest_preset_by_name(tiny):
    preset = Preset.objects.create(name="tiny-ladder")
    PresetRung.objects.create(preset=preset, height=144, max_bitrate=200_000)

    unknown = run("ingest", tiny, "--preset", "nonesuch")
    assert unknown.code == 2 and "nonesuch" in unknown.err and "tiny-ladder" in unknown.err
    assert not Video.objects.exists()

    assert run("ingest", tiny, "--preset", "tiny-ladder").code == 0
    assert Video.objects.get().preset == preset


# reprocess ---------------------------------------------------------------------------------


@transactional
def test_reprocess_only_storyboard_leaves_renditions_untouched(tiny):
    video = video_create(source=tiny)
    services.video_request_processing(video)
    assert run_recorded() == ["done"]
    renditions_before = list(Rendition.objects.filter(video=video).order_by("pk").values())
    storyboard_before = video.storyboard.finished_at

    result = run("reprocess", video.pk, "--only", "storyboard", "--wait")

    assert result.code == 0, result.err
    job = video.jobs.order_by("-pk").first()
    assert job.parts == ["storyboard"] and job.state == JobState.DONE
    assert f"video {video.pk}: queued job {job.pk} (storyboard)." in result.lines
    video.refresh_from_db()
    assert video.status == VideoStatus.READY and video.playable
    assert video.storyboard.status == PartStatus.READY and video.storyboard.finished_at > storyboard_before
    assert list(Rendition.objects.filter(video=video).order_by("pk").values()) == renditions_before


@pytest.mark.django_db
def test_reprocess_unknown_part_is_a_usage_error():
    video = make_video()
    result = run("reprocess", video.pk, "--only", "renditions,bogus")

    assert result.code == 2
    assert "'bogus'" in result.err and "renditions,audio,storyboard,poster,subtitles" in result.err
    assert not ProcessingJob.objects.exists()


@pytest.mark.django_db
def test_reprocess_subtitles_queues_a_subtitles_job_per_video(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    silent = make_clip(tmp_path / "silent.mp4", seconds=2, size="320x180", audio=False)
    first, second = video_create(source=silent), video_create(source=silent)
    settings.TRANSCODING_SPEECH_ENGINE = "no.such.Engine"  # never reached: there is no audio
    with django_capture_on_commit_callbacks(execute=True):
        result = run("reprocess", first.pk, second.pk, "--only", "subtitles")

    assert result.code == 0, result.err
    jobs = list(ProcessingJob.objects.order_by("video_id"))
    assert [(j.video_id, j.step, j.parts, j.state) for j in jobs] == [
        (first.pk, "subtitles", ["subtitles"], JobState.QUEUED),
        (second.pk, "subtitles", ["subtitles"], JobState.QUEUED),
    ]
    assert result.lines == [f"video {j.video_id}: queued job {j.pk} (subtitles)." for j in jobs]

    assert run_recorded() == ["done", "done"]
    for video in (first, second):
        (track,) = video.subtitles.all()
        assert (track.origin, track.status) == ("generated", PartStatus.SKIPPED)
        assert track.error == "The video has no audio to transcribe."


@pytest.mark.django_db
def test_reprocess_dry_run_lists_and_changes_nothing():
    ready, failed = make_video("ready"), make_video("broken", VideoStatus.FAILED, error="Bad.")
    busy = make_video("busy", VideoStatus.QUEUED)
    make_job(busy)
    before = list(Video.objects.order_by("pk").values()), list(ProcessingJob.objects.values())

    result = run("reprocess", "--all", "--only", "poster,storyboard", "--dry-run")

    assert result.code == 0
    assert (list(Video.objects.order_by("pk").values()), list(ProcessingJob.objects.values())) == before
    listed = [line.split("\t") for line in result.lines[:-1]]
    assert [row[:4] for row in listed] == [
        [str(ready.pk), "ready", "poster,storyboard", "ready"],
        [str(failed.pk), "failed", "poster,storyboard", "broken"],
        [str(busy.pk), "queued", "poster,storyboard", "busy"],
    ]
    assert listed[0][4] == "would queue" and listed[2][4].startswith("already queued")
    assert "nothing changed" in result.lines[-1]


@pytest.mark.django_db
def test_reprocess_failed_selects_only_failed_videos():
    make_video("ok")
    make_video("new", VideoStatus.UPLOADED)
    broken = make_video("broken", VideoStatus.FAILED, error="Bad.")

    result = run("reprocess", "--failed")

    assert result.code == 0, result.err
    job = ProcessingJob.objects.get()
    assert job.video == broken and job.state == JobState.QUEUED
    assert job.parts == ["renditions", "audio", "storyboard", "poster"]
    assert result.lines == [f"video {broken.pk}: queued job {job.pk} (renditions,audio,storyboard,poster)."]
    broken.refresh_from_db()
    assert broken.status == VideoStatus.QUEUED and broken.error == ""


@pytest.mark.django_db
def test_reprocess_stuck_replaces_the_abandoned_job_only():
    past, future = timezone.now() - timedelta(minutes=5), timezone.now() + timedelta(minutes=5)
    stuck = make_video("stuck", VideoStatus.PROCESSING)
    abandoned = make_job(stuck, state=JobState.RUNNING, attempt=1, lease_expires_at=past)
    healthy = make_video("healthy", VideoStatus.PROCESSING)
    running = make_job(healthy, state=JobState.RUNNING, attempt=1, lease_expires_at=future)

    result = run("reprocess", "--stuck")

    assert result.code == 0, result.err
    abandoned.refresh_from_db()
    running.refresh_from_db()
    assert abandoned.state == JobState.CANCELLED and running.state == JobState.RUNNING
    new = stuck.jobs.get(state=JobState.QUEUED)
    assert result.lines == [f"video {stuck.pk}: queued job {new.pk} (renditions,audio,storyboard,poster), "
                            f"replacing job {abandoned.pk}."]  # fmt: skip
    assert not healthy.jobs.filter(state=JobState.QUEUED).exists()


@pytest.mark.django_db
def test_reprocess_leaves_an_active_job_alone_unless_forced():
    video = make_video("busy", VideoStatus.QUEUED)
    job = make_job(video)

    result = run("reprocess", video.pk)
    assert result.code == 0
    assert "already queued" in result.out and list(video.jobs.all()) == [job]

    forced = run("reprocess", video.pk, "--force", "--only", "poster")
    assert forced.code == 0, forced.err
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert video.jobs.get(state=JobState.QUEUED).parts == ["poster"]


@pytest.mark.django_db
def test_reprocess_selection_errors():
    video = make_video()
    assert run("reprocess").code == 2
    unknown = run("reprocess", video.pk, 999_999)
    assert unknown.code == 2 and "999999" in unknown.err
    assert not ProcessingJob.objects.exists()
    assert run("reprocess", "--failed").lines == ["Nothing to reprocess."]


# video_status ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_video_status_json_and_table_without_processing():
    first = make_video("First", VideoStatus.FAILED, error="The file is not a video.\nSecond line.")
    second = make_video("Second", VideoStatus.UPLOADED)

    result = run("video_status", "--json")
    assert result.code == 0
    assert result.documents() == [selectors.video_status(first), selectors.video_status(second)]

    table = run("video_status", second.pk, first.pk)
    assert [line.split()[:2] for line in table.lines[1:]] == [
        [str(second.pk), "uploaded"],
        [str(first.pk), "failed"],
    ]
    assert table.lines[2].endswith("The file is not a video. Second line.")

    unknown = run("video_status", first.pk, 999_999)
    assert unknown.code == 2 and "999999" in unknown.err and not unknown.out


@pytest.mark.django_db
def test_video_status_with_no_videos():
    assert run("video_status").lines == ["No videos."]
    assert run("video_status", "--json").out == ""


# requeue_stuck -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_requeue_stuck_requeues_expired_and_fails_exhausted(django_capture_on_commit_callbacks):
    past, future = timezone.now() - timedelta(minutes=5), timezone.now() + timedelta(minutes=5)
    retry_video = make_video("retry", VideoStatus.PROCESSING)
    retry = make_job(retry_video, state=JobState.RUNNING, attempt=1, max_attempts=3, lease_expires_at=past)
    dead_video = make_video("dead", VideoStatus.PROCESSING)
    dead = make_job(dead_video, state=JobState.RUNNING, attempt=3, max_attempts=3, lease_expires_at=past)
    Rendition.objects.create(video=dead_video, name="360p", status=PartStatus.RUNNING)
    alive = make_job(make_video("alive"), state=JobState.RUNNING, attempt=1, lease_expires_at=future)

    with django_capture_on_commit_callbacks(execute=True):
        result = run("requeue_stuck")

    assert result.code == 0
    assert result.lines[-1] == "requeued 1, failed 1, dispatched again 0"
    for job in (retry, dead, alive):
        job.refresh_from_db()
    assert retry.state == JobState.QUEUED and retry.lease_expires_at is None
    assert dead.state == JobState.FAILED and "no attempts are left" in dead.error
    assert alive.state == JobState.RUNNING
    assert recording.outbox == [retry.pk]
    dead_video.refresh_from_db()
    assert dead_video.status == VideoStatus.FAILED and dead_video.error == dead.error
    assert dead_video.renditions.get().status == PartStatus.FAILED

    assert run("requeue_stuck").lines == ["requeued 0, failed 0, dispatched again 0"]


# waiting and progress ----------------------------------------------------------------------


@pytest.mark.django_db
def test_wait_for_videos_reports_changes_and_honours_timeout():
    video = make_video("stalled", VideoStatus.QUEUED)
    seen = []

    [latest] = waiting.wait_for_videos([video.pk], seen.append, poll=0.01, timeout=0.05)

    assert latest.status == VideoStatus.QUEUED
    assert [v.status for v in seen] == ["queued"]  # reported once: nothing changed after


def test_progress_display_draws_bars_on_a_terminal_and_lines_otherwise():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    video = Video(pk=7, title="Clip", status=VideoStatus.PROCESSING, progress=40)
    terminal = Terminal()
    with waiting.ProgressDisplay(terminal, [video]) as display:
        display(video)
        display(Video(pk=7, title="Clip", status=VideoStatus.READY, progress=100))
    assert "video 7 Clip" in terminal.getvalue() and "100%" in terminal.getvalue()
    assert "ready" in terminal.getvalue()

    plain = io.StringIO()
    display = waiting.ProgressDisplay(plain, [video])
    display(video)
    display(Video(pk=7, title="Clip", status=VideoStatus.PROCESSING, progress=80))
    display(Video(pk=7, title="Clip", status=VideoStatus.READY, progress=100))
    assert plain.getvalue().splitlines() == ["video 7: processing (40%)", "video 7: ready (100%)"]


# the real exit status, through manage.py ----------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ingest", "/no/such/file.mp4"], "No such file: /no/such/file.mp4"),
        (["ingest"], "Give at least one file"),
        (["reprocess", "1", "--only", "bogus"], "Unknown part 'bogus'"),
        (["reprocess"], "Nothing selected"),
        (["video_status", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}"}
    proc = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stdout == ""
    if argv[0] != "video_status":  # argparse prints its usage first
        assert len(proc.stderr.strip().splitlines()) == 1


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "{clip}"],
        ["reprocess", "1"],
        ["video_status"],
        ["requeue_stuck"],
        ["purge_orphans"],
        ["cleanup_uploads", "--dry-run"],
        ["create_api_key", "someone"],
    ],
    ids=lambda argv: argv[0],
)
def test_an_unreachable_database_is_one_line_and_exit_1(argv, tiny):
    """A failover, or a wrong DATABASE_URL: one line naming the database, never a traceback."""
    env = {**os.environ, "DATABASE_URL": f"postgres://nobody@127.0.0.1:{closed_port()}/videoproject"}
    env["DATABASE_POOL_MAX"] = "0"  # no pool: a pool would wait its timeout for a connection
    argv = [a.format(clip=tiny) for a in argv]
    command = [sys.executable, "manage.py", *argv]
    proc = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("CommandError: The database failed, so the command stopped: OperationalError")
    assert "Connection refused" in line
