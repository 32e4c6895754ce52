"""django-storages' S3 backend with the object headers chosen here (`content_types`), never
the uploading client's: an upload's `content_type` (a browser says what it likes) would
otherwise become the object's Content-Type, and S3 would serve an uploaded page as text/html.
`STORAGE=s3` uses this class (settings.py)."""

from storages.backends.s3 import S3Storage

from transcoding.conf import settings
from transcoding.storage.content_types import object_headers


class MediaS3Storage(S3Storage):
    def get_object_parameters(self, name):
        output = name.startswith(settings.OUTPUT_PREFIX.strip("/") + "/")
        return {**super().get_object_parameters(name), **object_headers(name, output=output)}
