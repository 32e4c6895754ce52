"""`/media/` with local storage: Django serves a video's outputs itself, and nothing else.

In development and in production alike (a front web server must not serve MEDIA_ROOT itself):

- Only outputs are served: keys under `videos/<id>/` with an output's extension
  (`content_types.OUTPUT_TYPES`). Originals, uploaded subtitle files and anything else under
  MEDIA_ROOT are never served here (staff download originals through `playback_views.original`).
- Only to whom may see them: anyone, when the video owning the prefix is public
  (`access.is_public`); otherwise the URL must carry a valid, unexpired signature
  (`signing.local_signed_url`, what the playback views and the status API hand out), or the
  user must be allowed by Django's permissions to view videos. Everyone else gets 404, as for
  a video that does not exist.
- With the server's content type, `X-Content-Type-Options: nosniff` and a sandboxing
  Content-Security-Policy, so no stored byte can run as a page on the site's origin.
- MP4 downloads (`videos/<id>/downloads/<rung>.mp4`) as attachments, named after the video.
"""

import posixpath
import re

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.utils.cache import patch_cache_control

from transcoding import access
from transcoding.conf import settings
from transcoding.models import Video
from transcoding.storage import signing
from transcoding.storage.backends import serve_media
from transcoding.storage.content_types import (
    SERVED_FILE_HEADERS,
    attachment_disposition,
    is_download,
    output_type,
)

SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


def protect(response):
    """The headers every stored file Django serves carries (`content_types.SERVED_FILE_HEADERS`)."""
    for name, value in SERVED_FILE_HEADERS.items():
        response.headers[name] = value
    return response


def _output_owner(key: str) -> int | None:
    """The video id whose prefix holds `key`, for an output key; None for anything else."""
    root = settings.OUTPUT_PREFIX.strip("/")
    if not SAFE_KEY.fullmatch(key) or posixpath.normpath(key) != key or ".." in key.split("/"):
        return None
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != root or not parts[1].isdigit() or output_type(key) is None:
        return None
    return int(parts[1])


def _allowed(request, key: str, owner: int) -> tuple[bool, bool]:
    """(may be served, may be cached publicly)."""
    query = request.GET
    if "signature" in query:
        return signing.local_signature_valid(key, query.get("expires"), query.get("signature")), False
    video = Video.objects.filter(pk=owner).first()
    if video is None:
        return access.sees_every_video(request.user), False
    if access.is_public(video):
        return True, True
    return access.may_fetch_files(request.user, video), False


def serve(request, path: str):
    owner = _output_owner(path) if serve_media() else None
    if owner is None:
        raise Http404("No such file.")
    allowed, public = _allowed(request, path, owner)
    if not allowed:
        raise Http404("No such file.")
    try:
        handle = default_storage.open(path, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise Http404("No such file.")
    response = FileResponse(handle, content_type=output_type(path))
    protect(response)
    if is_download(path):
        title = Video.objects.filter(pk=owner).values_list("title", flat=True).first() or ""
        response.headers["Content-Disposition"] = attachment_disposition(title, path.rsplit("/", 1)[1][:-4])
    growing = path.endswith((".m3u8", ".mpd"))  # EVENT playlists grow while the encode runs
    if public:
        patch_cache_control(response, public=True, max_age=1 if growing else 3600)
    else:
        patch_cache_control(response, private=True, max_age=1 if growing else 60)
    return response
