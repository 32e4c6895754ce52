"""Imports from a URL: refused up front for internal targets (nothing created), refused when
fetched after a redirect or a rebinding name (the video fails with one line, nothing stored),
with the canary on 127.0.0.1 counting zero requests; the size limit holds whatever the server
announces; a good URL becomes a video that encodes to ready; retries start over cleanly and a
duplicate delivery does nothing.

The allowed server is `origin` on 127.0.0.2 (tests/support/outbound.py): only it is let
through by TRANSCODING_OUTBOUND_ALLOW_ADDRESSES, and plain http is allowed for the tests."""

import hashlib
import threading
from pathlib import Path

import pytest
from django.urls import reverse

from tests.support.canary import Canary
from tests.support.checks import decode_errors
from tests.support.outbound import broken_off, chunked_with_a_small_length
from transcoding import services
from transcoding.errors import InvalidRequest
from transcoding.jobs import tasks
from transcoding.jobs.dispatch import recording
from transcoding.jobs.steps import import_from_url
from transcoding.models import JobState, ProcessingJob, Video, VideoStatus
from transcoding.status.jobs import JobCancelled

pytestmark = [pytest.mark.django_db]

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def importing(settings, origin):
    settings.TRANSCODING_URL_IMPORT_ALLOW_HTTP = True
    settings.TRANSCODING_RETRY_BASE_SECONDS = 0
    return origin


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Deliver every recorded job, and the ones they queue after commit, as a worker would."""

    def deliver() -> list[str]:
        outcomes = []
        while recording.outbox:
            with django_capture_on_commit_callbacks(execute=True):
                outcomes += recording.run_recorded()
        return outcomes

    return deliver


@pytest.fixture
def request_import(django_capture_on_commit_callbacks):
    def request(url: str, **fields) -> Video:
        with django_capture_on_commit_callbacks(execute=True):
            return services.video_import_url(url, **fields)

    return request


def stored_originals(settings) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT, "originals").rglob("*") if p.is_file()]


LOOPBACK = "a loopback address: refused."
PRIVATE = "a private address: refused."
METADATA = "a link-local address (the cloud metadata service): refused."


@pytest.fixture
def targets(canary, canary6, fake_dns):
    """Each internal target as (URL, the video's error): literals, and names resolving to them."""
    fake_dns.update(
        {"loopback.test": ["127.0.0.1"], "private.test": ["10.0.0.1"], "metadata.test": ["169.254.169.254"]}
    )
    port = canary.port
    return {
        "loopback": (canary.url("/"), f"The address 127.0.0.1 is {LOOPBACK}"),
        "loopback https": (canary.url("/", scheme="https"), f"The address 127.0.0.1 is {LOOPBACK}"),
        "IPv6 loopback": (canary6.url("/"), f"The address ::1 is {LOOPBACK}"),
        "10/8": ("http://10.0.0.1/a.mp4", f"The address 10.0.0.1 is {PRIVATE}"),
        "metadata": (
            "http://169.254.169.254/latest/meta-data/",
            f"The address 169.254.169.254 is {METADATA}",
        ),
        "localhost": (
            f"http://localhost:{port}/",
            f"The address localhost resolves to 127.0.0.1, {LOOPBACK}",
        ),
        "name to loopback": (
            f"http://loopback.test:{port}/",
            f"The address loopback.test resolves to 127.0.0.1, {LOOPBACK}",
        ),
        "name to 10/8": ("http://private.test/", f"The address private.test resolves to 10.0.0.1, {PRIVATE}"),
        "name to metadata": (
            "http://metadata.test/",
            f"The address metadata.test resolves to 169.254.169.254, {METADATA}",
        ),
    }


TARGETS = [
    "loopback", "loopback https", "IPv6 loopback", "10/8", "metadata", "localhost", "name to loopback",
    "name to 10/8", "name to metadata",
]  # fmt: skip


@pytest.fixture
def nothing_reached(canary, canary6, connect_log, settings):
    yield
    assert canary.hits == [] and canary6.hits == []
    assert set(connect_log) <= {"127.0.0.2"}, connect_log
    assert stored_originals(settings) == []


@pytest.mark.parametrize("name", TARGETS)
def test_an_internal_url_is_refused_when_requested(name, targets, request_import, nothing_reached):
    url, message = targets[name]
    with pytest.raises(InvalidRequest) as refused:
        request_import(url, title="attack")
    assert str(refused.value) == message
    assert not Video.objects.exists() and not ProcessingJob.objects.exists()
    assert recording.outbox == []


def test_http_is_refused_unless_allowed(settings, origin, request_import, nothing_reached):
    settings.TRANSCODING_URL_IMPORT_ALLOW_HTTP = False
    with pytest.raises(InvalidRequest, match=r"^Only https URLs are allowed: http refused\.$"):
        request_import(origin.url("/a.mp4"))
    assert origin.hits == []


@pytest.mark.parametrize("name", TARGETS)
def test_a_redirect_to_an_internal_url_fails_the_video_in_one_line(
    name, targets, origin, request_import, run, nothing_reached
):
    url, message = targets[name]
    video = request_import(origin.redirect("/video.mp4", url))
    assert video.status == VideoStatus.QUEUED and not video.source

    assert run() == ["failed"]
    video.refresh_from_db()
    assert (video.status, video.error) == (VideoStatus.FAILED, message)
    assert origin.hits == ["/video.mp4"]
    assert ProcessingJob.objects.get().error == message


def test_a_name_rebound_to_loopback_after_the_request_is_refused_when_fetched(
    origin, fake_dns, request_import, run, connect_log, settings
):
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    fake_dns["rebind.test"] = lambda: next(answers)
    with Canary(port=origin.port) as canary:  # 127.0.0.1, on the port the allowed server has
        video = request_import(origin.url("/a.mp4", host="rebind.test"))
        assert run() == ["failed"]
        assert canary.hits == []
    video.refresh_from_db()
    assert video.error == "The address rebind.test resolves to 127.0.0.1, a loopback address: refused."
    assert connect_log == [] and stored_originals(settings) == []


@pytest.mark.slow
def test_an_imported_clip_is_stored_hashed_and_encoded_to_ready(
    origin, tiny, small_preset, request_import, run, settings
):
    body = tiny.read_bytes()
    origin.serve("/media/tiny.mp4", body, headers={"Content-Type": "video/mp4"})
    start = origin.redirect("/watch?v=1", "/media/tiny.mp4")  # a redirect to an allowed address is fine

    video = request_import(start, published=True)
    assert (video.title, video.import_url, video.preset) == ("watch", start, small_preset)
    assert run() == ["done", "done"], Video.objects.get(pk=video.pk).error  # the import, then the encode

    video.refresh_from_db()
    assert video.status == VideoStatus.READY and video.playable, video.error
    assert video.original_filename == "tiny.mp4"
    assert (video.source_size, video.source_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert Path(settings.MEDIA_ROOT, video.source.name).read_bytes() == body
    assert video.source.name.startswith("originals/") and video.source.name.endswith("/source")
    assert decode_errors(str(Path(settings.MEDIA_ROOT, video.hls_path))) == ""
    assert origin.hits == ["/watch?v=1", "/media/tiny.mp4"]


OVER = "The file at the URL is larger than the 1.0 MB limit."


@pytest.mark.parametrize(
    "route, message",
    [
        (lambda o: o.serve("/big", b"\0" * 2 * MIB), "The URL announces 2.0 MB, more than the 1.0 MB limit."),
        (lambda o: o.serve("/big", b"\0" * 2 * MIB, length=False), OVER),
        (lambda o: o.routes.__setitem__("/big", chunked_with_a_small_length(2 * MIB)), OVER),
    ],
    ids=["announced", "no length", "length lies"],
)  # fmt: skip
def test_a_file_over_the_limit_fails_the_video_and_leaves_nothing_stored(
    route, message, origin, request_import, run, settings
):
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 1 * MIB
    route(origin)
    video = request_import(origin.url("/big"))
    assert run() == ["failed"]
    video.refresh_from_db()
    assert (video.status, video.error) == (VideoStatus.FAILED, message)
    assert stored_originals(settings) == [] and not video.source


@pytest.mark.parametrize("status", [403, 404, 410])
def test_an_error_answer_fails_the_video(status, origin, request_import, run, settings):
    video = request_import(origin.url(f"/missing-{status}"))
    origin.routes[f"/missing-{status}"] = lambda h: h.send_error(status)
    assert run() == ["failed"]
    video.refresh_from_db()
    assert video.error == f"The URL answered {status}."
    assert stored_originals(settings) == []


def test_a_server_error_is_retried_and_the_next_attempt_imports(origin, request_import, run, settings):
    origin.routes["/flaky.mp4"] = lambda h: h.send_error(503)
    video = request_import(origin.url("/flaky.mp4"))
    assert run() == ["retry"]
    job = ProcessingJob.objects.get()
    assert (job.state, job.attempt, job.error) == (
        JobState.QUEUED,
        1,
        "OutboundUnavailable: The URL answered 503.",
    )
    assert Video.objects.get(pk=video.pk).status == VideoStatus.QUEUED

    origin.serve("/flaky.mp4", b"the original")
    recording.outbox.append(job.pk)  # a backend delivers the retry once it is due
    assert run() == ["done", "failed"]  # the import, then an encode of bytes that are no video
    video.refresh_from_db()
    assert Path(settings.MEDIA_ROOT, video.source.name).read_bytes() == b"the original"
    assert video.jobs.filter(step=ProcessingJob.Step.ENCODE).count() == 1


def test_a_download_broken_off_leaves_nothing_and_the_retry_starts_over(
    origin, request_import, run, settings
):
    body = bytes(range(256)) * 4096  # 1 MiB
    origin.routes["/clip.mp4"] = broken_off(body)
    video = request_import(origin.url("/clip.mp4"))
    assert run() == ["retry"]
    assert stored_originals(settings) == []
    assert "broke off" in ProcessingJob.objects.get().error

    origin.serve("/clip.mp4", body)
    recording.outbox.append(ProcessingJob.objects.get().pk)
    run()
    video.refresh_from_db()
    assert stored_originals(settings) == [Path(settings.MEDIA_ROOT, video.source.name)]
    assert (video.source_size, video.source_sha256) == (len(body), hashlib.sha256(body).hexdigest())


def test_a_duplicate_delivery_does_nothing(origin, request_import, run):
    video = request_import(origin.serve("/a.mp4", b"the original"))
    job = ProcessingJob.objects.get(video=video)
    assert run() == ["done", "failed"]  # the import, then an encode of bytes that are no video
    assert tasks.process_job(job.pk) == "skipped"
    assert origin.hits == ["/a.mp4"]
    assert video.jobs.filter(step=ProcessingJob.Step.ENCODE).count() == 1


def test_running_the_step_again_fetches_nothing_and_queues_no_second_encode(
    origin, request_import, django_capture_on_commit_callbacks
):
    """A worker that died after storing the original and queueing the encode, its job taken
    over: the next attempt finds both done."""
    video = request_import(origin.serve("/a.mp4", b"the original"))
    job = ProcessingJob.objects.select_related("video").get(video=video)
    with django_capture_on_commit_callbacks(execute=True):
        import_from_url(job, lambda: None)
    job = ProcessingJob.objects.select_related("video").get(pk=job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        import_from_url(job, lambda: None)
    assert origin.hits == ["/a.mp4"]
    assert video.jobs.filter(step=ProcessingJob.Step.ENCODE).count() == 1


def test_the_admin_shows_where_a_video_was_imported_from(admin_client, origin, request_import):
    url = origin.serve("/a.mp4", b"x")
    video = request_import(url, title="Imported")
    response = admin_client.get(reverse("admin:transcoding_video_change", args=[video.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and url in html
    assert 'name="import_url"' not in html  # shown, not editable


def test_an_import_streams_into_s3_in_parts(s3, origin, request_import, run):
    """A body past S3's multipart threshold (8 MiB) goes up in parts as it arrives (the stream
    is read once, never seeked), and is stored byte for byte."""
    body = hashlib.sha256(b"seed").digest() * (12 * MIB // 32)
    video = request_import(origin.serve("/big.mp4", body))
    assert run()[:1] == ["done"]
    video.refresh_from_db()
    stored = s3.client.get_object(Bucket=s3.name, Key=video.source.name)["Body"].read()
    assert stored == body and video.source_sha256 == hashlib.sha256(body).hexdigest()


def test_an_import_over_the_limit_leaves_nothing_in_s3(s3, origin, request_import, run, settings):
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 9 * MIB
    origin.serve("/big.mp4", b"\0" * 12 * MIB, length=False)
    video = request_import(origin.url("/big.mp4"))
    assert run() == ["failed"]
    assert Video.objects.get(pk=video.pk).error == "The file at the URL is larger than the 9.0 MB limit."
    assert s3.keys() == []


def test_a_job_cancelled_while_it_downloads_stops_and_leaves_nothing(origin, request_import, settings):
    """The heartbeat (in the job's thread) finds the job cancelled while storage is reading
    the download (in a helper thread): the download stops at its next chunk, nothing stays."""
    resume = threading.Event()

    def slow(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(4 * MIB))
        handler.end_headers()
        handler.wfile.write(b"\0" * MIB)
        resume.wait(10)
        for _ in range(3):
            handler.wfile.write(b"\0" * MIB)

    def cancelled():
        resume.set()  # the server goes on: the stop is seen at the next chunk, not at a timeout
        raise JobCancelled("cancelled by staff")

    origin.routes["/slow.mp4"] = slow
    video = request_import(origin.url("/slow.mp4"))
    job = ProcessingJob.objects.select_related("video").get(video=video)
    with pytest.raises(JobCancelled):
        import_from_url(job, cancelled)
    assert stored_originals(settings) == []
    assert not Video.objects.get(pk=video.pk).source


def test_an_imported_video_is_editable_before_and_after_its_original_arrives(
    admin_client, origin, request_import
):
    """Before: the form does not ask for a file. After: an edit keeps the imported original
    (the admin writes only the fields the form changed)."""
    video = request_import(origin.serve("/a.mp4", b"the original"), title="Before")
    form = {
        "title": "Renamed", "description": "", "preset": video.preset_id or "", "poster_time": "",
        "speech_language": "", "subtitles-TOTAL_FORMS": "0", "subtitles-INITIAL_FORMS": "0",
        "renditions-TOTAL_FORMS": "0", "renditions-INITIAL_FORMS": "0",
        "jobs-TOTAL_FORMS": "0", "jobs-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:transcoding_video_change", args=[video.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Video.objects.get(pk=video.pk).title == "Renamed"
    job = ProcessingJob.objects.select_related("video").get(video=video)
    import_from_url(job, lambda: None)
    form = {
        "title": "After", "description": "", "preset": video.preset_id or "", "poster_time": "",
        "speech_language": "", "subtitles-TOTAL_FORMS": "0", "subtitles-INITIAL_FORMS": "0",
        "renditions-TOTAL_FORMS": "0", "renditions-INITIAL_FORMS": "0",
        "jobs-TOTAL_FORMS": "0", "jobs-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = admin_client.post(reverse("admin:transcoding_video_change", args=[video.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    video.refresh_from_db()
    assert video.title == "After" and video.source and video.source_size == len(b"the original")
