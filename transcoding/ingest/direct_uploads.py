"""Direct uploads: with S3 storage the browser sends an original straight to the bucket by
multipart upload, with part URLs presigned here, so no request to Django carries the video
(on Lambda a request body is capped at 6 MB).

The server chooses the key, `uploads/<uuid>/source` (no extension: nothing of the client's file
name becomes a path), and the object's content type and disposition (`content_types`: a
download, whatever the browser says the file is), and records every upload it starts in a `PendingUpload` row:
signing part URLs, listing parts, completing and aborting accept only a key and upload id
recorded there, for the user who started it. A presigned part URL is signed for one bucket,
key, upload id and part number and can write nothing else. Completing assembles the parts,
then checks the object before any video exists: its size must equal the declared size, and
`probe.probe_source` must accept it, read through a presigned GET URL by FFmpeg with range
requests (never downloaded). A rejected object is deleted. The video's source is the uploaded
key itself: no copy.

The client and bucket are django-storages' own (`default_storage.connection`), so the
storage's endpoint, region, addressing style and key prefix (`location`) apply.
"""

import math
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from transcoding.conf import settings
from transcoding.errors import SourceRejected
from transcoding.ingest.create import video_from_upload
from transcoding.media.containers import source_input
from transcoding.media.probe import probe_source
from transcoding.models import PendingUpload, Video
from transcoding.storage.backends import media_store
from transcoding.storage.content_types import object_headers

UPLOAD_PREFIX = "uploads"
MIB = 1024**2
MIN_PART_BYTES = 5 * MIB  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum number of parts
MAX_SIGN_BATCH = 100  # part URLs signed per request
PROBE_URL_SECONDS = 600
KEY_PATTERN = re.compile(rf"{UPLOAD_PREFIX}/[0-9a-f]{{32}}/source")


class UploadError(Exception):
    """A request the upload service refuses, with one sentence for the user, the HTTP status
    that says why, and whether the upload is still there to resume (send the parts again)."""

    def __init__(self, message: str, status: int = 400, *, resumable: bool = False):
        super().__init__(message)
        self.status = status
        self.resumable = resumable


def enabled() -> bool:
    """Direct uploads need a media store that takes them (S3)."""
    return media_store().direct_uploads


def _client():
    return media_store().client


def _bucket() -> str:
    return media_store().bucket_name


def s3_key(name: str) -> str:
    """The bucket key of a storage name (the storage's `location` prefix applied)."""
    return media_store().key(name)


def storage_name(key: str) -> str | None:
    return media_store().name(key)


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


# --- what the client sends, made safe ---------------------------------------------------------
def safe_label(filename: str) -> str:
    """The client's file name as a label: the last path component, no control characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255]


def part_plan(size: int) -> tuple[int, int]:
    """(part size, number of parts): the configured part size, at least S3's 5 MiB, raised in
    whole MiB for files that would need more than 10,000 parts."""
    part = max(int(settings.UPLOAD_PART_BYTES), MIN_PART_BYTES, math.ceil(size / MAX_PARTS))
    part = math.ceil(part / MIB) * MIB
    return part, max(1, math.ceil(size / part))


def part_count(upload: PendingUpload) -> int:
    return max(1, math.ceil(upload.size / upload.part_size))


# --- the service ------------------------------------------------------------------------------
def upload_create(*, user, filename: str, size, details: dict | None = None) -> PendingUpload:
    """Start a multipart upload under a key chosen here, refusing what is over the limit. The
    object is written as a download (`content_types.object_headers`): what the browser says
    the file is plays no part. `details`: the video's fields, kept for `complete` (the API's)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise UploadError("The file size is missing.")
    if size <= 0:
        raise UploadError("The file is empty (0 bytes).")
    if size > settings.MAX_UPLOAD_BYTES:
        raise UploadError(f"The file is larger than the {filesizeformat(settings.MAX_UPLOAD_BYTES)} limit.")
    part_size, _ = part_plan(size)
    key = f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}/source"
    headers = object_headers(key, output=False)
    started = _client().create_multipart_upload(Bucket=_bucket(), Key=s3_key(key), **headers)
    return PendingUpload.objects.create(
        key=key,
        upload_id=started["UploadId"],
        size=size,
        part_size=part_size,
        filename=safe_label(filename),
        content_type=headers["ContentType"],
        created_by=user,
        mode=PendingUpload.Mode.S3,
        details=details or {},
    )


def pending_upload(user, key, upload_id) -> PendingUpload:
    """The server's record of this upload, for this user; anything else is refused (403)."""
    refused = UploadError("This upload was not started here, or it is finished.", 403)
    if not isinstance(key, str) or not isinstance(upload_id, str) or not KEY_PATTERN.fullmatch(key):
        raise refused
    upload = PendingUpload.objects.filter(
        key=key, upload_id=upload_id, mode=PendingUpload.Mode.S3, completed_at__isnull=True
    ).first()
    if upload is None or upload.created_by_id is None or upload.created_by_id != user.pk:
        raise refused
    return upload


def upload_sign(upload: PendingUpload, part_numbers) -> dict[int, str]:
    """Presigned UploadPart URLs: each writes one part of this upload's key, nothing else."""
    if upload.completing:
        raise UploadError("This upload is being completed.", 409)
    count = part_count(upload)
    if (
        not isinstance(part_numbers, list)
        or not part_numbers
        or len(part_numbers) > MAX_SIGN_BATCH
        or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= count for n in part_numbers)
    ):
        raise UploadError(f"Ask for 1 to {MAX_SIGN_BATCH} part numbers between 1 and {count}.")
    client, bucket, key = _client(), _bucket(), s3_key(upload.key)
    return {
        n: client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": bucket, "Key": key, "UploadId": upload.upload_id, "PartNumber": n},
            ExpiresIn=int(settings.UPLOAD_URL_SECONDS),
        )
        for n in sorted(set(part_numbers))
    }


def upload_parts(upload: PendingUpload) -> list[dict]:
    """The parts S3 holds for this upload, to resume it: [{PartNumber, ETag, Size}]."""
    parts = []
    try:
        pages = (
            _client()
            .get_paginator("list_parts")
            .paginate(Bucket=_bucket(), Key=s3_key(upload.key), UploadId=upload.upload_id)
        )
        for page in pages:
            parts += [
                {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]}
                for p in page.get("Parts", [])
            ]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchUpload":
            raise
        upload.delete()
        raise UploadError("This upload no longer exists (it was aborted or expired).", 404)
    return sorted(parts, key=lambda p: p["PartNumber"])


def upload_abort(upload: PendingUpload) -> None:
    """Abort the multipart upload (S3 frees its parts) and forget it."""
    _abort(upload.key, upload.upload_id)
    upload.delete()


def _abort(key: str, upload_id: str) -> None:
    try:
        _client().abort_multipart_upload(Bucket=_bucket(), Key=s3_key(key), UploadId=upload_id)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchUpload":
            raise


def _delete_object(key: str) -> None:
    _client().delete_object(Bucket=_bucket(), Key=s3_key(key))


def _completed_parts(upload: PendingUpload, parts) -> list[dict]:
    """Parts 1..n exactly, each with its ETag: the client's list, or S3's when the client could
    not read ETags (a bucket whose CORS rule does not expose them)."""
    count = part_count(upload)
    if parts is None or any(not isinstance(p, dict) or not p.get("ETag") for p in parts or []):
        parts = upload_parts(upload)
    try:
        cleaned = sorted(({"PartNumber": int(p["PartNumber"]), "ETag": str(p["ETag"])} for p in parts),
                         key=lambda p: p["PartNumber"])  # fmt: skip
    except (KeyError, TypeError, ValueError):
        raise UploadError("The list of parts is malformed.", resumable=True)
    numbers = [p["PartNumber"] for p in cleaned]
    if numbers != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(numbers))
        detail = f"part {missing[0]} of {count} is missing" if missing else "the part numbers are wrong"
        raise UploadError(f"The upload is incomplete: {detail}.", resumable=True)
    return cleaned


def upload_complete(upload: PendingUpload, *, video: Video, parts=None, then=None, keep=False) -> Video:
    """Assemble the parts, check the object, then create `video` (unsaved, its details filled
    by the caller) with the uploaded key as its source, and call `then(video)` in the same
    transaction (the caller queues its processing there: a video is never left unqueued).
    The record is deleted then, or with `keep` marked completed with its video (the API
    answers a second completion with it).

    The video gets no SHA-256: the bytes went to S3, not through the server, and a hash the
    browser claims could name another video's content (content dedupe would then hand this
    video that one's outputs). Dedupe uses only hashes the server computed over bytes it
    stored (`dedupe`).

    Claimed once (a concurrent second request gets 409). When S3 refuses to assemble the parts
    the upload stays and can be resumed; when the object is refused (size, probe) it is deleted
    and so is the record, and the probe's sentence is the error."""
    if upload.completing or upload.completed_at:
        raise UploadError("This upload is being completed already.", 409)
    parts = _completed_parts(upload, parts)
    if not PendingUpload.objects.filter(pk=upload.pk, completing=False).update(completing=True):
        raise UploadError("This upload is being completed already.", 409)
    client, bucket, key = _client(), _bucket(), s3_key(upload.key)
    try:
        try:
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload.upload_id, MultipartUpload={"Parts": parts}
            )
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload" or not _exists(key):
                raise
            # Completed by an earlier request that stopped before it created the video.
        stored = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if stored != upload.size:
            raise SourceRejected(f"The stored file is {stored} bytes, not the {upload.size} bytes declared.")
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PROBE_URL_SECONDS
        )
        probe_source(source_input(url), size=stored)
    except SourceRejected as exc:
        _delete_object(upload.key)
        upload.delete()
        raise UploadError(str(exc))
    except ClientError as exc:
        PendingUpload.objects.filter(pk=upload.pk).update(completing=False)
        if _error_code(exc) == "NoSuchUpload":
            upload.delete()
            raise UploadError("This upload no longer exists (it was aborted or expired).", 404)
        message = exc.response.get("Error", {}).get("Message") or _error_code(exc)
        raise UploadError(f"Storage refused the parts: {message}", resumable=True)
    except BaseException:
        PendingUpload.objects.filter(pk=upload.pk).update(completing=False)
        raise
    with transaction.atomic():
        video_from_upload(video, name=upload.key, size=stored, filename=upload.filename)
        if keep:
            upload_mark_completed(upload, video)
        else:
            upload.delete()
        if then is not None:
            then(video)
    return Video.objects.get(pk=video.pk)


def upload_mark_completed(upload: PendingUpload, video: Video) -> None:
    """The upload became `video`: kept as a record of that, its parts gone."""
    upload.completing, upload.completed_at, upload.video = False, timezone.now(), video
    upload.save(update_fields=["completing", "completed_at", "video"])


def _exists(key: str) -> bool:
    try:
        _client().head_object(Bucket=_bucket(), Key=key)
    except ClientError:
        return False
    return True


# --- abandoned uploads ------------------------------------------------------------------------
@dataclass(frozen=True)
class Abandoned:
    """A direct upload never completed. `record` is the server's row (None for an upload S3
    holds that no row names); `in_storage` says whether S3 still holds its parts."""

    key: str
    upload_id: str
    started: datetime
    record: PendingUpload | None
    in_storage: bool


def uploads_abandoned(older_than: timedelta) -> list[Abandoned]:
    """Multipart uploads under uploads/ started before now - `older_than`, and records whose
    upload S3 no longer holds. The age is the record's (when the server started it), else
    the upload's `Initiated` time as S3 reports it."""
    cutoff = timezone.now() - older_than
    records = {
        (r.key, r.upload_id): r
        for r in PendingUpload.objects.filter(
            mode=PendingUpload.Mode.S3, completed_at__isnull=True
        ).select_related("created_by")
    }
    found, listed = [], set()
    pages = (
        _client()
        .get_paginator("list_multipart_uploads")
        .paginate(Bucket=_bucket(), Prefix=s3_key(f"{UPLOAD_PREFIX}/"))
    )
    for page in pages:
        for item in page.get("Uploads", []):
            name = storage_name(item["Key"])
            listed.add((name, item["UploadId"]))
            record = records.get((name, item["UploadId"]))
            started = record.created_at if record else item["Initiated"]
            if started < cutoff:
                found.append(Abandoned(name, item["UploadId"], started, record, True))
    for (name, upload_id), record in records.items():
        if (name, upload_id) not in listed and record.created_at < cutoff:
            found.append(Abandoned(name, upload_id, record.created_at, record, False))
    return sorted(found, key=lambda a: a.started)


def upload_discard(item: Abandoned) -> None:
    """Abort an abandoned upload and forget it. A recorded upload S3 no longer lists was
    aborted by a lifecycle rule, or completed by a request that stopped before creating its
    video: its object, if any, goes too unless a video uses it."""
    if item.in_storage:
        _abort(item.key, item.upload_id)
    if item.record is not None:
        if not item.in_storage and not Video.objects.filter(source=item.key).exists():
            _delete_object(item.key)
        item.record.delete()
