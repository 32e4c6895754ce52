"""Local media storage whose overwrites readers never see half-done.

A video's playlists are written again while it encodes (a growing playlist at every segment,
the master as rungs start, the manifests at the stitch) and read at the same moment by the
views that serve them. Django's FileSystemStorage overwrites a file in place (truncate, then
write): a reader between the two got an empty or cut-short playlist, which a player fails to
parse or reads as fewer segments (B8's viewers saw it). Here a file is written beside its name
first and renamed over it, which POSIX makes atomic: a reader opens the old file or the new
one, whole. (S3 replaces an object whole already.)
"""

import os
import tempfile
import time

from django.core.files.storage import FileSystemStorage

STAGED_PREFIX, STAGED_SUFFIX = ".", ".part"
# A staged file is written to at every chunk; one untouched this long lost its writer (killed
# mid-write), and is listed again, so deleting the video's files and the orphan sweep take it.
ABANDONED_AFTER_SECONDS = 600


def in_flight(path: str) -> bool:
    """A file being written, not yet in place, that listings leave out (see above)."""
    name = os.path.basename(path)
    if not (name.startswith(STAGED_PREFIX) and name.endswith(STAGED_SUFFIX)):
        return False
    try:
        return time.time() - os.stat(path).st_mtime < ABANDONED_AFTER_SECONDS
    except FileNotFoundError:  # moved into place meanwhile: listed under its own name
        return True


class StagedFile:
    """Content already on disk: FileSystemStorage moves such a file into place (a rename)
    instead of writing it."""

    def __init__(self, path: str):
        self.path = path

    def temporary_file_path(self) -> str:
        return self.path


class MediaFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        directory = os.path.dirname(self.path(name))
        self._make_directories(directory)
        # Every content, an upload already on disk too, is copied into a staged file: hidden,
        # in the same directory (the rename stays on one file system), with its final mode
        # before it is visible (mkstemp's is 0600, unreadable to a web server's user).
        fd, staged = tempfile.mkstemp(dir=directory, prefix=STAGED_PREFIX, suffix=STAGED_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), self.file_permissions_mode or DEFAULT_FILE_MODE)
                for chunk in content.chunks():
                    handle.write(chunk if isinstance(chunk, bytes) else chunk.encode())
            return super()._save(name, StagedFile(staged))
        finally:
            if os.path.exists(staged):  # the move failed
                os.unlink(staged)

    def _make_directories(self, directory: str) -> None:
        """As FileSystemStorage does before it writes: each missing level gets
        `directory_permissions_mode`, when set."""
        missing = []
        while not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for level in reversed(missing):
            try:
                os.mkdir(level)
            except FileExistsError:  # another writer made it
                pass
            if self.directory_permissions_mode is not None:
                os.chmod(level, self.directory_permissions_mode)


# Django's FILE_UPLOAD_PERMISSIONS default; used when a deployment sets it to None.
DEFAULT_FILE_MODE = 0o644
