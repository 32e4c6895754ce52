"""Direct uploads to S3 (STORAGE=s3): the JSON endpoints, the cleanup command and, in Chromium,
the admin's add form uploading in parts, failing one, resuming after a reload and completing.

Against moto's server over HTTP (tests/support/s3.py) with the real django-storages and boto3 clients;
parts are PUT to the presigned URLs with `requests`, as a browser would. Nothing is patched."""

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.support.browser import browser_test, shot, wait_js
from tests.support.direct_upload import call, keys, put_parts, start
from tests.support.media import make_clip
from transcoding.jobs.dispatch import recording
from transcoding.models import PendingUpload, ProcessingJob, Video, VideoStatus

MIB = 1024 * 1024
KEY = re.compile(r"uploads/[0-9a-f]{32}/source")


@pytest.fixture(scope="session")
def big_clip(tmp_path_factory):
    """~12.8 MB, 1080p at a constant 5 Mb/s: three parts of 5 MiB."""
    path = tmp_path_factory.mktemp("big") / "big clip.mp4"
    high_bitrate = ("-b:v", "5M", "-minrate", "5M", "-maxrate", "5M", "-bufsize", "2M")
    codec = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *high_bitrate)
    return make_clip(path, seconds=20, size="1920x1080", codec=codec)


@pytest.fixture
def small_parts(settings):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 5 * MIB  # S3's minimum


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def multipart_uploads(bucket) -> list[str]:
    return [u["Key"] for u in bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])]


# --- the endpoints ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_sign_complete_stores_the_key_as_the_source_and_queues(
    admin_client, s3, clips, django_capture_on_commit_callbacks
):
    clip = clips["720p"]
    data = clip.read_bytes()
    response = call(
        admin_client,
        "create",
        {"filename": "../../etc/My Clip.html", "size": len(data), "content_type": "text/html"},
    )
    assert response.status_code == 201
    upload = response.json()
    assert KEY.fullmatch(upload["key"]), upload["key"]  # chosen by the server, never the client's name
    assert upload["part_size"] == 8 * MIB and upload["parts"] == 1
    parts = put_parts(admin_client, upload, data, [1])

    with django_capture_on_commit_callbacks(execute=True):
        response = call(
            admin_client,
            "complete",
            {**keys(upload), "parts": parts, "sha256": sha256(clip), "title": "Straight to S3",
             "description": "", "preset": "", "poster_time": 2.5, "published": True},
        )  # fmt: skip

    assert response.status_code == 201, response.content
    video = Video.objects.get(pk=response.json()["video_id"])
    assert response.json()["admin_url"] == reverse("admin:transcoding_video_change", args=[video.pk])
    assert video.source.name == upload["key"]
    assert s3.keys() == [upload["key"]]  # the upload itself is the source: no copy
    assert (video.title, video.published, video.poster_time) == ("Straight to S3", True, 2.5)
    assert video.original_filename == "My Clip.html"  # a label only
    # The object is a download, whatever the browser said it was (text/html here).
    head = s3.client.head_object(Bucket=s3.name, Key=upload["key"])
    assert (head["ContentType"], head["ContentDisposition"]) == ("application/octet-stream", "attachment")
    # The browser's SHA-256 is not trusted (it could name another video's content): none is kept.
    assert video.source_size == len(data) and video.source_sha256 == ""
    assert video.status == VideoStatus.QUEUED
    job = ProcessingJob.objects.get(video=video)
    assert recording.outbox == [job.pk]
    assert not PendingUpload.objects.exists() and multipart_uploads(s3) == []
    # A second completion of the same upload is refused: the record is gone.
    again = call(admin_client, "complete", {**keys(upload), "parts": parts, "title": "Twice"})
    assert again.status_code == 403 and Video.objects.count() == 1


@pytest.mark.django_db
def test_resume_lists_the_parts_already_sent(
    admin_client, s3, big_clip, small_parts, django_capture_on_commit_callbacks
):
    data = big_clip.read_bytes()
    upload = start(admin_client, big_clip)
    assert upload["part_size"] == 5 * MIB and upload["parts"] == 3
    first = put_parts(admin_client, upload, data, [1])

    # The page reloads: the browser asks which parts S3 holds (GET or POST).
    listed = call(admin_client, "parts", keys(upload), method="get")
    assert listed.status_code == 200
    assert listed.json()["part_count"] == 3 and listed.json()["part_size"] == 5 * MIB
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.json()["parts"]] == [
        (1, first[0]["ETag"], 5 * MIB)
    ]
    rest = put_parts(admin_client, upload, data, [2, 3])
    listed = call(admin_client, "parts", keys(upload))
    assert [p["PartNumber"] for p in listed.json()["parts"]] == [1, 2, 3]

    with django_capture_on_commit_callbacks(execute=True):
        response = call(
            admin_client, "complete", {**keys(upload), "parts": first + rest, "sha256": sha256(big_clip)}
        )
    assert response.status_code == 201, response.content
    video = Video.objects.get(pk=response.json()["video_id"])
    assert video.title == "big clip"  # no title given: the file name's
    assert video.source_size == len(data) and video.source.name == upload["key"]
    s3_object = s3.client.head_object(Bucket=s3.name, Key=upload["key"])
    assert s3_object["ContentLength"] == len(data)
    assert recording.outbox == [ProcessingJob.objects.get(video=video).pk]


@pytest.mark.django_db
def test_a_non_video_is_rejected_with_the_probe_reason_and_deleted(admin_client, s3, tmp_path):
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"This is not a video, only text pretending. " * 500)
    upload = start(admin_client, junk)
    parts = put_parts(admin_client, upload, junk.read_bytes(), [1])

    response = call(admin_client, "complete", {**keys(upload), "parts": parts, "title": "Junk"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "The file is not a video or is truncated: FFmpeg cannot read its container.",
        "resumable": False,
    }
    assert s3.keys() == [] and multipart_uploads(s3) == []
    assert not Video.objects.exists() and not PendingUpload.objects.exists()


@pytest.mark.django_db
def test_a_smaller_object_than_declared_is_rejected_and_deleted(admin_client, s3, clips):
    data = clips["silent"].read_bytes()
    response = call(admin_client, "create", {"filename": "a.mp4", "size": len(data) + 1000})
    upload = response.json()
    parts = put_parts(admin_client, upload, data, [1])

    response = call(admin_client, "complete", {**keys(upload), "parts": parts})

    assert response.status_code == 400
    assert (
        response.json()["error"]
        == f"The stored file is {len(data)} bytes, not the {len(data) + 1000} bytes declared."
    )
    assert s3.keys() == [] and not Video.objects.exists()


@pytest.mark.django_db
def test_over_the_size_limit_is_refused_at_create(admin_client, s3, settings):
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 10 * MIB

    response = call(admin_client, "create", {"filename": "big.mp4", "size": 10 * MIB + 1})

    assert response.status_code == 400
    assert response.json() == {"error": "The file is larger than the 10.0\xa0MB limit.", "resumable": False}
    for size in (0, -5, "12", None, True):
        assert call(admin_client, "create", {"filename": "x.mp4", "size": size}).status_code == 400
    assert multipart_uploads(s3) == [] and not PendingUpload.objects.exists()


@pytest.mark.django_db
def test_form_errors_keep_the_upload_for_another_try(
    admin_client, s3, clips, django_capture_on_commit_callbacks
):
    data = clips["silent"].read_bytes()
    upload = start(admin_client, clips["silent"])
    parts = put_parts(admin_client, upload, data, [1])

    response = call(admin_client, "complete", {**keys(upload), "parts": parts, "title": "x" * 201})

    assert response.status_code == 400
    assert response.json()["error"].startswith("Title: Ensure this value has at most 200 characters")
    assert response.json()["resumable"] is True and "title" in response.json()["errors"]
    assert PendingUpload.objects.filter(key=upload["key"], completing=False).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = call(admin_client, "complete", {**keys(upload), "parts": parts, "title": "Fixed"})
    assert response.status_code == 201 and Video.objects.get().title == "Fixed"


@pytest.mark.django_db
def test_an_incomplete_part_list_is_refused_and_the_upload_kept(admin_client, s3, big_clip, small_parts):
    upload = start(admin_client, big_clip)
    parts = put_parts(admin_client, upload, big_clip.read_bytes(), [1, 3])

    response = call(admin_client, "complete", {**keys(upload), "parts": parts})

    assert response.status_code == 400
    assert response.json() == {
        "error": "The upload is incomplete: part 2 of 3 is missing.",
        "resumable": True,
    }
    assert multipart_uploads(s3) == [upload["key"]] and PendingUpload.objects.count() == 1


@pytest.mark.django_db
def test_abort_frees_the_parts_and_forgets_the_upload(admin_client, s3, clips):
    upload = start(admin_client, clips["720p"])
    put_parts(admin_client, upload, clips["720p"].read_bytes(), [1])

    assert call(admin_client, "abort", keys(upload)).json() == {"aborted": True}

    assert multipart_uploads(s3) == [] and s3.keys() == [] and not PendingUpload.objects.exists()
    assert call(admin_client, "sign", {**keys(upload), "part_numbers": [1]}).status_code == 403


@pytest.mark.django_db
def test_keys_the_server_did_not_create_for_this_upload_are_refused(
    admin_client, s3, clips, django_user_model
):
    upload = start(admin_client, clips["720p"])
    other = start(admin_client, clips["silent"])
    forged = [
        {"key": "originals/0123/source.mp4", "upload_id": upload["upload_id"]},  # outside uploads/
        {"key": "videos/7/master.m3u8", "upload_id": upload["upload_id"]},
        {"key": f"uploads/{'0' * 32}/source.mp4", "upload_id": upload["upload_id"]},  # never created
        {"key": upload["key"].replace("uploads/", "uploads/../originals/"), "upload_id": upload["upload_id"]},
        {"key": upload["key"], "upload_id": other["upload_id"]},  # another upload's id
        {"key": upload["key"], "upload_id": ""},
        {"key": ["uploads"], "upload_id": upload["upload_id"]},
    ]
    for payload in forged:
        for name, extra in (("sign", {"part_numbers": [1]}), ("parts", {}), ("complete", {}), ("abort", {})):
            response = call(admin_client, name, {**payload, **extra})
            assert response.status_code == 403, (name, payload, response.content)
    # Another staff member cannot sign, list, complete or abort someone else's upload.
    colleague = django_user_model.objects.create_superuser("colleague", "c@example.com", "a-long-password")
    client = Client()
    client.force_login(colleague)
    for name, extra in (("sign", {"part_numbers": [1]}), ("parts", {}), ("complete", {}), ("abort", {})):
        assert call(client, name, {**keys(upload), **extra}).status_code == 403
    # Part numbers outside the upload are refused too.
    for numbers in ([0], [2], [], "1", [True], list(range(1, 102))):
        assert call(admin_client, "sign", {**keys(upload), "part_numbers": numbers}).status_code == 400
    assert sorted(multipart_uploads(s3)) == sorted([upload["key"], other["key"]])


@pytest.mark.django_db
def test_only_staff_who_may_add_videos_can_use_the_endpoints(client, s3, django_user_model):
    payloads = {
        "create": {"filename": "a.mp4", "size": 1000},
        "sign": {"key": f"uploads/{'a' * 32}/source.mp4", "upload_id": "x", "part_numbers": [1]},
        "parts": {"key": f"uploads/{'a' * 32}/source.mp4", "upload_id": "x"},
        "complete": {"key": f"uploads/{'a' * 32}/source.mp4", "upload_id": "x"},
        "abort": {"key": f"uploads/{'a' * 32}/source.mp4", "upload_id": "x"},
    }
    viewer = django_user_model.objects.create_user("viewer", password="a-long-password")
    staff = django_user_model.objects.create_user("staff", password="a-long-password", is_staff=True)
    for user in (None, viewer, staff):  # anonymous, not staff, staff without "add video"
        if user is not None:
            client.force_login(user)
        for name, payload in payloads.items():
            response = call(client, name, payload)
            assert response.status_code == 403, (user, name)
            assert response.json()["error"] == "Only staff who may add videos can upload."
    staff.user_permissions.add(Permission.objects.get(codename="add_video"))
    staff = django_user_model.objects.get(pk=staff.pk)  # permissions are cached on the instance
    client.force_login(staff)
    assert call(client, "create", payloads["create"]).status_code == 201
    assert multipart_uploads(s3) and PendingUpload.objects.get().created_by == staff


@pytest.mark.django_db
def test_posts_need_the_csrf_token(s3, admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    payload = json.dumps({"filename": "a.mp4", "size": 1000})
    url = reverse("transcoding:upload-create")

    assert client.post(url, payload, content_type="application/json").status_code == 403
    assert multipart_uploads(s3) == []

    client.get(reverse("admin:transcoding_video_add"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(url, payload, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 201


@pytest.mark.django_db
def test_endpoints_need_s3_storage(admin_client):
    response = call(admin_client, "create", {"filename": "a.mp4", "size": 1000})
    assert response.status_code == 404
    assert response.json()["error"] == "Direct uploads need S3 storage (STORAGE=s3)."


# --- the admin form -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_add_form_uploads_straight_to_s3_with_s3_storage(admin_client, s3):
    html = admin_client.get(reverse("admin:transcoding_video_add")).content.decode()
    assert "data-tc-s3-upload" in html and 'data-tc-create-url="/api/uploads/create/"' in html
    assert "transcoding/admin-s3-upload.js" in html and "hash-wasm" not in html
    assert "data-tc-upload " not in html  # the local XHR flow stays off
    assert 'id="subtitles-group"' not in html  # subtitles are added once the video exists
    assert "Sent straight to storage in parts" in html


@pytest.mark.django_db
def test_the_add_form_posts_to_django_with_local_storage(admin_client):
    html = admin_client.get(reverse("admin:transcoding_video_add")).content.decode()
    assert "data-tc-upload " in html and "data-tc-s3-upload" not in html
    assert "admin-s3-upload.js" not in html and 'id="subtitles-group"' in html


# --- cleanup ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cleanup_aborts_old_uploads_only(admin_client, s3, clips, capsys):
    old = start(admin_client, clips["720p"])
    put_parts(admin_client, old, clips["720p"].read_bytes(), [1])
    PendingUpload.objects.filter(key=old["key"]).update(created_at=timezone.now() - timedelta(hours=30))
    fresh = start(admin_client, clips["silent"])
    # An upload under uploads/ no record names (its record lost): aged by S3's Initiated time,
    # which moto reports as 2010. And one outside uploads/, never touched.
    orphan = s3.client.create_multipart_upload(Bucket=s3.name, Key=f"uploads/{'b' * 32}/source.mov")
    s3.client.create_multipart_upload(Bucket=s3.name, Key="elsewhere/big.bin")

    call_command("cleanup_uploads", "--older-than", "24", "--dry-run")
    out = capsys.readouterr().out
    assert f"would abort {old['key']} by admin, started" in out
    assert f"would abort uploads/{'b' * 32}/source.mov (no record)" in out
    assert out.splitlines()[-1] == "would abort 2 uploads older than 24 h"
    assert len(multipart_uploads(s3)) == 4 and PendingUpload.objects.count() == 2

    call_command("cleanup_uploads", "--older-than", "24")
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "aborted 2 uploads older than 24 h"
    assert sorted(multipart_uploads(s3)) == sorted([fresh["key"], "elsewhere/big.bin"])
    assert list(PendingUpload.objects.values_list("key", flat=True)) == [fresh["key"]]
    assert orphan["UploadId"] not in json.dumps(s3.client.list_multipart_uploads(Bucket=s3.name), default=str)


@pytest.mark.django_db
def test_cleanup_forgets_records_whose_upload_expired(admin_client, s3, clips, capsys):
    upload = start(admin_client, clips["720p"])
    s3.client.abort_multipart_upload(
        Bucket=s3.name, Key=upload["key"], UploadId=upload["upload_id"]
    )  # lifecycle
    PendingUpload.objects.update(created_at=timezone.now() - timedelta(days=2))

    call_command("cleanup_uploads")

    assert "(parts already gone)" in capsys.readouterr().out
    assert not PendingUpload.objects.exists()


# --- in Chromium --------------------------------------------------------------------------------
def _with_csp(endpoint):
    """The admin add page as it would be served under a strict CSP: scripts from the site only,
    requests to the site and the bucket only."""
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src 'self' {endpoint}"
    )

    def handle(route):
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": policy})

    return handle


@pytest.fixture
def admin_page(chromium_browser, live_server, transactional_db, s3, django_user_model):
    """A logged-in admin on the add form, served under a CSP; `page.problems` collects page
    errors and CSP refusals, `page.puts` the part numbers PUT to S3."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", "a-long-password")
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems, page.puts = [], []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("console", lambda m: page.problems.append(m.text)
            if m.type == "error" and "Security Policy" in m.text else None)  # fmt: skip
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" while uploading
    page.on("request", lambda r: page.puts.append(int(re.search(r"partNumber=(\d+)", r.url)[1]))
            if r.method == "PUT" and "partNumber=" in r.url else None)  # fmt: skip
    page.add_url = f"{live_server.url}/admin/transcoding/video/add/"
    context.route(page.add_url, _with_csp(s3.endpoint))
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")
    page.goto(page.add_url)
    yield page
    context.close()


BOX = "document.querySelector('[data-tc-s3-upload]')"


@browser_test
def test_admin_upload_goes_to_s3_in_parts_and_resumes_after_a_reload(admin_page, s3, big_clip, small_parts):
    page, puts, problems = admin_page, admin_page.puts, admin_page.problems
    inline_ran = page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.tcInline = 1';"
        " document.head.appendChild(s); return window.tcInline === 1; }"
    )
    assert inline_ran is False  # the CSP is in force: the upload works without inline script
    problems.clear()  # that refusal was logged

    # First attempt: part 2 never gets through (the connection drops each time); parts 1 and 3 do.
    failed = []

    def drop_part_2(route):
        if route.request.method == "PUT":
            failed.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()  # the CORS preflight

    page.route(re.compile(r".*[?&]partNumber=2(&.*)?$"), drop_part_2)
    page.fill("#id_title", "Straight to S3 in the browser")
    page.set_input_files("#id_source", str(big_clip))
    page.click("input[name=_save]")
    box = BOX
    wait_js(page, f"{box}.dataset.tcParts === '3'", message="the upload never started")
    upload = PendingUpload.objects.get()
    assert KEY.fullmatch(upload.key)

    def parts_at_s3():
        listed = s3.client.list_parts(Bucket=s3.name, Key=upload.key, UploadId=upload.upload_id)
        return [p["PartNumber"] for p in listed.get("Parts", [])]

    deadline = timezone.now() + timedelta(seconds=30)
    while not (parts_at_s3() == [1, 3] and len(failed) >= 2):  # part 2 was retried after a backoff
        assert timezone.now() < deadline, (parts_at_s3(), failed, page.inner_text("[data-tc-s3-upload]"))
        page.wait_for_timeout(100)  # lets Playwright run the route handler meanwhile
    wait_js(page, f"{box}.innerText.includes('retrying')", message="no retry shown")
    assert page.evaluate(f"{box}.querySelector('progress').value") >= 50  # parts 1 and 3 of 3
    shot(page, "admin-s3-upload-progress.png")
    assert sorted(set(puts)) == [1, 2, 3]
    stored = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tc-s3-upload:'))")
    assert len(stored) == 1 and upload.key in page.evaluate(f"localStorage.getItem({json.dumps(stored[0])})")

    # The page is reloaded mid-upload; the connection is back. Choosing the same file resumes.
    page.reload()
    page.unroute(re.compile(r".*[?&]partNumber=2(&.*)?$"))
    puts.clear()
    page.fill("#id_title", "Straight to S3 in the browser")
    page.set_input_files("#id_source", str(big_clip))
    wait_js(
        page, f"{box}.innerText.includes('resumes when you save')", message="the earlier upload not found"
    )
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/transcoding/video/", timeout=60_000)

    assert puts == [2]  # only the part S3 did not have
    video = Video.objects.get(title="Straight to S3 in the browser")
    assert video.source.name == upload.key and s3.keys() == [upload.key]
    assert video.source_size == big_clip.stat().st_size
    assert video.source_sha256 == ""  # no hash: the bytes never passed through the server
    assert video.original_filename == "big clip.mp4"
    assert recording.outbox == [ProcessingJob.objects.get(video=video).pk]
    assert not PendingUpload.objects.exists() and multipart_uploads(s3) == []
    assert "was added successfully; processing is queued" in page.inner_text(".messagelist")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tc-s3-upload:'))") == []
    shot(page, "admin-s3-upload-done.png")
    assert problems == []


@browser_test
def test_admin_upload_over_the_limit_is_refused_in_the_form(admin_page, s3, big_clip, settings):
    # The page was rendered under the old limit; the server refuses at create all the same.
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 10 * MIB
    admin_page.set_input_files("#id_source", str(big_clip))
    admin_page.click("input[name=_save]")
    wait_js(admin_page, f"{BOX}.dataset.tcState === 'error'", message="no error shown")
    assert admin_page.inner_text("[data-tc-upload-text]") == "The file is larger than the 10.0\xa0MB limit."
    assert admin_page.evaluate(f"{BOX}.classList.contains('tc-upload--error')")
    shot(admin_page, "admin-s3-upload-refused.png")
    assert multipart_uploads(s3) == [] and not PendingUpload.objects.exists()
    assert admin_page.puts == [] and admin_page.problems == []
