"""Stored files: a video's keys under its prefix, writes, listing and deletes through Django's
storage API and the media store (`backends`), so local disk and S3 behave the same."""

from collections.abc import Iterable, Iterator
from pathlib import Path

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from transcoding.conf import settings
from transcoding.media.containers import SourceInput, source_input
from transcoding.storage.backends import StoredObject, media_store
from transcoding.storage.content_types import DOWNLOADS_DIR


def video_prefix(video_id: int) -> str:
    return f"{settings.OUTPUT_PREFIX}/{video_id}"


def download_key(video_id: int, name: str) -> str:
    """Where the MP4 download of rung `name` (already checked against `models.RUNG_NAME`) is stored."""
    return f"{video_prefix(video_id)}/{DOWNLOADS_DIR}/{name}.mp4"


def append_to(key: str, handle) -> int:
    """Append a stored file to an open binary file (S3: streamed). Returns its size."""
    return media_store().copy_to(key, handle)


def store_file(local_path: Path, key: str) -> int:
    """Store one finished file; returns its size. Overwrites (storages are configured so)."""
    with open(local_path, "rb") as handle:
        default_storage.save(key, File(handle))
    return local_path.stat().st_size


def store_text(key: str, text: str) -> int:
    data = text.encode("utf-8")
    default_storage.save(key, ContentFile(data))
    return len(data)


def url(key: str) -> str | None:
    return default_storage.url(key) if key else None


def list_objects(prefix: str) -> Iterator[StoredObject]:
    """Every object under `prefix/`, recursively, with size and modification time."""
    return media_store().list_objects(prefix)


def list_keys(prefix: str) -> list[str]:
    """Every key under a prefix, recursively."""
    return [o.key for o in list_objects(prefix)]


def delete_keys(keys: Iterable[str]) -> int:
    """Delete keys (S3: DeleteObjects, 1000 a request). Returns how many."""
    return media_store().delete_keys(keys)


def delete_prefix(prefix: str) -> int:
    """Delete every object under `prefix/`. Returns how many."""
    return media_store().delete_prefix(prefix)


def local_path(name: str) -> str | None:
    """A filesystem path for a stored name, where the storage has one."""
    return media_store().local_path(name)


def source_location(name: str, container: str = "") -> SourceInput:
    """Where and how ffmpeg and PyAV read a source: a local path, or a presigned URL they can
    range-read, with the one protocol that needs (`containers`); `container`, the probe's
    finding, forces the demuxer."""
    max_pixels = int(settings.MAX_WIDTH) * int(settings.MAX_HEIGHT)
    return source_input(local_path(name) or default_storage.url(name), container, max_pixels)
