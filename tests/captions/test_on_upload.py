"""Captions on upload: which new uploads get a generated subtitle track (the preset's
`generate_subtitles`, else TRANSCODING_GENERATE_SUBTITLES), queued with the upload as a part of
its own with a job of its own, dispatched after commit; a reprocess of the encode does not
generate again unless asked. Rows only: no job runs here (test_transcribe.py and
test_speech.py run them)."""

import io

import pytest
from django.core.management import call_command

from transcoding import services
from transcoding.ingest.create import video_create
from transcoding.jobs.dispatch import recording
from transcoding.models import (
    PartStatus,
    Preset,
    ProcessingJob,
    Subtitle,
    Video,
    VideoStatus,
    generates_subtitles,
)

SUBTITLES = ProcessingJob.Step.SUBTITLES


@pytest.mark.parametrize(
    "preset_says, setting, expected",
    [
        ("none", False, False),
        ("none", True, True),
        (None, False, False),
        (None, True, True),
        (True, False, True),
        (False, True, False),
    ],
)
@pytest.mark.django_db
def test_the_preset_decides_else_the_setting(preset_says, setting, expected, settings):
    settings.TRANSCODING_GENERATE_SUBTITLES = setting
    preset = None if preset_says == "none" else Preset(name="p", generate_subtitles=preset_says)
    assert generates_subtitles(preset) is expected


def upload(tmp_path, *, preset=None, speech_language="") -> Video:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"bytes nobody decodes here")
    video = video_create(source=source, title="clip", preset=preset)
    if speech_language:
        Video.objects.filter(pk=video.pk).update(speech_language=speech_language)
        video.refresh_from_db()
    return video


def subtitles_jobs(video) -> list[ProcessingJob]:
    return list(video.jobs.filter(step=SUBTITLES))


@pytest.mark.django_db
def test_a_new_upload_on_a_preset_with_captions_queues_a_generated_track_and_its_job(
    tmp_path, django_capture_on_commit_callbacks
):
    preset = Preset.objects.create(name="with captions", generate_subtitles=True)
    video = upload(tmp_path, preset=preset, speech_language="pt-BR")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        encode = services.video_request_processing(video)
        assert recording.outbox == []  # nothing leaves before the commit
    assert len(callbacks) >= 2

    (job,) = subtitles_jobs(video)
    assert encode.step == ProcessingJob.Step.ENCODE and recording.outbox == [encode.pk, job.pk]
    (track,) = video.subtitles.all()
    assert (track.origin, track.status, track.language) == ("generated", PartStatus.QUEUED, "und")
    assert job.options == {"language": "pt-BR", "track": track.pk}  # settled when the job starts
    assert Video.objects.get(pk=video.pk).status == VideoStatus.QUEUED


@pytest.mark.django_db
def test_the_setting_is_the_default_for_the_built_in_ladder(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    video = upload(tmp_path)
    Video.objects.filter(pk=video.pk).update(preset=None)  # the built-in ladder
    video.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)
    assert len(subtitles_jobs(video)) == 1


@pytest.mark.django_db
def test_a_preset_saying_no_wins_over_the_setting(tmp_path, settings, django_capture_on_commit_callbacks):
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    video = upload(tmp_path, preset=Preset.objects.create(name="no captions", generate_subtitles=False))
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)
    assert subtitles_jobs(video) == [] and not video.subtitles.exists()
    assert len(recording.outbox) == 1


@pytest.mark.django_db
def test_reprocessing_the_encode_does_not_generate_again_unless_asked(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    video = upload(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)
    assert len(subtitles_jobs(video)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video, force=True)  # e.g. `reprocess ID --force`
        services.video_request_processing(video, parts=["renditions"], force=True)
    assert len(subtitles_jobs(video)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video, force=True, generate_subtitles=True)
    jobs = subtitles_jobs(video)
    assert len(jobs) == 2 and {j.state for j in jobs} == {"cancelled", "queued"}
    assert video.subtitles.count() == 1  # the same queued row, requested again


@pytest.mark.django_db
def test_a_first_request_for_chosen_parts_generates_nothing(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    video = upload(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video, parts=["renditions", "audio"])
    assert subtitles_jobs(video) == []


@pytest.mark.django_db
def test_the_ingest_command_is_a_new_upload(tmp_path, settings, django_capture_on_commit_callbacks):
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    source = tmp_path / "talk.mp4"
    source.write_bytes(b"bytes nobody decodes here")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("ingest", str(source), stdout=io.StringIO())
    video = Video.objects.get()
    assert [j.step for j in video.jobs.order_by("pk")] == ["encode", "subtitles"]
    assert video.subtitles.get().origin == Subtitle.Origin.GENERATED


@pytest.mark.django_db
def test_an_uploaded_track_saved_after_the_request_takes_its_place(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    """The admin saves a new video's tracks after queueing it: an uploaded "pt-BR" track finds
    its place free (the queued generated track is "und" until its job settles it)."""
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    video = upload(tmp_path, speech_language="pt-BR")
    with django_capture_on_commit_callbacks(execute=True):
        services.video_request_processing(video)
    uploaded = Subtitle(video=video, language="pt-BR", kind="subtitles", file="subtitles/x/original")
    services.subtitle_save(uploaded)
    assert sorted(video.subtitles.values_list("language", "kind", "origin")) == [
        ("pt-BR", "subtitles", "uploaded"), ("und", "subtitles", "generated"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_subtitles_job_waiting_for_its_service_does_not_hold_back_a_reprocess(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_GENERATE_SUBTITLES = True
    video = upload(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        encode = services.video_request_processing(video)
    ProcessingJob.objects.filter(pk=encode.pk).update(state="done")  # the subtitles job still waits
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reprocess", str(video.pk), stdout=out)
    assert "queued job" in out.getvalue(), out.getvalue()
    assert video.jobs.filter(step=ProcessingJob.Step.ENCODE, state="queued").count() == 1
    assert len(subtitles_jobs(video)) == 1
