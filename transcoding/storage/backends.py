"""The media storage the platform runs on, chosen once from Django's default storage: local
disk or S3 (django-storages). Everything that depends on which it is asks the store for a
capability instead of testing for S3:

- `signs_urls`: the storage's own URLs carry a signature and expire (a private bucket), so a
  manifest's relative URIs cannot be fetched from its URL (`signing`).
- `direct_uploads`: browsers can send originals straight to it (`ingest.direct_uploads`).
- `remote`: files are fetched over HTTP, not served by Django (`web.media_views`).
- listing and deleting many keys: one flat listing and batched deletes (boto3's own
  collection calls) on S3, the storage API a key at a time on disk.
- storage names against bucket keys (the storage's `location` prefix).
"""

import os
import posixpath
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.core.files.storage import default_storage
from storages.backends.s3 import S3Storage

from transcoding.conf import settings
from transcoding.storage.local import in_flight


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int | None = None
    modified: datetime | None = None


class LocalStore:
    """Django's FileSystemStorage (or any storage without S3's extras)."""

    signs_urls = False
    direct_uploads = False
    remote = False

    def __init__(self, storage):
        self.storage = storage

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under `prefix/`, recursively, with size and modification time."""
        for key in self._keys(prefix.strip("/")):
            try:
                yield StoredObject(key, self.storage.size(key), self.storage.get_modified_time(key))
            except (FileNotFoundError, NotImplementedError):
                yield StoredObject(key)

    def _keys(self, prefix: str) -> list[str]:
        try:
            directories, files = self.storage.listdir(prefix)
        except FileNotFoundError:
            return []
        keys = [f"{prefix}/{name}" for name in files]
        keys = [key for key in keys if not in_flight(self.local_path(key) or key)]
        for directory in directories:
            keys += self._keys(f"{prefix}/{directory}")
        return keys

    def delete_keys(self, keys: Iterable[str]) -> int:
        keys = list(dict.fromkeys(keys))
        for key in keys:
            self.storage.delete(key)
        self._prune_parents(keys)
        return len(keys)

    def delete_prefix(self, prefix: str) -> int:
        return self.delete_keys([o.key for o in self.list_objects(prefix)])

    def _prune_parents(self, keys: list[str]) -> None:
        """Remove the directories deleted keys leave empty, up to the top level
        (`videos/7/720p`, then `videos/7`; never `videos`)."""
        directories = {posixpath.dirname(k) for k in keys}
        for directory in sorted(directories, key=lambda d: -d.count("/")):
            while directory.count("/") >= 1:
                try:
                    os.rmdir(self.storage.path(directory))
                except (OSError, NotImplementedError):
                    break
                directory = posixpath.dirname(directory)

    def local_path(self, name: str) -> str | None:
        try:
            return self.storage.path(name)
        except NotImplementedError:
            return None

    def copy_to(self, name: str, handle) -> int:
        """Append a stored file to an open binary file, a buffer at a time. Returns bytes."""
        start = handle.tell()
        with self.storage.open(name, "rb") as source:
            shutil.copyfileobj(source, handle, 1024 * 1024)
        return handle.tell() - start


class S3Store(LocalStore):
    """django-storages' S3 backend: its bucket resource and client, its key prefix."""

    direct_uploads = True
    remote = True

    @property
    def signs_urls(self) -> bool:
        storage = self.storage
        return bool(storage.querystring_auth) and (
            not storage.custom_domain or bool(storage.cloudfront_signer)
        )

    @property
    def client(self):
        return self.storage.connection.meta.client

    @property
    def bucket_name(self) -> str:
        return self.storage.bucket_name

    @property
    def location(self) -> str:
        return (self.storage.location or "").strip("/")

    def key(self, name: str) -> str:
        """The bucket key of a storage name (the storage's `location` prefix applied)."""
        return f"{self.location}/{name}" if self.location else name

    def name(self, key: str) -> str | None:
        """The storage name of a bucket key; None for a key outside the storage's prefix."""
        if not self.location:
            return key
        return key[len(self.location) + 1 :] if key.startswith(self.location + "/") else None

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        for item in self.storage.bucket.objects.filter(Prefix=self.key(prefix.strip("/")) + "/"):
            yield StoredObject(self.name(item.key), item.size, item.last_modified)

    def delete_keys(self, keys: Iterable[str]) -> int:
        """DeleteObjects, 1000 keys a request (the bucket resource's batch action)."""
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            _check(
                [
                    self.storage.bucket.delete_objects(
                        Delete={"Objects": [{"Key": self.key(k)} for k in batch], "Quiet": True}
                    )
                ]
            )
        return len(keys)

    def delete_prefix(self, prefix: str) -> int:
        """Every object under `prefix/`: boto3's collection lists them and deletes them in
        batches of 1000. Returns how many."""
        responses = self.storage.bucket.objects.filter(Prefix=self.key(prefix.strip("/")) + "/").delete()
        _check(responses)
        return sum(len(r.get("Deleted", [])) for r in responses)

    def local_path(self, name: str) -> str | None:
        return None

    def copy_to(self, name: str, handle) -> int:
        """Streamed from the bucket into the file, a buffer at a time (one GET; django-storages'
        `open` would spool the whole object first; boto3's `download_fileobj` seeks to each
        part's offset, which would write over what the file already holds)."""
        start = handle.tell()
        body = self.client.get_object(Bucket=self.bucket_name, Key=self.key(name))["Body"]
        try:
            for block in body.iter_chunks(1024 * 1024):
                handle.write(block)
        finally:
            body.close()
        return handle.tell() - start


def _check(responses: list[dict]) -> None:
    errors = [e for r in responses for e in r.get("Errors") or []]
    if errors:
        first = errors[0]
        raise OSError(
            f"S3 refused to delete {len(errors)} objects, e.g. {first.get('Key')}: "
            f"{first.get('Code')} {first.get('Message')}"
        )


def store_for(storage) -> LocalStore:
    return S3Store(storage) if isinstance(storage, S3Storage) else LocalStore(storage)


def media_store() -> LocalStore:
    """The store of Django's default storage (looked up each time: tests switch storages)."""
    return store_for(default_storage)


def serve_media() -> bool:
    """Django serves /media/ (access-checked, `web.media_views`): by default when the files are
    not remote; `TRANSCODING_SERVE_MEDIA` decides otherwise."""
    return (not media_store().remote) if settings.SERVE_MEDIA is None else bool(settings.SERVE_MEDIA)
