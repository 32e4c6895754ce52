"""Local media storage: a file written again is replaced whole, so a view reading it while the
encode rewrites it (a growing playlist, every few seconds) serves the old file or the new one,
never an empty or cut-short one."""

import os
import stat
import threading

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile

from transcoding.storage.backends import media_store
from transcoding.storage.local import MediaFileSystemStorage

pytestmark = pytest.mark.django_db

KEY = "videos/1/hls/360p/index.m3u8"


def test_the_default_local_storage_is_the_one_that_replaces_files_whole():
    assert isinstance(default_storage, MediaFileSystemStorage)


def test_a_reader_never_sees_a_file_half_rewritten():
    """Two versions of a playlist written in turn, 200 times, while another thread reads it as
    the playlist view does: every read is one of the two, whole. Django's FileSystemStorage
    truncates then writes, and its readers saw empty and partial files within a few writes."""
    versions = [
        ("#EXTM3U\n" + "#EXTINF:2.0,\nseg_%05d.m4s\n" * 40_000 % tuple(range(40_000))).encode(),
        ("#EXTM3U\n" + "#EXTINF:2.0,\nseg_%05d.m4s\n" * 40_001 % tuple(range(40_001))).encode(),
    ]
    default_storage.save(KEY, ContentFile(versions[0]))
    done, seen, torn = threading.Event(), [0], []

    def read():
        while not done.is_set():
            with default_storage.open(KEY, "rb") as handle:
                data = handle.read()
            seen[0] += 1
            if data not in versions:
                torn.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(200):
            default_storage.save(KEY, ContentFile(versions[n % 2]))
    finally:
        done.set()
        reader.join(30)
    assert seen[0] > 0 and torn == [], f"{len(torn)} of {seen[0]} reads were partial: {torn[:5]} bytes"


def test_a_rewrite_keeps_the_name_leaves_nothing_beside_it_and_is_readable_by_others():
    default_storage.save(KEY, ContentFile(b"old"))
    assert default_storage.save(KEY, ContentFile("new")) == KEY  # text content too
    assert default_storage.open(KEY).read() == b"new"
    directory = os.path.dirname(default_storage.path(KEY))
    assert os.listdir(directory) == ["index.m3u8"]  # no staged ".part" file left
    assert stat.S_IMODE(os.stat(default_storage.path(KEY)).st_mode) == 0o644


def test_an_upload_on_disk_is_moved_into_place(tmp_path):
    upload = TemporaryUploadedFile("clip.mp4", "video/mp4", 5, None)
    upload.write(b"video")
    upload.flush()
    name = default_storage.save("originals/clip.mp4", upload)
    assert default_storage.open(name).read() == b"video"
    upload.close()


def test_a_file_being_written_is_not_listed():
    default_storage.save(KEY, ContentFile(b"whole"))
    staged = os.path.join(os.path.dirname(default_storage.path(KEY)), ".index.m3u8abc.part")
    with open(staged, "wb") as handle:
        handle.write(b"half")
    assert [o.key for o in media_store().list_objects("videos/1")] == [KEY]
