"""The Video admin: changelist, upload, change page, actions; the Preset and job admins."""

from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.staticfiles import finders
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from transcoding import services
from transcoding.admin.display import HLS_SCRIPT
from transcoding.ingest.create import default_preset, video_create
from transcoding.jobs.dispatch import recording
from transcoding.jobs.dispatch.recording import run_recorded
from transcoding.models import (
    JobState,
    PartStatus,
    Poster,
    Preset,
    PresetRung,
    ProcessingJob,
    Rendition,
    Storyboard,
    Video,
    VideoStatus,
)
from transcoding.storage import objects

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:transcoding_video_changelist")
ADD = reverse("admin:transcoding_video_add")


def change_url(video):
    return reverse("admin:transcoding_video_change", args=[video.pk])


def make_video(status=VideoStatus.READY, title=None, sha="", part_status=None):
    """A video row with a 720p and a 360p rung, audio, storyboard and poster in `part_status`."""
    part_status = (
        part_status
        or {
            VideoStatus.UPLOADED: PartStatus.PENDING,
            VideoStatus.QUEUED: PartStatus.QUEUED,
            VideoStatus.PROCESSING: PartStatus.RUNNING,
            VideoStatus.READY: PartStatus.READY,
            VideoStatus.FAILED: PartStatus.FAILED,
        }[status]
    )
    progress = {PartStatus.RUNNING: 40, PartStatus.READY: 100}.get(part_status, 0)
    video = Video.objects.create(
        title=title or f"A {status} video",
        source=f"originals/{status}/source.mp4",
        status=status,
        progress=progress,
        source_sha256=sha,
        duration=75.4,
        width=1280,
        height=720,
        error="Unreadable input." if status == VideoStatus.FAILED else "",
    )
    for name, height, kind in (("720p", 720, "video"), ("360p", 360, "video"), ("audio", None, "audio")):
        Rendition.objects.create(
            video=video, name=name, kind=kind, height=height, status=part_status, progress=progress
        )
    Storyboard.objects.create(video=video, status=part_status, progress=progress)
    Poster.objects.create(video=video, status=part_status, progress=progress)
    return video


def run_action(client, action, *videos, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [v.pk for v in videos], **extra}
    return client.post(CHANGELIST, data, follow=True)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


# --- changelist ----------------------------------------------------------------------------------


def test_changelist_shows_a_badge_and_part_chips_for_every_status(admin_client):
    videos = {status: make_video(status) for status in VideoStatus.values}
    ProcessingJob.objects.create(video=videos["queued"], parts=["renditions"])

    response = admin_client.get(CHANGELIST)

    html = response.content.decode()
    assert response.status_code == 200
    for status, video in videos.items():
        assert f'class="tc-badge tc-badge--{status}" data-tc-video="{video.pk}"' in html
        assert f'data-tc-video="{video.pk}" data-tc-field="parts"' in html
    for chip in (
        "tc-chip--pending",
        "tc-chip--queued",
        "tc-chip--running",
        "tc-chip--ready",
        "tc-chip--failed",
    ):
        assert chip in html
    assert (
        'data-tc-name="720p"' in html and 'data-tc-name="audio"' in html and 'data-tc-name="poster"' in html
    )
    assert "360p <b>40%</b>" in html  # the processing video's rung shows its progress
    assert "1:15" in html and "1280×720" in html
    assert response.context["job_counts"] == {"queued": 1, "running": 0, "stuck": 0}
    assert "1 queued" in html
    assert "transcoding/admin-live.js" in html
    assert 'data-tc-api="/api/videos/"' in html


def test_changelist_queries_do_not_grow_with_the_number_of_videos(admin_client):
    make_video()
    with CaptureQueriesContext(connection) as one:
        admin_client.get(CHANGELIST)
    for status in VideoStatus.values:
        make_video(status)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(CHANGELIST)
    assert response.context["cl"].result_count == 6
    assert len(many) == len(one)


def test_search_finds_a_video_by_its_sha256(admin_client):
    wanted = make_video(title="Wanted", sha="ab" * 32)
    make_video(title="Other", sha="cd" * 32)

    for query in ("ab" * 32, "abababab"):
        response = admin_client.get(CHANGELIST, {"q": query})
        assert list(response.context["cl"].result_list) == [wanted]


def test_filter_by_status(admin_client):
    failed = make_video(VideoStatus.FAILED)
    make_video(VideoStatus.READY)

    response = admin_client.get(CHANGELIST, {"status__exact": "failed"})

    assert list(response.context["cl"].result_list) == [failed]


# --- upload and the change page ------------------------------------------------------------------


@pytest.fixture
def small_preset():
    preset = Preset.objects.create(name="Small")
    PresetRung.objects.create(preset=preset, height=360, max_bitrate=800_000, crf=28)
    PresetRung.objects.create(preset=preset, height=240, max_bitrate=400_000, crf=30)
    return preset


def upload_form(source, **fields):
    return {
        "title": "",
        "description": "",
        "source": source,
        "poster_time": "",
        "subtitles-TOTAL_FORMS": "0",
        "subtitles-INITIAL_FORMS": "0",
        "_save": "Save",
        **fields,
    }


def inline_management(client, video) -> dict:
    """The management form data of every inline the change page shows (no subtitle rows)."""
    page = client.get(change_url(video))
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        data.update({form.add_prefix(key): form.initial[key] for key in ("TOTAL_FORMS", "INITIAL_FORMS")})
    return data


@pytest.mark.slow
def test_uploading_a_video_stores_it_queues_one_job_and_shows_the_result(
    admin_client, clips, settings, small_preset, django_capture_on_commit_callbacks
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # the upload streams to a temporary file, as big ones do
    clip = clips["720p"]
    with open(clip, "rb") as handle, django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            ADD, upload_form(handle, title="Test pattern", preset=small_preset.pk, published="on")
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    video = Video.objects.get()
    assert (video.title, video.published, video.preset) == ("Test pattern", True, small_preset)
    assert video.original_filename == "720p.mp4"
    assert video.source_size == clip.stat().st_size
    stored = Path(settings.MEDIA_ROOT, video.source.name)
    assert stored.read_bytes() == clip.read_bytes()
    job = ProcessingJob.objects.get()
    assert recording.outbox == [job.pk]
    assert video.status == VideoStatus.QUEUED

    assert run_recorded() == ["done"]

    response = admin_client.get(change_url(video))
    html = response.content.decode()
    video.refresh_from_db()
    assert video.status == VideoStatus.READY and video.playable
    for name in ("360p", "240p", "audio"):
        assert f'data-tc-video="{video.pk}" data-tc-part="{name}"' in html
    assert html.count('class="tc-chip tc-chip--ready"') >= 5  # rungs, audio, storyboard, poster
    assert f'data-tc-hls-src="{objects.url(video.hls_path)}"' in html
    assert "<video controls" in html and "hls.js-1.6.19/hls.min.js" in html
    assert 'class="tc-badge tc-badge--ready"' in html
    assert "Job log" in html and "renditions, audio, storyboard, poster" in html


def test_a_file_name_is_the_title_when_none_is_given(admin_client, clips, django_capture_on_commit_callbacks):
    with open(clips["silent"], "rb") as handle, django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(ADD, upload_form(handle))
    assert response.status_code == 302
    video = Video.objects.get()
    assert video.title == "silent"
    assert video.preset == default_preset()
    assert len(recording.outbox) == 1


def test_a_new_source_replaces_the_original_and_requeues(
    admin_client, clips, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        video = video_create(source=clips["silent"], title="Replace me")
        first_job = services.video_request_processing(video)
    Video.objects.filter(pk=video.pk).update(source_sha256="f" * 64, width=640, height=360)
    old_original = Path(settings.MEDIA_ROOT, video.source.name)
    assert old_original.exists()

    with open(clips["720p"], "rb") as handle, django_capture_on_commit_callbacks(execute=True):
        data = {**inline_management(admin_client, video), **upload_form(handle, title="Replaced")}
        response = admin_client.post(change_url(video), data)

    assert response.status_code == 302
    video.refresh_from_db()
    new_hash = __import__("hashlib").sha256(clips["720p"].read_bytes()).hexdigest()
    assert video.original_filename == "720p.mp4" and video.source_sha256 == new_hash and video.width is None
    assert not old_original.exists()
    assert Path(settings.MEDIA_ROOT, video.source.name).read_bytes() == clips["720p"].read_bytes()
    first_job.refresh_from_db()
    assert first_job.state == JobState.CANCELLED
    second_job = video.jobs.get(state=JobState.QUEUED)
    assert recording.outbox == [first_job.pk, second_job.pk]


def test_editing_without_a_new_file_does_not_requeue(admin_client):
    video = make_video(VideoStatus.READY)
    data = {
        **inline_management(admin_client, video),
        "title": "Renamed",
        "description": "",
        "poster_time": "",
    }
    response = admin_client.post(change_url(video), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    video.refresh_from_db()
    assert video.title == "Renamed" and video.status == VideoStatus.READY
    assert not ProcessingJob.objects.exists() and recording.outbox == []


def test_change_page_shows_parts_storyboard_poster_and_job_log(admin_client):
    video = make_video(VideoStatus.PROCESSING)
    ProcessingJob.objects.create(
        video=video, parts=["renditions", "audio"], state=JobState.RUNNING, attempt=1, log_tail="frame=42"
    )
    response = admin_client.get(change_url(video))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-tc-video="{video.pk}" data-tc-field="progress"' in html
    assert f'data-tc-video="{video.pk}" data-tc-part="storyboard"' in html
    assert f'data-tc-video="{video.pk}" data-tc-part="poster"' in html
    assert "1/3" in html and "frame=42" in html and "<details" in html
    assert 'data-tc-hls-src=""' in html  # not playable yet: the script starts it later
    assert "transcoding/admin-upload.js" in html and "data-tc-upload" in html
    assert "subtitles-TOTAL_FORMS" in html


def test_the_job_log_says_when_a_chunk_waits_for_a_slot(admin_client):
    """A chunk held back by the caps on encodes in flight (docs/scaling.md) is queued, and the
    job log says why it has not started."""
    video = make_video(VideoStatus.PROCESSING)
    ProcessingJob.objects.create(video=video, parts=["renditions"], state=JobState.QUEUED, held=True)
    html = admin_client.get(change_url(video)).content.decode()
    assert "Queued (waiting for a slot)" in html


# --- actions -------------------------------------------------------------------------------------


def test_reprocess_storyboard_queues_a_storyboard_job(admin_client, django_capture_on_commit_callbacks):
    video = make_video(VideoStatus.READY)
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, "reprocess_storyboard", video)

    job = ProcessingJob.objects.get()
    assert (job.video, job.parts, job.state) == (video, ["storyboard"], JobState.QUEUED)
    assert recording.outbox == [job.pk]
    assert Storyboard.objects.get(video=video).status == PartStatus.QUEUED
    assert Poster.objects.get(video=video).status == PartStatus.READY
    assert messages_of(response) == ["Queued storyboard reprocessing for 1 video."]


def test_reprocess_everything_replaces_an_active_job(admin_client, django_capture_on_commit_callbacks):
    videos = [make_video(VideoStatus.READY), make_video(VideoStatus.FAILED)]
    with django_capture_on_commit_callbacks(execute=True):
        old = services.video_request_processing(videos[0], parts=["poster"])
        response = run_action(admin_client, "reprocess_all", *videos)

    old.refresh_from_db()
    assert old.state == JobState.CANCELLED
    active = ProcessingJob.objects.filter(state=JobState.QUEUED)
    assert sorted(j.video_id for j in active) == sorted(v.pk for v in videos)
    assert all(j.parts == ["renditions", "audio", "storyboard", "poster"] for j in active)
    assert messages_of(response) == ["Queued full reprocessing for 2 videos."]


def test_there_is_one_action_per_part_kind(admin_client):
    make_video()
    response = admin_client.get(CHANGELIST)
    choices = dict(response.context["action_form"].fields["action"].choices)
    assert choices["reprocess_renditions"] == "Reprocess renditions"
    assert choices["reprocess_audio"] == "Reprocess audio"
    assert choices["reprocess_poster"] == "Reprocess poster"
    assert choices["delete_selected"] == "Delete with all outputs"
    assert "Cancel processing" in choices.values() and "Reprocess everything" in choices.values()


def test_cancel_processing_cancels_jobs_and_fails_the_video(admin_client, django_capture_on_commit_callbacks):
    video = make_video(VideoStatus.UPLOADED)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.video_request_processing(video)

    response = run_action(admin_client, "cancel_processing", video)

    job.refresh_from_db()
    video.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert video.status == VideoStatus.FAILED and "Cancelled" in video.error
    assert messages_of(response) == ["Cancelled 1 job of 1 video."]


@pytest.fixture
def stored_video(clips, settings):
    """A video with its original and some outputs on disk."""
    video = video_create(source=clips["silent"], title="Stored")
    objects.store_text(f"{objects.video_prefix(video.pk)}/master.m3u8", "#EXTM3U\n")
    objects.store_text(f"{objects.video_prefix(video.pk)}/240p/media.m3u8", "#EXTM3U\n")
    original = Path(settings.MEDIA_ROOT, video.source.name)
    folder = Path(settings.MEDIA_ROOT, objects.video_prefix(video.pk))
    assert original.exists() and len(list(folder.rglob("*.m3u8"))) == 2
    return video, original, folder


def test_delete_with_outputs_removes_files_and_rows(admin_client, stored_video):
    video, original, folder = stored_video
    keep = make_video(VideoStatus.READY, title="Keep")

    confirm = run_action(admin_client, "delete_selected", video)
    assert "every stored output" in confirm.content.decode()
    assert Video.objects.filter(pk=video.pk).exists()

    response = run_action(admin_client, "delete_selected", video, post="yes")

    assert not Video.objects.filter(pk=video.pk).exists()
    assert not original.exists()
    assert not list(folder.rglob("*.*"))
    assert list(Video.objects.all()) == [keep]
    assert messages_of(response) == ["Successfully deleted 1 video."]


def test_the_delete_page_removes_files_too(admin_client, stored_video):
    video, original, folder = stored_video
    url = reverse("admin:transcoding_video_delete", args=[video.pk])
    assert "every stored output" in admin_client.get(url).content.decode()

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Video.objects.exists() and not original.exists() and not list(folder.rglob("*.*"))


# --- presets and jobs ----------------------------------------------------------------------------


def test_preset_admin_adds_a_rung_inline(admin_client):
    preset = Preset.objects.create(name="Mobile")
    data = {key: value for key, value in model_to_dict(preset).items() if value is not None}
    data.update({
        "rungs-TOTAL_FORMS": "1", "rungs-INITIAL_FORMS": "0",
        "rungs-0-height": "540", "rungs-0-max_bitrate": "2000000", "rungs-0-crf": "23",
    })  # fmt: skip

    response = admin_client.post(reverse("admin:transcoding_preset_change", args=[preset.pk]), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    rung = preset.rungs.get()
    assert (rung.height, rung.max_bitrate, rung.crf) == (540, 2_000_000, 23)
    listing = admin_client.get(reverse("admin:transcoding_preset_changelist")).content.decode()
    assert "540p 2.0 Mb/s" in listing and "1080p 6.0 Mb/s" in listing


def test_job_admin_lists_filters_and_searches_read_only(admin_client):
    wanted = make_video(VideoStatus.PROCESSING, title="Findable")
    other = make_video(VideoStatus.READY, title="Other")
    running = ProcessingJob.objects.create(video=wanted, state=JobState.RUNNING)
    ProcessingJob.objects.create(video=other, state=JobState.DONE)
    url = reverse("admin:transcoding_processingjob_changelist")

    assert list(admin_client.get(url, {"state__exact": "running"}).context["cl"].result_list) == [running]
    assert list(admin_client.get(url, {"q": "findable"}).context["cl"].result_list) == [running]
    assert admin_client.get(reverse("admin:transcoding_processingjob_add")).status_code == 403
    page = admin_client.get(reverse("admin:transcoding_processingjob_change", args=[running.pk]))
    assert page.status_code == 200 and b'name="state"' not in page.content


def test_the_admin_scripts_and_the_vendored_player_are_static_files():
    for name in ("admin-live.js", "admin-upload.js", "admin.css"):
        assert finders.find(f"transcoding/{name}"), name
    licence = Path(finders.find(HLS_SCRIPT)).with_name("LICENSE").read_text()
    assert "Apache License" in licence
