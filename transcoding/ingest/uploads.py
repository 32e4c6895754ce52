"""One resumable upload protocol, two storages: what the API's upload endpoints call.

    start     a record under a key the server chooses; the size checked against the limit
              before anything is stored
    parts     S3: presigned PUT URLs, the client sends each part to the bucket
              (`direct_uploads`); local storage: each part PUT to the site (`chunked_uploads`)
    received  the parts stored so far: how a client resumes after a lost connection
    finish    the parts assembled, the original checked and probed, the video created
    abort     every stored part removed

Which storage is chosen once per upload, from the media store (`mode`), and kept on the
record. An upload belongs to the user who started it: anyone else is told it does not exist.
An upload completed through here keeps its record, marked with its video, so completing it
again (a client that lost the first answer) gives the same video instead of a second one.
"""

from datetime import timedelta

from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from transcoding.conf import settings
from transcoding.ingest import chunked_uploads, direct_uploads
from transcoding.ingest.direct_uploads import UPLOAD_PREFIX, UploadError
from transcoding.models import PendingUpload, Video

Mode = PendingUpload.Mode


def storage_mode() -> str | None:
    """How uploads reach this site's storage: s3 (straight to the bucket), local (to the site),
    or None (a storage that takes neither)."""
    if direct_uploads.enabled():
        return Mode.S3
    if chunked_uploads.enabled():
        return Mode.LOCAL
    return None


def size_check(size) -> int:
    """The declared size, refused when it is not a whole positive number of bytes (400) or is
    over `MAX_UPLOAD_BYTES` (413)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise UploadError("The file size must be a whole number of bytes.")
    if size <= 0:
        raise UploadError(
            "The file is empty (0 bytes)." if size == 0 else "The file size cannot be negative."
        )
    limit = int(settings.MAX_UPLOAD_BYTES)
    if size > limit:
        raise UploadError(f"The file is larger than the {filesizeformat(limit)} limit.", 413)
    return size


def expires_at(upload: PendingUpload):
    """When `cleanup_uploads` (by default) may remove an upload not completed by then."""
    return upload.created_at + timedelta(hours=float(settings.UPLOAD_EXPIRY_HOURS))


def upload_start(*, user, filename: str, size, details: dict | None = None) -> PendingUpload:
    size = size_check(size)
    mode = storage_mode()
    if mode is None:
        raise UploadError("Uploads need S3 storage or storage on the server's disk.", 501)
    if mode == Mode.S3:
        return direct_uploads.upload_create(user=user, filename=filename, size=size, details=details)
    return chunked_uploads.chunked_create(user=user, filename=filename, size=size, details=details)


def upload_of(user, upload_id) -> PendingUpload:
    """The upload `upload_id` (its key's hex) if `user` started it; anyone else's is a 404."""
    upload = None
    if (
        isinstance(upload_id, str)
        and chunked_uploads.UPLOAD_DIR.fullmatch(upload_id)
        and user.is_authenticated
    ):
        key = f"{UPLOAD_PREFIX}/{upload_id}/source"
        upload = PendingUpload.objects.filter(key=key, created_by=user).select_related("video").first()
    if upload is None:
        raise UploadError(f"No upload {str(upload_id)[:40]}.", 404)
    return upload


def status(upload: PendingUpload) -> str:
    if upload.completed_at is not None:
        return "completed"
    return "completing" if upload.completing else "receiving"


def upload_received(upload: PendingUpload) -> list[dict]:
    """The parts stored so far, [{number, size, etag, sha256}]: S3's ETag (to send back at
    completion) or the SHA-256 the site computed."""
    if upload.completed_at is not None:
        return []
    if upload.mode == Mode.S3:
        return [
            {"number": p["PartNumber"], "size": p["Size"], "etag": p["ETag"], "sha256": None}
            for p in direct_uploads.upload_parts(upload)
        ]
    return [{**p, "etag": None} for p in chunked_uploads.parts_received(upload)]


def upload_sign(upload: PendingUpload, part_numbers) -> dict[int, str]:
    if upload.mode != Mode.S3:
        raise UploadError("This upload's parts are sent to the site (PUT parts/<number>/): nothing to sign.")
    if upload.completed_at is not None:
        raise UploadError("This upload is completed already.", 409)
    return direct_uploads.upload_sign(upload, part_numbers)


def upload_put_part(
    upload: PendingUpload, number, stream, length: int | None, digest: str | None = None
) -> dict:
    if upload.mode != Mode.LOCAL:
        raise UploadError("This upload's parts go straight to S3: ask for their URLs (parts/sign/).")
    part = chunked_uploads.part_store(upload, number, stream, length, digest)
    return {"number": part.number, "size": part.size, "etag": None, "sha256": part.sha256}


def upload_finish(upload: PendingUpload, *, video: Video | None, parts=None, then=None) -> tuple[Video, bool]:
    """(the video, whether it was made now). `video`: unsaved, with the details; `parts` (S3):
    [{number, etag}], or None to take S3's list. Completed already: that upload's video."""
    if upload.completed_at is not None:
        if upload.video is None:
            raise UploadError("The video this upload became has been deleted.", 410)
        return upload.video, False
    if upload.mode == Mode.S3:
        if parts:
            parts = [{"PartNumber": p["number"], "ETag": p["etag"]} for p in parts]
        video = direct_uploads.upload_complete(upload, video=video, parts=parts or None, then=then, keep=True)
    else:
        video = chunked_uploads.chunked_complete(upload, video=video, then=then)
    return video, True


def upload_abort(upload: PendingUpload) -> None:
    if upload.completed_at is not None:
        raise UploadError("This upload is completed: delete its video instead.", 409)
    if upload.completing:
        raise UploadError("This upload is being completed.", 409)
    if upload.mode == Mode.S3:
        direct_uploads.upload_abort(upload)
    else:
        chunked_uploads.chunked_abort(upload)


def uploads_forget_completed(older_than: timedelta) -> int:
    """Forget the records of uploads completed before now - `older_than` (kept only to answer a
    repeated completion); their videos stay. Returns how many."""
    cutoff = timezone.now() - older_than
    _, deleted = PendingUpload.objects.filter(completed_at__lt=cutoff).delete()
    return deleted.get(PendingUpload._meta.label, 0)
