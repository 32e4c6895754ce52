"""Amazon Transcribe across runs of one subtitles job, against moto's S3 and Transcribe: the
first run submits the audio and returns, the job waits in the queue (not an attempt, its track
running), later runs look once each, and the one that finds the job completed publishes the
track. A failed Transcribe job, a run that stopped midway and the longest wait end the way
they should.

moto's Transcribe advances a job one status per GetTranscriptionJob (set below), so the runs
after the one that submitted it find it QUEUED, IN_PROGRESS, then COMPLETED; it runs no
recognition and writes no output, so each test puts the WebVTT where the service writes it
(beside the OutputKey, named after the job)."""

from datetime import timedelta

import boto3
import pytest
import webvtt
from django.utils import timezone
from moto import mock_aws
from moto.moto_api import state_manager

from tests.support.checks import stored
from transcoding import services
from transcoding.captions.speech import TICKET
from transcoding.captions.speech_engines import AwsTranscribeEngine
from transcoding.ingest.create import video_create
from transcoding.jobs import tasks
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.models import JobState, PartStatus, ProcessingJob, Subtitle, Video, VideoStatus

BUCKET = "transcripts"
VTT = (
    b"WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\nHello from Transcribe.\n\n"
    b"2\n00:00:03.000 --> 00:00:04.000\nBye.\n"
)


class TranscribeFails(AwsTranscribeEngine):
    """The service failing every job it started, as it does for audio it cannot read (moto
    completes them all), with a reason on two lines."""

    def _job(self, name):
        job = super()._job(name)
        if job is None:
            return None
        reason = "The media format provided does not match\nthe detected media format."
        return {**job, "TranscriptionJobStatus": "FAILED", "FailureReason": reason}


@pytest.fixture
def aws(settings, monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        monkeypatch.setenv(name, value)
    settings.TRANSCODING_SPEECH_ENGINE = "aws-transcribe"
    settings.TRANSCODING_TRANSCRIBE_BUCKET = BUCKET
    settings.TRANSCODING_TRANSCRIBE_POLL_SECONDS = 30
    with mock_aws():
        state_manager.set_transition("transcribe::transcriptionjob", {"progression": "manual", "times": 1})
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield s3
        state_manager.unset_transition("transcribe::transcriptionjob")


def transcribe_jobs() -> list[str]:
    """The Transcribe jobs started (listing does not advance moto's jobs; getting one does)."""
    summaries = boto3.client("transcribe").list_transcription_jobs()["TranscriptionJobSummaries"]
    return [s["TranscriptionJobName"] for s in summaries]


def later(job: ProcessingJob) -> str:
    """The clock moves on to the job's next look, and the backend delivers it."""
    ProcessingJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    return tasks.process_job(job.pk)


def later_until_done(job: ProcessingJob) -> list[str]:
    """Later runs until one is not "waiting" (moto's job completes on the third look)."""
    outcomes = [later(job)]
    while outcomes[-1] == "waiting" and len(outcomes) < 5:
        outcomes.append(later(job))
    return outcomes


def ticket(job: ProcessingJob) -> dict:
    job.refresh_from_db()
    return job.result[TICKET]["service"]


def generated_track(video) -> Subtitle:
    return Subtitle.objects.get(video=video, origin=Subtitle.Origin.GENERATED)


def request(video, django_capture_on_commit_callbacks, **kwargs) -> ProcessingJob:
    with django_capture_on_commit_callbacks(execute=True):
        return services.subtitle_request_generation(video, **kwargs)


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("language", ["", "en"])
def test_transcribe_is_submitted_then_finished_by_later_runs(
    aws, clips, language, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["720p"])
    job = request(video, django_capture_on_commit_callbacks, language=language)
    assert generated_track(video).status == PartStatus.QUEUED  # a part from the request on

    assert run_recorded() == ["waiting"]  # submitted; the run is over

    job.refresh_from_db()
    assert (job.state, job.attempt, job.lease_expires_at) == (JobState.QUEUED, 0, None)
    assert job.next_attempt_at > timezone.now() + timedelta(seconds=20)
    assert "submitted" in job.log_tail
    track = generated_track(video)
    assert (track.status, track.attempts) == (PartStatus.RUNNING, 1)
    service = ticket(job)
    assert transcribe_jobs() == [service["name"]]
    (wav,) = aws.list_object_versions(Bucket=BUCKET)["Versions"]
    assert wav["Key"] == f"{service['stem']}.wav" and wav["Size"] > 6 * 16_000 * 2  # 6 s, 16 kHz, 16-bit

    assert tasks.process_job(job.pk) == "skipped"  # delivered before it is due: nothing happens
    aws.put_object(Bucket=BUCKET, Key=f"{service['stem']}.vtt", Body=VTT)
    assert later_until_done(job) == ["waiting", "waiting", "done"]  # QUEUED, IN_PROGRESS, COMPLETED

    job.refresh_from_db()
    assert (job.state, job.attempt, job.error) == (JobState.DONE, 1, "")
    track = generated_track(video)
    assert (track.status, track.language, track.cue_count, track.attempts) == ("ready", "en", 2, 1), (
        track.error
    )
    cues = list(webvtt.read(str(stored(track.vtt_path))))
    assert [(c.start, c.end, c.text) for c in cues] == [
        ("00:00:01.000", "00:00:02.500", "Hello from Transcribe."),
        ("00:00:03.000", "00:00:04.000", "Bye."),
    ]
    assert stored(track.playlist_path).read_text().startswith("#EXTM3U")
    started = boto3.client("transcribe").get_transcription_job(TranscriptionJobName=service["name"])
    started = started["TranscriptionJob"]
    assert started["Media"]["MediaFileUri"] == f"s3://{BUCKET}/{service['stem']}.wav"
    assert started["MediaFormat"] == "wav" and started["Subtitles"]["Formats"] == ["vtt"]
    assert started["LanguageCode"] == "en-US"
    assert started.get("IdentifyLanguage", False) is (language == "")
    assert transcribe_jobs() == [service["name"]]
    assert "Contents" not in aws.list_objects_v2(Bucket=BUCKET)  # audio and outputs tidied away


@pytest.mark.slow
@pytest.mark.django_db
def test_a_job_still_in_progress_waits_again_without_using_an_attempt(
    aws, clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["720p"])
    job = request(video, django_capture_on_commit_callbacks, language="en")
    assert run_recorded() == ["waiting"]
    assert later(job) == "waiting"  # QUEUED, and it stays so
    state_manager.set_transition("transcribe::transcriptionjob", {"progression": "manual", "times": 99})

    for _ in range(job.max_attempts + 2):  # more looks than attempts: waiting is not failing
        assert later(job) == "waiting"
    job.refresh_from_db()
    assert (job.state, job.attempt, job.error) == (JobState.QUEUED, 0, "")
    assert "QUEUED" in job.log_tail
    assert ProcessingJob.objects.stuck().count() == 0
    assert generated_track(video).status == PartStatus.RUNNING
    assert len(transcribe_jobs()) == 1


@pytest.mark.slow
@pytest.mark.django_db
def test_a_run_that_stopped_after_submitting_does_not_start_a_second_job(
    aws, clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["720p"])
    job = request(video, django_capture_on_commit_callbacks)
    assert run_recorded() == ["waiting"]
    name = ticket(job)["name"]
    # The worker died after starting Transcribe, before it could say it waits: its lease
    # expired, and the watchdog queued it again (an attempt used).
    ProcessingJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempt=1,
        worker="dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert tasks.process_job(job.pk) == "waiting"  # moto: IN_PROGRESS
    assert tasks.process_job(job.pk) == "skipped"  # a duplicate delivery of the same message
    assert transcribe_jobs() == [name]

    aws.put_object(Bucket=BUCKET, Key=f"{ticket(job)['stem']}.vtt", Body=VTT)
    assert later_until_done(job)[-1] == "done"
    assert generated_track(video).status == PartStatus.READY
    assert transcribe_jobs() == [name]


@pytest.mark.slow
@pytest.mark.django_db
def test_a_run_that_stopped_before_submitting_starts_the_job_under_the_same_name(
    aws, clips, django_capture_on_commit_callbacks
):
    video = video_create(source=clips["720p"])
    job = request(video, django_capture_on_commit_callbacks)
    assert run_recorded() == ["waiting"]
    name = ticket(job)["name"]
    boto3.client("transcribe").delete_transcription_job(TranscriptionJobName=name)  # as if never started

    assert later(job) == "waiting"  # audio extracted again, the job started
    assert transcribe_jobs() == [name]
    aws.put_object(Bucket=BUCKET, Key=f"{ticket(job)['stem']}.vtt", Body=VTT)
    assert later_until_done(job)[-1] == "done"
    assert generated_track(video).status == PartStatus.READY


@pytest.mark.slow
@pytest.mark.django_db
def test_a_failed_transcribe_job_fails_the_track_with_its_reason_in_one_line(
    aws, clips, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_SPEECH_ENGINE = f"{__name__}.TranscribeFails"
    video = video_create(source=clips["720p"])
    job = request(video, django_capture_on_commit_callbacks)
    assert run_recorded() == ["waiting"]

    assert later(job) == "failed"

    reason = "Amazon Transcribe failed: The media format provided does not match the detected media format."
    job.refresh_from_db()
    assert (job.state, job.attempt, job.error) == (JobState.FAILED, 1, reason)  # not retried
    track = generated_track(video)
    assert (track.status, track.error) == (PartStatus.FAILED, reason)
    assert "Contents" not in aws.list_objects_v2(Bucket=BUCKET)


@pytest.mark.slow
@pytest.mark.django_db
def test_the_longest_wait_ends_in_a_failure(aws, clips, settings, django_capture_on_commit_callbacks):
    video = video_create(source=clips["720p"])
    job = request(video, django_capture_on_commit_callbacks)
    assert run_recorded() == ["waiting"]
    settings.TRANSCODING_TRANSCRIBE_MAX_WAIT_SECONDS = 0  # the clock passes the limit

    assert later(job) == "failed"  # moto: QUEUED

    track = generated_track(video)
    assert (track.status, track.error) == (
        PartStatus.FAILED, "Amazon Transcribe did not finish within 0 s; gave up."
    )  # fmt: skip
    assert "Contents" not in aws.list_objects_v2(Bucket=BUCKET)


@pytest.mark.slow
@pytest.mark.django_db
def test_an_upload_is_ready_while_its_transcribe_job_runs(
    aws, tiny, small_preset, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_GENERATE_SUBTITLES = True  # the built-in default for presets that inherit
    video = video_create(source=tiny, preset=small_preset)
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)

    assert run_recorded() == ["done", "waiting"]

    video = Video.objects.get(pk=video.pk)
    assert (video.status, video.playable, video.progress) == (VideoStatus.READY, True, 100)
    assert generated_track(video).status == PartStatus.RUNNING
    job = video.jobs.get(step=ProcessingJob.Step.SUBTITLES)
    aws.put_object(Bucket=BUCKET, Key=f"{ticket(job)['stem']}.vtt", Body=VTT)
    assert later(job) == "waiting"
    assert Video.objects.get(pk=video.pk).status == VideoStatus.READY
    assert later_until_done(job)[-1] == "done"

    video = Video.objects.get(pk=video.pk)
    assert video.status == VideoStatus.READY
    track = generated_track(video)
    assert (track.status, track.language) == ("ready", "en")
    assert "TYPE=SUBTITLES" in stored(video.hls_path).read_text()
