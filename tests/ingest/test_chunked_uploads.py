"""Uploads in parts to the site (local storage, `ingest.chunked_uploads`): the rules as tables,
a part's body read in chunks and never past its size, and `cleanup_uploads` on local storage.
The HTTP side is tests/api/test_uploads.py."""

import base64
import hashlib
import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from transcoding.ingest import chunked_uploads, uploads
from transcoding.ingest.direct_uploads import UploadError
from transcoding.models import PendingUpload, UploadPart, Video

MIB = 1024 * 1024


@pytest.mark.parametrize(
    "size, setting, plan",
    [
        (1, 8 * MIB, (8 * MIB, 1)),
        (8 * MIB, 8 * MIB, (8 * MIB, 1)),
        (8 * MIB + 1, 8 * MIB, (8 * MIB, 2)),
        (300, 100, (100, 3)),
        (301, 100, (100, 4)),
        (10_000 * 100 + 1, 100, (101, 9_901)),  # never more than 10,000 parts
        (50 * 1024**3, 8 * MIB, (8 * MIB, 6_400)),
        (5, 0, (1, 5)),  # a part size of 0 would never end
    ],
)
def test_part_plan(size, setting, plan):
    assert chunked_uploads.part_plan(size, setting) == plan


@pytest.mark.parametrize(
    "size, part_size, number, expected",
    [(300, 100, 1, 100), (300, 100, 3, 100), (301, 100, 4, 1), (250, 100, 3, 50), (7, 100, 1, 7)],
)
def test_part_bytes(size, part_size, number, expected):
    assert chunked_uploads.part_bytes(size, part_size, number) == expected


@pytest.mark.parametrize(
    "raw, number",
    [("1", 1), ("3", 3), ("0", None), ("4", None), ("-1", None), ("abc", None), ("1.0", None), (" 1", None),
     ("٣", None), ("0001", 1), ("999999", None), (None, None), (2, None)],
)  # fmt: skip
def test_part_number(raw, number):
    if number is None:
        with pytest.raises(UploadError, match=r"^Part numbers are whole numbers from 1 to 3\.$"):
            chunked_uploads.part_number(raw, 3)
    else:
        assert chunked_uploads.part_number(raw, 3) == number


SHA = hashlib.sha256(b"part").digest()
B64 = base64.b64encode(SHA).decode()


@pytest.mark.parametrize(
    "header, result",
    [
        (None, None),
        ("", None),
        (f"sha-256=:{B64}:", SHA),
        (f"SHA-256=:{B64}:", SHA),
        (f"sha-512=:AAAA:, sha-256=:{B64}:", SHA),
        ("sha-512=:AAAA:", None),  # an algorithm not checked here is ignored (RFC 9530)
        (f"sha-256={B64}", "refused"),  # not a byte sequence (no colons)
        ("sha-256=:bm90:", "refused"),  # 3 bytes
        ("sha-256=:!!!!:", "refused"),
    ],
)
def test_content_digest(header, result):
    if result == "refused":
        with pytest.raises(UploadError, match="^Content-Digest: "):
            chunked_uploads.content_digest(header)
    else:
        assert chunked_uploads.content_digest(header) == result


class Body(io.RawIOBase):
    """A request body of `size` bytes that counts what was read, or fails after `fail_after`
    bytes like a connection lost mid-part."""

    def __init__(self, size: int, fail_after: int | None = None):
        self.left, self.read_bytes, self.fail_after = size, 0, fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.read_bytes >= self.fail_after:
            raise OSError("connection reset by peer")
        n = self.left if n < 0 else min(n, self.left)
        if self.fail_after is not None:
            n = min(n, self.fail_after - self.read_bytes)
        self.left -= n
        self.read_bytes += n
        return b"v" * n


@pytest.fixture
def upload(db, admin_user, settings):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 3 * MIB
    return uploads.upload_start(user=admin_user, filename="a.mp4", size=7 * MIB)


def parts_dir(settings, upload) -> Path:
    return Path(settings.MEDIA_ROOT, "uploads", upload.public_id, "parts")


def test_a_body_longer_than_its_part_is_stopped_one_byte_past_it(upload, settings):
    body = Body(10 * MIB)  # the client declared 3 MiB and sends more (a server would trust its header)

    with pytest.raises(UploadError, match=r"^Part 1 is larger than its 3145728 bytes\.$") as refused:
        chunked_uploads.part_store(upload, "1", body, 3 * MIB)

    assert refused.value.status == 413 and body.read_bytes == 3 * MIB + 1
    assert list(parts_dir(settings, upload).iterdir()) == [] and not UploadPart.objects.exists()


def test_a_body_cut_short_leaves_nothing_under_the_parts_name(upload, settings):
    body = Body(MIB, fail_after=MIB // 2)
    message = r"^Part 3 ended after 524288 of its 1048576 bytes; send it again\.$"
    with pytest.raises(UploadError, match=message) as refused:
        chunked_uploads.part_store(upload, "3", body, MIB)
    assert refused.value.status == 400 and refused.value.resumable
    assert list(parts_dir(settings, upload).iterdir()) == [] and not UploadPart.objects.exists()

    part = chunked_uploads.part_store(upload, "3", Body(MIB), MIB)  # sent again, whole
    assert (part.number, part.size) == (3, MIB)
    assert (parts_dir(settings, upload) / "3").stat().st_size == MIB


def test_a_declared_length_other_than_the_parts_is_refused_before_reading(upload):
    body = Body(MIB)
    for length, status in ((3 * MIB + 1, 413), (3 * MIB - 1, 400), (0, 400), (None, 411)):
        with pytest.raises(UploadError) as refused:
            chunked_uploads.part_store(upload, "1", body, length)
        assert refused.value.status == status
    assert body.read_bytes == 0


# --- cleanup -----------------------------------------------------------------------------------


def age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


@pytest.mark.django_db
def test_cleanup_removes_old_local_uploads_and_never_an_original(admin_user, settings, capsys):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 100
    old = uploads.upload_start(user=admin_user, filename="old.mp4", size=250)
    chunked_uploads.part_store(old, "1", Body(100), 100)
    PendingUpload.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=30))
    fresh = uploads.upload_start(user=admin_user, filename="fresh.mp4", size=250)
    chunked_uploads.part_store(fresh, "2", Body(100), 100)
    root = Path(settings.MEDIA_ROOT, "uploads")
    # Parts no record names (a record deleted by hand), and an original a video uses whose
    # completed record was forgotten long ago.
    orphan = root / ("b" * 32)
    (orphan / "parts").mkdir(parents=True)
    (orphan / "parts" / "1").write_bytes(b"x")
    age(orphan, 48)
    used = root / ("c" * 32)
    used.mkdir()
    (used / "source").write_bytes(b"video")
    age(used, 48)
    Video.objects.create(title="Kept", source=f"uploads/{'c' * 32}/source")

    call_command("cleanup_uploads", "--dry-run")
    out = capsys.readouterr().out
    assert f"would abort {old.key} by admin, started" in out
    assert f"would abort uploads/{'b' * 32}/source (no record)" in out
    assert out.splitlines()[-1] == "would abort 2 uploads older than 24 h"
    assert (root / old.public_id / "parts" / "1").exists() and orphan.exists()

    call_command("cleanup_uploads")
    assert capsys.readouterr().out.splitlines()[-1] == "aborted 2 uploads older than 24 h"
    assert not (root / old.public_id).exists() and not orphan.exists()
    assert (root / fresh.public_id / "parts" / "2").exists() and (used / "source").read_bytes() == b"video"
    assert list(PendingUpload.objects.values_list("key", flat=True)) == [fresh.key]
    call_command("cleanup_uploads")
    assert capsys.readouterr().out == "aborted 0 uploads older than 24 h\n"  # the original is no leftover


@pytest.mark.django_db
def test_cleanup_forgets_old_completed_records_only(admin_user, capsys):
    video = Video.objects.create(title="Done", source="uploads/x/source")
    PendingUpload.objects.create(key="uploads/1/source", mode="local", size=1, part_size=1, video=video,
                                 completed_at=timezone.now() - timedelta(days=2))  # fmt: skip
    recent = PendingUpload.objects.create(
        key="uploads/2/source", mode="local", size=1, part_size=1, video=video, completed_at=timezone.now()
    )

    call_command("cleanup_uploads")

    assert capsys.readouterr().out.splitlines() == [
        "forgot 1 completed upload record",
        "aborted 0 uploads older than 24 h",
    ]
    assert list(PendingUpload.objects.all()) == [recent] and Video.objects.filter(pk=video.pk).exists()
