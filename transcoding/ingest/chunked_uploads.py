"""Resumable uploads to the site itself, for local storage: the steps of a direct upload to S3
(`direct_uploads`: create, parts, complete, abort), with each part PUT to Django instead of a
bucket. `ingest.uploads` is the one protocol over both.

Where parts live: `uploads/<hex>/parts/<n>` in the media storage's own directory (MEDIA_ROOT),
beside the original they become (`uploads/<hex>/source`, the name S3 uploads get too). Not a
temporary directory, because: every web process (and every host sharing MEDIA_ROOT) sees the
same parts, so a client resuming may reach any of them; the original is assembled on the same
file system, and renamed into place, never copied across disks; and `cleanup_uploads` finds
what is left behind in one place. Nothing under uploads/ is ever served (`web.media_views`
serves outputs only). Local uploads need a storage with file system paths (`enabled`).

A part is written whole or not at all. Its declared length (Content-Length) must be its exact
size (`part_bytes`: the part size, the last one the remainder), else it is refused before a
byte is read; its bytes are streamed to a temporary file beside it in chunks, counted and
hashed, and refused as soon as they would pass that size (at most the size + 1 bytes are ever
read), then renamed over the part (`os.replace`, atomic). So a lost connection, a refused part
or two requests racing never leave half a part under its name, and sending a part again
replaces it. Django's request body limits do not apply: the body is never read into memory.

Completing checks that every part is there at its size, concatenates them into the original
while hashing it (the SHA-256 content dedupe trusts, computed by the server over the bytes it
stored), probes it (`probe.probe_source`: the input rules), and only then creates the video.
"""

import base64
import binascii
import hashlib
import math
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from transcoding.conf import settings
from transcoding.errors import SourceRejected
from transcoding.ingest.create import video_from_upload
from transcoding.ingest.direct_uploads import (
    MAX_PARTS,
    UPLOAD_PREFIX,
    Abandoned,
    UploadError,
    part_count,
    safe_label,
    upload_mark_completed,
)
from transcoding.media.probe import probe_source
from transcoding.models import PendingUpload, UploadPart, Video
from transcoding.storage import objects
from transcoding.storage.backends import media_store

PARTS = "parts"
CHUNK = 1024 * 1024
PART_NUMBER = re.compile(r"[0-9]{1,5}")
UPLOAD_DIR = re.compile(r"[0-9a-f]{32}")
DIGEST_VALUE = re.compile(r":([A-Za-z0-9+/]*={0,2}):")
LOCAL = PendingUpload.Mode.LOCAL


def enabled() -> bool:
    """Uploads to the site need the media on a file system (local storage)."""
    store = media_store()
    return not store.direct_uploads and store.local_path(UPLOAD_PREFIX) is not None


# --- pure rules, table-tested ------------------------------------------------------------------
def part_plan(size: int, part_bytes_setting: int) -> tuple[int, int]:
    """(part size, number of parts) for a local upload: the configured part size (no S3 minimum
    here), raised for files that would need more than 10,000 parts."""
    part = max(int(part_bytes_setting), 1, math.ceil(size / MAX_PARTS))
    return part, max(1, math.ceil(size / part))


def part_bytes(size: int, part_size: int, number: int) -> int:
    """The exact size of part `number` (from 1): the part size, the last one the remainder."""
    count = max(1, math.ceil(size / part_size))
    return part_size if number < count else size - (count - 1) * part_size


def part_number(raw, count: int) -> int:
    """A part number from the URL: a whole number from 1 to `count`, else refused."""
    if not isinstance(raw, str) or not PART_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= count:
        raise UploadError(f"Part numbers are whole numbers from 1 to {count}.")
    return int(raw)


def content_digest(header: str | None) -> bytes | None:
    """The SHA-256 an RFC 9530 `Content-Digest` header claims for a part (`sha-256=:<base64>:`);
    None without the header or without a sha-256 member (other algorithms are ignored)."""
    for member in (header or "").split(","):
        name, _, value = member.strip().partition("=")
        if name.strip().lower() != "sha-256":
            continue
        match = DIGEST_VALUE.fullmatch(value.strip())
        try:
            decoded = base64.b64decode(match[1], validate=True) if match else b""
        except binascii.Error:
            decoded = b""
        if len(decoded) != 32:
            raise UploadError("Content-Digest: give sha-256=:<base64 of the 32-byte SHA-256>:.")
        return decoded
    return None


# --- where things are -------------------------------------------------------------------------
def _directory(upload: PendingUpload) -> Path:
    return Path(media_store().local_path(posixpath.dirname(upload.key)))


def _source(upload: PendingUpload) -> Path:
    return Path(media_store().local_path(upload.key))


def _still_open(upload: PendingUpload) -> None:
    if upload.completed_at is not None:
        raise UploadError("This upload is completed already.", 409)
    if upload.completing:
        raise UploadError("This upload is being completed.", 409)


# --- the service ------------------------------------------------------------------------------
def chunked_create(*, user, filename: str, size: int, details: dict | None = None) -> PendingUpload:
    """Record a new upload under a key chosen here (`size` already checked against the limit by
    the caller). Nothing is stored until a part arrives."""
    part_size, _ = part_plan(size, settings.UPLOAD_PART_BYTES)
    return PendingUpload.objects.create(
        key=f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}/source",
        upload_id="",
        mode=LOCAL,
        size=size,
        part_size=part_size,
        filename=safe_label(filename),
        content_type="application/octet-stream",
        created_by=user,
        details=details or {},
    )


def part_store(upload: PendingUpload, raw_number, stream, length: int | None, digest: str | None = None):
    """Store part `raw_number` of `upload` from `stream` (a request body of `length` bytes),
    replacing any earlier copy. Returns its UploadPart. Refused (UploadError) when the number,
    the length or the bytes are wrong, before anything is kept under the part's name."""
    _still_open(upload)
    number = part_number(raw_number, part_count(upload))
    expected = part_bytes(upload.size, upload.part_size, number)
    wanted = content_digest(digest)
    if length is None:
        raise UploadError("Send each part with its length (Content-Length), not chunked.", 411)
    if length != expected:
        status = 413 if length > expected else 400
        raise UploadError(
            f"Part {number} must be {expected} bytes; this one is {length}.", status, resumable=True
        )
    directory = _directory(upload) / PARTS
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=directory, prefix=f".{number}.", suffix=".partial", delete=False
    ) as handle:
        try:
            sha256, received = _receive(stream, handle, number, expected)
            if wanted is not None and sha256.digest() != wanted:
                raise UploadError(
                    f"Part {number} does not match its Content-Digest; send it again.", resumable=True
                )
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            os.unlink(handle.name)
            raise
    try:
        with transaction.atomic():
            locked = (
                PendingUpload.objects.select_for_update()
                .filter(pk=upload.pk, completing=False, completed_at__isnull=True)
                .first()
            )
            if locked is None:
                raise UploadError("This upload is completed, being completed or aborted.", 409)
            os.replace(handle.name, directory / str(number))
            part, _ = UploadPart.objects.update_or_create(
                upload=upload, number=number, defaults={"size": received, "sha256": sha256.hexdigest()}
            )
    finally:
        Path(handle.name).unlink(missing_ok=True)  # gone already once renamed into place
    return part


def _receive(stream, handle, number: int, expected: int):
    """Copy the body to `handle` in chunks, counting and hashing; never more than `expected` + 1
    bytes are read."""
    sha256, received = hashlib.sha256(), 0
    while True:
        try:
            chunk = stream.read(min(CHUNK, expected + 1 - received))
        except OSError:
            chunk = b""  # the client went away: the part ends short, below
        if not chunk:
            break
        received += len(chunk)
        if received > expected:
            raise UploadError(f"Part {number} is larger than its {expected} bytes.", 413, resumable=True)
        sha256.update(chunk)
        handle.write(chunk)
    if received < expected:
        raise UploadError(
            f"Part {number} ended after {received} of its {expected} bytes; send it again.", resumable=True
        )
    return sha256, received


def parts_received(upload: PendingUpload) -> list[dict]:
    """The parts the site holds, to resume: [{number, size, sha256}]."""
    return [{"number": p.number, "size": p.size, "sha256": p.sha256} for p in upload.parts.all()]


def chunked_complete(upload: PendingUpload, *, video: Video, then=None) -> Video:
    """Assemble the parts into the original, check it, then create `video` (unsaved, its details
    filled by the caller) with it, mark the upload completed and call `then(video)`, in one
    transaction. Claimed once (a concurrent second request gets 409). A missing or wrong part
    keeps the upload (send it, complete again); an original the probe refuses is deleted with
    the parts and the record, and the probe's sentence is the error."""
    _still_open(upload)
    count = part_count(upload)
    for number in range(1, count + 1):
        path, expected = (
            _directory(upload) / PARTS / str(number),
            part_bytes(upload.size, upload.part_size, number),
        )
        size = path.stat().st_size if path.is_file() else None
        if size is None:
            raise UploadError(
                f"The upload is incomplete: part {number} of {count} is missing.", resumable=True
            )
        if size != expected:
            raise UploadError(
                f"Part {number} is {size} bytes, not {expected}; send it again.", resumable=True
            )
    claimed = PendingUpload.objects.filter(pk=upload.pk, completing=False, completed_at__isnull=True)
    if not claimed.update(completing=True):
        raise UploadError("This upload is being completed already.", 409)
    try:
        sha256, total = _assemble(upload, count)
        if total != upload.size:
            raise SourceRejected(f"The stored file is {total} bytes, not the {upload.size} bytes declared.")
        probe_source(objects.source_location(upload.key), size=total)
        with transaction.atomic():
            video_from_upload(video, name=upload.key, size=total, filename=upload.filename, sha256=sha256)
            upload_mark_completed(upload, video)
            upload.parts.all().delete()
            if then is not None:
                then(video)
    except SourceRejected as exc:
        shutil.rmtree(_directory(upload), ignore_errors=True)
        upload.delete()
        raise UploadError(str(exc))
    except BaseException:
        PendingUpload.objects.filter(pk=upload.pk).update(completing=False)
        raise
    shutil.rmtree(_directory(upload) / PARTS, ignore_errors=True)
    return Video.objects.get(pk=video.pk)


def _assemble(upload: PendingUpload, count: int) -> tuple[str, int]:
    """Concatenate the parts into the original (a temporary file renamed into place), hashing as
    it goes: (SHA-256, bytes)."""
    target, digest, total = _source(upload), hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".source.", delete=False) as out:
        try:
            for number in range(1, count + 1):
                with open(target.parent / PARTS / str(number), "rb") as part:
                    for chunk in iter(lambda: part.read(CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        total += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            os.unlink(out.name)
            raise
    os.replace(out.name, target)
    return digest.hexdigest(), total


def chunked_abort(upload: PendingUpload) -> None:
    """Remove every stored part (and an original assembled by a completion that stopped before
    its video existed) and forget the upload."""
    _still_open(upload)
    _remove(upload.key, in_use=Video.objects.filter(source=upload.key).exists())
    upload.delete()


def _remove(key: str, *, in_use: bool) -> None:
    directory = Path(media_store().local_path(posixpath.dirname(key)))
    if in_use:  # never a video's original
        shutil.rmtree(directory / PARTS, ignore_errors=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)


# --- abandoned uploads ------------------------------------------------------------------------
def uploads_abandoned(older_than: timedelta) -> list[Abandoned]:
    """Local uploads started before now - `older_than` and never completed, and directories
    under uploads/ that no record names holding parts or an original no video uses (a record
    deleted by hand, a crash), aged by their modification time."""
    cutoff = timezone.now() - older_than
    records = {r.public_id: r for r in PendingUpload.objects.filter(mode=LOCAL).select_related("created_by")}
    found = [
        Abandoned(r.key, "", r.created_at, r, True)
        for r in records.values()
        if r.completed_at is None and r.created_at < cutoff
    ]
    root = Path(media_store().local_path(UPLOAD_PREFIX))
    used = set(Video.objects.filter(source__startswith=f"{UPLOAD_PREFIX}/").values_list("source", flat=True))
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        key = f"{UPLOAD_PREFIX}/{directory.name}/source"
        if directory.name in records or not UPLOAD_DIR.fullmatch(directory.name) or not directory.is_dir():
            continue
        leftovers = [p for p in directory.iterdir() if not (p.name == "source" and key in used)]
        started = datetime.fromtimestamp(directory.stat().st_mtime, UTC)
        if leftovers and started < cutoff:
            found.append(Abandoned(key, "", started, None, True))
    return sorted(found, key=lambda a: a.started)


def upload_discard(item: Abandoned) -> None:
    """Remove an abandoned local upload's files (never a video's original) and its record."""
    _remove(item.key, in_use=Video.objects.filter(source=item.key).exists())
    if item.record is not None:
        item.record.delete()
