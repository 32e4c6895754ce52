"""Django upload handlers (settings: FILE_UPLOAD_HANDLERS).

`LimitedUploadHandler` comes first: it counts each file's bytes as they arrive and, as soon as
a file passes its field's limit, stops it (`SkipFile`): nothing more of it is written to disk,
what was is deleted, and the refusal is recorded on the request for the form to show. So an
over-limit upload costs the server no more than the limit, however large it is. The request
as a whole is held to one video and a few subtitle files (`StopUpload` past that), and files
from anyone but signed-in staff are never stored at all: Django parses a multipart body before
any view decides (the CSRF check reads it), so a login page would otherwise take 100 files.

The hashing handlers compute the SHA-256 of an upload while it streams in, so the original is
never read a second time just to identify it.
"""

from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    SkipFile,
    StopUpload,
    TemporaryFileUploadHandler,
)
from django.template.defaultfilters import filesizeformat

from transcoding.captions import subtitles
from transcoding.conf import settings
from transcoding.ingest.hashing import HashingUploadHandler


def limit_for(field_name: str) -> int:
    """The largest file a form field takes: a subtitle track's file (an inline's `...-file`),
    or a video."""
    if field_name == "file" or field_name.endswith("-file"):
        return subtitles.MAX_BYTES
    return int(settings.MAX_UPLOAD_BYTES)


def request_limit() -> int:
    """The most file bytes one request may carry: a video and ten subtitle files."""
    return int(settings.MAX_UPLOAD_BYTES) + 10 * subtitles.MAX_BYTES


def refusals(request) -> dict[str, str]:
    """{field name: the one-line reason its file was refused} for this request."""
    return getattr(request, "_upload_refusals", {})


class LimitedUploadHandler(FileUploadHandler):
    request_received = 0  # file bytes of the whole request so far

    def new_file(
        self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None
    ):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.limit, self.received = limit_for(field_name), 0
        user = getattr(self.request, "user", None)
        if not (user is not None and user.is_authenticated and user.is_active and user.is_staff):
            self._refuse("Only signed-in staff may upload files.")
        if content_length and content_length > self.limit:
            self._refuse()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        self.request_received += len(raw_data)
        if self.request_received > request_limit():
            raise StopUpload(connection_reset=True)
        if self.received > self.limit:
            self._refuse()
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler makes the file

    def _refuse(self, message: str = ""):
        if self.request is not None:
            if not hasattr(self.request, "_upload_refusals"):
                self.request._upload_refusals = {}
            message = message or f"The file is larger than the {filesizeformat(self.limit)} limit."
            self.request._upload_refusals[self.field_name] = message
        raise SkipFile()


class HashingMemoryFileUploadHandler(HashingUploadHandler, MemoryFileUploadHandler):
    """Small uploads (kept in memory by Django)."""


class HashingTemporaryFileUploadHandler(HashingUploadHandler, TemporaryFileUploadHandler):
    """Large uploads, streamed to a temporary file on disk."""
