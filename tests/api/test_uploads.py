"""Uploads through API v1 with only an API key (docs/uploads-api.md): in parts to the site on
local storage, straight to moto's S3 server over HTTP with S3 storage; resumed, refused,
aborted, completed twice; hostile numbers and names. One test drives the documented curl
commands against a live server."""

import base64
import hashlib
import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import Permission
from django.test import Client

from tests.support.media import make_clip
from transcoding.api.keys import api_key_create
from transcoding.jobs.dispatch import recording
from transcoding.models import PendingUpload, ProcessingJob, UploadPart, Video, VideoStatus

API = "/api/v1/uploads/"
HEX = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def uploader(django_user_model):
    user = django_user_model.objects.create_user("uploader", password="a-long-password")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_video", "view_video"]))
    return user


def key_client(user, scope="write") -> Client:
    _, raw = api_key_create(user=user, name="script", scope=scope)
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def api(uploader) -> Client:
    return key_client(uploader)


@pytest.fixture
def parts_of(settings):
    """Sets the part size so that `path` is sent in `count` parts."""

    def set_size(path: Path, count: int) -> int:
        size = math.ceil(path.stat().st_size / count)
        settings.TRANSCODING_UPLOAD_PART_BYTES = size
        return size

    return set_size


def start(client, path: Path | None = None, **body):
    if path is not None:
        body = {"filename": path.name, "size": path.stat().st_size, **body}
    return client.post(API, json.dumps(body), content_type="application/json")


def put(client, upload: dict, number, data: bytes, **headers):
    return client.put(
        f"{API}{upload['id']}/parts/{number}/", data, content_type="application/octet-stream", headers=headers
    )


def chunk(data: bytes, upload: dict, number: int) -> bytes:
    size = upload["part_size"]
    return data[(number - 1) * size : number * size]


def complete(client, upload: dict, body=None):
    return client.post(
        f"{API}{upload['id']}/complete/", json.dumps(body or {}), content_type="application/json"
    )


def upload_dir(settings, upload: dict) -> Path:
    return Path(settings.MEDIA_ROOT, "uploads", upload["id"])


def one_line_problem(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "\n" not in detail and detail
    return detail


# --- local storage --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
def test_a_clip_sent_in_three_parts_becomes_a_video_that_gets_ready(
    api, uploader, tiny, parts_of, small_preset, settings, django_capture_on_commit_callbacks
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024  # parts are far larger: streamed, never read whole
    part_size = parts_of(tiny, 3)
    data = tiny.read_bytes()
    response = start(api, tiny, title="By the API", description="Three parts", published=True)
    assert response.status_code == 201, response.content
    upload = response.json()
    assert HEX.fullmatch(upload["id"]) and response["Location"] == f"{API}{upload['id']}/"
    assert (upload["mode"], upload["status"], upload["size"]) == ("local", "receiving", len(data))
    assert (upload["part_size"], upload["part_count"], upload["missing"]) == (part_size, 3, [1, 2, 3])
    assert upload["transfer"]["part_url"] == f"http://testserver{API}{upload['id']}/parts/{{number}}/"
    assert upload["transfer"]["method"] == "PUT" and upload["parts"] == []

    for number in (1, 2, 3):
        sent = put(api, upload, number, chunk(data, upload, number))
        assert sent.status_code == 200, sent.content
        assert sent.json()["sha256"] == hashlib.sha256(chunk(data, upload, number)).hexdigest()
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(api, upload)

    assert response.status_code == 201, response.content
    document = response.json()
    video = Video.objects.get()
    assert response["Location"] == f"/api/v1/videos/{video.pk}/" and document["id"] == video.pk
    assert (document["title"], document["status"], document["description"]) == (
        "By the API", VideoStatus.QUEUED, "Three parts"
    )  # fmt: skip
    assert (video.created_by, video.published, video.preset) == (uploader, True, small_preset)
    assert video.source.name == f"uploads/{upload['id']}/source"
    assert Path(settings.MEDIA_ROOT, video.source.name).read_bytes() == data
    # The server hashed the bytes it stored: the content address dedupe trusts.
    assert video.source_sha256 == hashlib.sha256(data).hexdigest() and video.source_size == len(data)
    assert not (upload_dir(settings, upload) / "parts").exists() and not UploadPart.objects.exists()
    assert recording.outbox == [ProcessingJob.objects.get(video=video).pk]
    listed = api.get(f"{API}{upload['id']}/").json()
    assert (listed["status"], listed["video"], listed["video_url"]) == (
        "completed", video.pk, f"/api/v1/videos/{video.pk}/"
    )  # fmt: skip

    assert recording.run_recorded() == ["done"]

    document = api.get(f"/api/v1/videos/{video.pk}/").json()
    assert document["status"] == VideoStatus.READY and document["playable"]
    assert document["renditions"] and all(r["status"] == "ready" for r in document["renditions"])


@pytest.mark.django_db
def test_resume_sends_only_the_missing_part(
    api, clips, parts_of, settings, django_capture_on_commit_callbacks
):
    clip = clips["silent"]
    parts_of(clip, 3)
    data = clip.read_bytes()
    upload = start(api, clip).json()
    for number in (1, 3):
        assert put(api, upload, number, chunk(data, upload, number)).status_code == 200

    # The connection was lost; the client asks what the site holds.
    listed = api.get(f"{API}{upload['id']}/").json()
    assert [(p["number"], p["size"]) for p in listed["parts"]] == [
        (1, upload["part_size"]), (3, len(data) - 2 * upload["part_size"])
    ]  # fmt: skip
    assert listed["parts"][0]["sha256"] == hashlib.sha256(chunk(data, upload, 1)).hexdigest()
    assert listed["missing"] == [2]
    early = complete(api, upload)
    assert one_line_problem(early, 400) == "The upload is incomplete: part 2 of 3 is missing."
    assert early.json()["resumable"] is True

    assert put(api, upload, 2, chunk(data, upload, 2)).status_code == 200
    # Sending a part again replaces it (idempotent).
    assert put(api, upload, 3, chunk(data, upload, 3)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(api, upload)
    assert response.status_code == 201, response.content
    assert Path(settings.MEDIA_ROOT, Video.objects.get().source.name).read_bytes() == data


@pytest.mark.django_db
def test_completing_twice_makes_one_video(api, clips, django_capture_on_commit_callbacks):
    clip = clips["silent"]
    upload = start(api, clip).json()
    assert put(api, upload, 1, clip.read_bytes()).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        first = complete(api, upload)
    again = complete(api, upload)  # the client lost the first answer

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] == Video.objects.get().pk
    assert again["Location"] == first["Location"]
    assert ProcessingJob.objects.count() == 1
    assert (
        one_line_problem(put(api, upload, 1, clip.read_bytes()), 409) == "This upload is completed already."
    )
    assert one_line_problem(api.delete(f"{API}{upload['id']}/"), 409).startswith("This upload is completed")


@pytest.mark.django_db
def test_a_part_larger_than_its_size_is_refused_and_nothing_is_kept(api, clips, parts_of, settings):
    clip = clips["silent"]
    parts_of(clip, 2)
    data = clip.read_bytes()
    upload = start(api, clip).json()

    too_big = put(api, upload, 1, chunk(data, upload, 1) + b"x")
    short = put(api, upload, 2, chunk(data, upload, 2)[:-1])

    assert one_line_problem(too_big, 413) == (
        f"Part 1 must be {upload['part_size']} bytes; this one is {upload['part_size'] + 1}."
    )
    assert one_line_problem(short, 400).startswith("Part 2 must be ")
    parts = upload_dir(settings, upload) / "parts"
    assert not parts.exists() or list(parts.iterdir()) == []
    assert not UploadPart.objects.exists()


@pytest.mark.django_db
def test_content_digest_is_checked(api, clips):
    data = clips["silent"].read_bytes()
    upload = start(api, clips["silent"]).json()
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    right = base64.b64encode(hashlib.sha256(data).digest()).decode()

    refused = put(api, upload, 1, data, **{"Content-Digest": f"sha-256=:{wrong}:"})
    malformed = put(api, upload, 1, data, **{"Content-Digest": "sha-256=:bm90:"})
    accepted = put(api, upload, 1, data, **{"Content-Digest": f"sha-512=:AAAA:, sha-256=:{right}:"})

    assert one_line_problem(refused, 400) == "Part 1 does not match its Content-Digest; send it again."
    assert one_line_problem(malformed, 400).startswith("Content-Digest:")
    assert accepted.status_code == 200 and UploadPart.objects.get().sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.django_db
def test_over_the_limit_is_refused_before_anything_is_stored(api, settings):
    settings.TRANSCODING_MAX_UPLOAD_BYTES = 10 * 1024 * 1024

    response = start(api, filename="big.mp4", size=10 * 1024 * 1024 + 1)
    huge = start(api, filename="big.mp4", size=10**30, title="x" * 500)  # the size is said first

    assert one_line_problem(response, 413) == "The file is larger than the 10.0 MB limit."
    assert one_line_problem(huge, 413) == "The file is larger than the 10.0 MB limit."
    assert not PendingUpload.objects.exists() and not Path(settings.MEDIA_ROOT, "uploads").exists()


@pytest.mark.django_db
def test_a_non_video_is_refused_at_completion_and_nothing_is_left(api, settings, tmp_path):
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(bytes(range(256)) * 400)
    settings.TRANSCODING_UPLOAD_PART_BYTES = 40_000
    upload = start(api, junk).json()
    data = junk.read_bytes()
    for number in range(1, upload["part_count"] + 1):
        assert put(api, upload, number, chunk(data, upload, number)).status_code == 200

    response = complete(api, upload)

    detail = one_line_problem(response, 400)
    assert detail == "The file is not a video or is truncated: FFmpeg cannot read its container."
    assert response.json()["resumable"] is False
    assert (
        not Video.objects.exists() and not PendingUpload.objects.exists() and not UploadPart.objects.exists()
    )
    assert not upload_dir(settings, upload).exists()
    assert api.get(f"{API}{upload['id']}/").status_code == 404


@pytest.mark.django_db
def test_abort_removes_every_part(api, clips, parts_of, settings):
    clip = clips["silent"]
    parts_of(clip, 2)
    upload = start(api, clip).json()
    assert put(api, upload, 1, chunk(clip.read_bytes(), upload, 1)).status_code == 200
    assert (upload_dir(settings, upload) / "parts" / "1").is_file()

    response = api.delete(f"{API}{upload['id']}/")

    assert response.status_code == 204
    assert not upload_dir(settings, upload).exists() and not PendingUpload.objects.exists()
    assert one_line_problem(api.get(f"{API}{upload['id']}/"), 404) == f"No upload {upload['id']}."


@pytest.mark.django_db
def test_uploads_belong_to_their_user_and_need_a_write_key_and_the_permission(
    api, uploader, clips, django_user_model
):
    clip = clips["silent"]
    upload = start(api, clip).json()
    other = django_user_model.objects.create_superuser("other", "o@example.com", "a-long-password")
    stranger = key_client(other)
    for method, path, body in (
        ("get", "", None), ("delete", "", None), ("post", "complete/", "{}"),
        ("post", "parts/sign/", '{"part_numbers": [1]}'), ("put", "parts/1/", clip.read_bytes()),
    ):  # fmt: skip
        response = getattr(stranger, method)(
            f"{API}{upload['id']}/{path}", body, content_type="application/json"
        )
        assert one_line_problem(response, 404) == f"No upload {upload['id']}.", (method, path)

    reader = key_client(uploader, scope="read")
    assert one_line_problem(start(reader, clip), 403) == f"API key {reader_prefix(uploader)} is read-only."
    assert one_line_problem(put(reader, upload, 1, clip.read_bytes()), 403).endswith("is read-only.")
    assert reader.get(f"{API}{upload['id']}/").status_code == 200  # reading is fine

    viewer = django_user_model.objects.create_user("viewer", password="a-long-password")
    refused = start(key_client(viewer), clip)
    assert one_line_problem(refused, 403) == "User viewer lacks the permission transcoding.add_video."
    assert Client().post(API, "{}", content_type="application/json").status_code == 401
    assert PendingUpload.objects.count() == 1


def reader_prefix(user) -> str:
    return user.api_keys.get(scope="read").prefix


@pytest.mark.django_db
def test_hostile_numbers_and_names(api, clips, parts_of, settings):
    clip = clips["silent"]
    parts_of(clip, 3)
    data = clip.read_bytes()
    for size in (-5, 0, "abc", 1.5, True, None, [1], {"a": 1}, "9" * 2000):
        response = start(api, filename="x.mp4", size=size)
        assert response.status_code == 400, (size, response.content)
        one_line_problem(response, 400)
    for body in ("[]", '"text"', "{", "null"):
        assert api.post(API, body, content_type="application/json").status_code == 400

    nul = start(api, filename="a\x00.mp4", size=len(data))
    assert one_line_problem(nul, 400) == "filename: Null characters are not allowed."
    response = start(api, filename="..\\../etc/pass\x7fwd\x1b[31m\n.mp4", size=len(data), title="Hostile")
    assert response.status_code == 201, response.content
    upload = response.json()
    assert upload["filename"] == "passwd[31m.mp4"
    for number in ("0", "-1", "4", "abc", "1e2", "99999999999", "%2e%2e", " 1"):
        response = put(api, upload, number, chunk(data, upload, 1))
        assert 400 <= response.status_code < 500, (number, response.status_code)
        assert response["Content-Type"] == "application/problem+json"
    assert one_line_problem(put(api, upload, "4", b"x"), 400) == "Part numbers are whole numbers from 1 to 3."
    assert one_line_problem(put(api, upload, "1.5", b"x"), 404)
    assert not any(p.is_file() for p in Path(settings.MEDIA_ROOT).rglob("*"))  # nothing kept
    for number in (1, 2, 3):
        assert put(api, upload, number, chunk(data, upload, number)).status_code == 200
    assert complete(api, upload).status_code == 201
    video = Video.objects.get()
    assert video.original_filename == "passwd[31m.mp4"  # a label, never a path
    assert video.source.name == f"uploads/{upload['id']}/source"
    assert one_line_problem(
        api.post(
            f"{API}{upload['id']}/parts/sign/", '{"part_numbers": [1]}', content_type="application/json"
        ),
        400,
    ).startswith("This upload's parts are sent to the site")


@pytest.mark.django_db
def test_complete_checks_every_part_on_disk(
    api, clips, parts_of, settings, django_capture_on_commit_callbacks
):
    clip = clips["silent"]
    parts_of(clip, 2)
    data = clip.read_bytes()
    upload = start(api, clip).json()
    for number in (1, 2):
        assert put(api, upload, number, chunk(data, upload, number)).status_code == 200
    stored = upload_dir(settings, upload) / "parts" / "2"
    stored.write_bytes(stored.read_bytes()[:-10])  # the disk lost bytes: the total no longer adds up

    response = complete(api, upload)

    expected = len(data) - upload["part_size"]
    assert (
        one_line_problem(response, 400) == f"Part 2 is {expected - 10} bytes, not {expected}; send it again."
    )
    assert response.json()["resumable"] is True and not Video.objects.exists()
    assert put(api, upload, 2, chunk(data, upload, 2)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert complete(api, upload).status_code == 201


# --- S3 (moto's server over HTTP) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def six_megabytes(tmp_path_factory):
    """~6.3 MB at a constant 5 Mb/s: two parts of S3's minimum 5 MiB."""
    path = tmp_path_factory.mktemp("s3clip") / "six.mp4"
    rate = ("-b:v", "5M", "-minrate", "5M", "-maxrate", "5M", "-bufsize", "2M")
    codec = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *rate)
    return make_clip(path, seconds=10, size="1280x720", codec=codec, audio=False)


def multipart_uploads(bucket) -> list[str]:
    return [u["Key"] for u in bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])]


@pytest.mark.slow  # makes a 6 MB clip
@pytest.mark.django_db
def test_the_same_protocol_straight_to_s3(
    api, uploader, s3, six_megabytes, settings, django_capture_on_commit_callbacks
):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 5 * 1024 * 1024
    data = six_megabytes.read_bytes()
    response = start(api, six_megabytes, title="Via S3")
    assert response.status_code == 201, response.content
    upload = response.json()
    assert (upload["mode"], upload["part_count"], upload["transfer"]["part_url"]) == ("s3", 2, None)
    sign_url = upload["transfer"]["sign_url"]
    assert sign_url == f"http://testserver{API}{upload['id']}/parts/sign/"

    signed = api.post(sign_url, json.dumps({"part_numbers": [2, 1]}), content_type="application/json")
    assert signed.status_code == 200, signed.content
    etags = {}
    for number in (2, 1):  # any order, as a client sending in parallel
        sent = requests.put(signed.json()["urls"][str(number)], data=chunk(data, upload, number), timeout=30)
        assert sent.status_code == 200, sent.text
        etags[number] = sent.headers["ETag"]
    listed = api.get(f"{API}{upload['id']}/").json()
    assert [(p["number"], p["etag"]) for p in listed["parts"]] == sorted(etags.items())
    assert listed["missing"] == []
    assert one_line_problem(put(api, upload, 1, b"x"), 400).startswith(
        "This upload's parts go straight to S3"
    )

    body = {"parts": [{"number": n, "etag": e} for n, e in sorted(etags.items())]}
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(api, upload, body)
    assert response.status_code == 201, response.content
    video = Video.objects.get()
    assert (response.json()["title"], video.created_by, video.source.name) == (
        "Via S3", uploader, f"uploads/{upload['id']}/source"
    )  # fmt: skip
    assert s3.keys() == [video.source.name] and multipart_uploads(s3) == []
    assert recording.outbox == [ProcessingJob.objects.get(video=video).pk]
    again = complete(api, upload, body)
    assert again.status_code == 200 and again.json()["id"] == video.pk and Video.objects.count() == 1


@pytest.mark.django_db
def test_s3_refusals_and_abort(api, s3, clips):
    data = clips["silent"].read_bytes()
    upload = start(api, filename="a.mp4", size=len(data) + 1000).json()
    signed = api.post(
        f"{API}{upload['id']}/parts/sign/", '{"part_numbers": [1]}', content_type="application/json"
    )
    assert requests.put(signed.json()["urls"]["1"], data=data, timeout=30).status_code == 200

    response = complete(api, upload)  # no ETags: S3's own list is used

    assert one_line_problem(response, 400) == (
        f"The stored file is {len(data)} bytes, not the {len(data) + 1000} bytes declared."
    )
    assert s3.keys() == [] and not Video.objects.exists() and not PendingUpload.objects.exists()

    other = start(api, clips["silent"]).json()
    for numbers in ([0], [2], [], ["a"], [True], list(range(1, 102)), "1"):
        response = api.post(
            f"{API}{other['id']}/parts/sign/",
            json.dumps({"part_numbers": numbers}),
            content_type="application/json",
        )
        assert response.status_code == 400, (numbers, response.content)
    assert api.delete(f"{API}{other['id']}/").status_code == 204
    assert multipart_uploads(s3) == [] and not PendingUpload.objects.exists()


# --- curl against a live server, as docs/uploads-api.md says ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_documented_curl_commands_upload_a_clip(live_server, uploader, clips, settings, tmp_path):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 100_000
    _, key = api_key_create(user=uploader, name="curl", scope="write")
    clip = clips["720p"]
    auth = ["-H", f"Authorization: Bearer {key}"]

    def curl(*args: str) -> dict:
        done = subprocess.run(
            ["curl", "-sS", "--fail-with-body", *auth, *args], capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    body = json.dumps({"filename": clip.name, "size": clip.stat().st_size, "title": "By curl"})
    upload = curl("-H", "Content-Type: application/json", "-d", body, f"{live_server.url}{API}")
    subprocess.run(
        ["split", "-b", str(upload["part_size"]), "-d", "-a", "4", str(clip), "part."],
        cwd=tmp_path,
        check=True,
    )
    parts = sorted(tmp_path.glob("part.*"))
    assert len(parts) == upload["part_count"] > 1
    for number, part in enumerate(parts, start=1):
        url = upload["transfer"]["part_url"].replace("{number}", str(number))
        sent = curl(
            "-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{part}", url
        )
        assert sent["number"] == number
    video = curl("-X", "POST", upload["complete_url"])

    assert video["title"] == "By curl" and video["status"] == VideoStatus.QUEUED
    stored = Video.objects.get(pk=video["id"])
    assert Path(settings.MEDIA_ROOT, stored.source.name).read_bytes() == clip.read_bytes()
