"""SHA-256 of sources, computed by the server over the bytes it stores: the content address
content dedupe trusts (a hash a client claims is never used). Computed while the bytes stream
in, so an original is not read a second time just to identify it."""

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage

CHUNK = 1024 * 1024


class HashingFile(File):
    """A File that hashes the bytes storage reads while saving it: the content address costs
    no second read. Hashes in read() (chunks() reads through it; S3 uploads call read()), and
    only bytes read for the first time, so a storage that rewinds does not count twice. (A
    storage that moves a temporary file instead of reading it leaves the hash empty; the
    upload handlers hashed those bytes already.)"""

    def __init__(self, file):
        super().__init__(file, name=getattr(file, "name", None))
        self._digest = hashlib.sha256()
        self._hashed = 0

    def read(self, *args):
        start = self.file.tell()
        data = self.file.read(*args)
        if start <= self._hashed < start + len(data):
            self._digest.update(data[self._hashed - start :])
            self._hashed = start + len(data)
        return data

    def hexdigest(self) -> str:
        """The SHA-256, or "" unless storage read every byte."""
        return self._digest.hexdigest() if self._hashed and self._hashed == self.size else ""


class HashingStream(io.RawIOBase):
    """Chunks arriving from elsewhere (a URL import's download) as a read-once file storage
    can save: the SHA-256 and the byte count are taken as storage reads them, so the bytes
    pass through once and are never held whole. Not seekable: storages then stream it
    (S3: a multipart upload of fixed-size parts)."""

    def __init__(self, chunks: Iterable[bytes]):
        super().__init__()
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._digest.update(chunk)
            self.count += len(chunk)
            self._buffer += chunk
        end = len(self._buffer) if size < 0 else size
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class HashingUploadHandler:
    """Mixed into Django's upload handlers (`upload_handlers`): the upload's SHA-256 as it
    arrives, set on the uploaded file as `sha256`."""

    def new_file(self, *args, **kwargs):
        self.sha256 = hashlib.sha256()
        return super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.sha256.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        if uploaded is not None:
            uploaded.sha256 = self.sha256.hexdigest()
        return uploaded


def sha256_of_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_stored(name: str) -> str:
    """A stored file's SHA-256, read through the storage (local files only: the caller never
    downloads a remote original just to hash it)."""
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
