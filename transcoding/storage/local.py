"""Local media storage whose overwrites readers never see half-done.

A video's playlists are written again while it encodes (a growing playlist at every segment,
the master as rungs start, the manifests at the stitch) and read at the same moment by the
views that serve them. Django's FileSystemStorage overwrites a file in place (truncate, then
write): a reader between the two got an empty or cut-short playlist, which a player fails to
parse or reads as fewer segments (B8's viewers saw it). Here a file is written beside its name first and renamed over it, which
POSIX makes atomic: a reader opens the old file or the new one, whole. (S3 replaces an object
whole already.)
"""

import os
import tempfile

from django.core.files.storage import FileSystemStorage

STAGED_PREFIX, STAGED_SUFFIX = ".", ".part"


def is_staged(filename: str) -> bool:
    """A file being written, not yet in place: listings leave it out."""
    return filename.startswith(STAGED_PREFIX) and filename.endswith(STAGED_SUFFIX)


class StagedFile:
    """Content already on disk: FileSystemStorage moves such a file into place (a rename)
    instead of writing it."""

    def __init__(self, path: str):
        self.path = path

    def temporary_file_path(self) -> str:
        return self.path


class MediaFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        if hasattr(content, "temporary_file_path"):  # an upload on disk: moved, a rename
            return super()._save(name, content)
        directory = os.path.dirname(self.path(name))
        os.makedirs(directory, mode=self.directory_permissions_mode or 0o777, exist_ok=True)
        # Hidden, in the same directory: the rename stays on one file system.
        fd, staged = tempfile.mkstemp(dir=directory, prefix=STAGED_PREFIX, suffix=STAGED_SUFFIX)
        try:
            if self.file_permissions_mode is None:  # else set after the move; mkstemp's is 0600
                os.chmod(staged, 0o644)
            with os.fdopen(fd, "wb") as handle:
                for chunk in content.chunks():
                    handle.write(chunk if isinstance(chunk, bytes) else chunk.encode())
            return super()._save(name, StagedFile(staged))
        finally:
            if os.path.exists(staged):  # the move failed
                os.unlink(staged)
