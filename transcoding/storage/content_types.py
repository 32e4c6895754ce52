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


def output_type(key: str) -> str | None:
    """The media type of an output file, by the extension the server gave it; None for a file
    that is not an output."""
    return OUTPUT_TYPES.get(posixpath.splitext(key)[1].lower())


def object_headers(key: str, *, output: bool) -> dict[str, str]:
    """S3 object parameters for a key: its media type when it is an output, else a download."""
    media_type = output_type(key) if output else None
    if media_type:
        return {"ContentType": media_type}
    return {"ContentType": DOWNLOAD_TYPE, "ContentDisposition": "attachment"}
