"""The content type and disposition of every stored file, decided by the server from the names
it chose, never from what a client sent.

Outputs (manifests, segments, init sections, sprite sheets, the poster, WebVTT) are media a
player or an image tag reads: each gets its media type. Everything else in the storage
(originals, uploaded subtitle files, anything unexpected) is a download: a neutral type and
`attachment`, so a browser never renders it, whatever its bytes are. Nothing stored is ever
`text/html` or `image/svg+xml`. Used when S3 objects are written (`storage_backends`), when
Django serves local files (`web.media_views`) and in presigned download URLs (`storage.signing`).
"""

import posixpath
import unicodedata
from urllib.parse import quote

from django.utils.text import slugify

OUTPUT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}
DOWNLOAD_TYPE = "application/octet-stream"
# Headers on every stored file Django serves: the browser keeps the declared type (no sniffing),
# and should it render one anyway, it runs in a sandbox with nothing allowed.
SERVED_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


# MP4 downloads live in this directory of a video's prefix (`videos/<id>/downloads/720p.mp4`):
# served as attachments wherever they are served from.
DOWNLOADS_DIR = "downloads"
DOWNLOAD_MEDIA_TYPE = "video/mp4"
FILENAME_TITLE_CHARS = 80


def is_download(key: str) -> bool:
    """An MP4 download: `<outputs>/<id>/downloads/<name>.mp4`."""
    parts = key.split("/")
    return len(parts) == 4 and parts[2] == DOWNLOADS_DIR and parts[3].endswith(".mp4")


def download_filename(title: str, rung: str, *, ascii_only: bool = True) -> str:
    """`<slug of the title>-<rung>.mp4`: letters, digits and hyphens only (ASCII, or any
    script with `ascii_only=False`), so no quote, slash or control character reaches a header
    or a file system; "video" when the title leaves nothing."""
    slug = slugify(title, allow_unicode=not ascii_only)[:FILENAME_TITLE_CHARS].strip("-_") or "video"
    return f"{slug}-{rung}.mp4"


def attachment_disposition(title: str, rung: str) -> str:
    """Content-Disposition of a download (RFC 6266): an ASCII `filename` every client reads,
    and `filename*` (RFC 5987, UTF-8) when the title has letters outside ASCII."""
    plain = download_filename(title, rung)
    header = f'attachment; filename="{plain}"'
    full = download_filename(unicodedata.normalize("NFC", title), rung, ascii_only=False)
    if full != plain:
        header += f"; filename*=UTF-8''{quote(full, safe='')}"
    return header


def output_type(key: str) -> str | None:
    """The media type of an output file, by the extension the server gave it; None for a file
    that is not an output."""
    return OUTPUT_TYPES.get(posixpath.splitext(key)[1].lower())


def object_headers(key: str, *, output: bool) -> dict[str, str]:
    """S3 object parameters for a key: its media type when it is an output, else a download."""
    media_type = output_type(key) if output else None
    if media_type and is_download(key):
        # Fetched by a plain URL (a public bucket, a CDN): still saved, never played inline.
        return {"ContentType": media_type, "ContentDisposition": "attachment"}
    if media_type:
        return {"ContentType": media_type}
    return {"ContentType": DOWNLOAD_TYPE, "ContentDisposition": "attachment"}
