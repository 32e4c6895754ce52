"""Local media storage: a file written again is replaced whole, so a view reading it while the
encode rewrites it (a growing playlist, every few seconds) serves the old file or the new one,
never an empty or cut-short one."""

import os
import stat
import threading
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile

from transcoding.storage import local
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


def test_a_rewrite_keeps_the_name_and_leaves_nothing_beside_it():
    default_storage.save(KEY, ContentFile(b"old"))
    assert default_storage.save(KEY, ContentFile("new")) == KEY  # text content too
    assert default_storage.open(KEY).read() == b"new"
    assert os.listdir(os.path.dirname(default_storage.path(KEY))) == ["index.m3u8"]  # no ".part"


@pytest.mark.parametrize("mode", [0o644, 0o640, None])
def test_a_file_has_its_mode_when_it_appears(settings, monkeypatch, mode):
    """Readable by a web server running as another user from the moment it has its name, not
    after a chmod that follows the rename (mkstemp makes files 0600)."""
    settings.FILE_UPLOAD_PERMISSIONS = mode
    appeared = []
    rename = os.rename

    def watched(source, destination):
        rename(source, destination)
        appeared.append(stat.S_IMODE(os.stat(destination).st_mode))

    monkeypatch.setattr(os, "rename", watched)
    default_storage.save(KEY, ContentFile(b"#EXTM3U\n"))
    assert appeared == [mode or 0o644]


def test_directories_get_the_configured_mode_at_every_level(settings):
    settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o2750
    default_storage.save("videos/9/hls/360p/index.m3u8", ContentFile(b"x"))
    for level in ("videos/9", "videos/9/hls", "videos/9/hls/360p"):
        assert stat.S_IMODE(os.stat(default_storage.path(level)).st_mode) == 0o2750, level


def test_an_upload_on_disk_is_stored_whole(tmp_path):
    upload = TemporaryUploadedFile("clip.mp4", "video/mp4", 5, None)
    upload.write(b"video")
    upload.flush()
    name = default_storage.save("originals/clip.mp4", upload)
    assert default_storage.open(name).read() == b"video"
    upload.close()


def test_a_file_being_written_is_not_listed_but_one_its_writer_left_is():
    """Left out while written; one untouched for ABANDONED_AFTER_SECONDS lost its writer (killed
    mid-write), and deleting the video's files must take it too."""
    default_storage.save(KEY, ContentFile(b"whole"))
    staged = os.path.join(os.path.dirname(default_storage.path(KEY)), ".index.m3u8abc.part")
    with open(staged, "wb") as handle:
        handle.write(b"half")
    assert [o.key for o in media_store().list_objects("videos/1")] == [KEY]

    old = time.time() - local.ABANDONED_AFTER_SECONDS - 1
    os.utime(staged, (old, old))
    assert len(list(media_store().list_objects("videos/1"))) == 2
    media_store().delete_prefix("videos/1")
    assert not os.path.exists(os.path.dirname(os.path.dirname(staged)))  # videos/1 gone whole
