"""Which URL each of a video's files gets, for the status document, the player pages and the
admin (docs/private-playback.md):

- A **public** video (`access.is_public`) is fetched by plain URLs: `TRANSCODING_PUBLIC_BASE_URL`
  + key (a CDN) when set, otherwise the storage's own URLs.
- Any other video (private, unpublished, or playing the outputs of a video that is not public)
  is played through `web.playback_views`: Django checks access and serves its manifests
  rewritten so every file they name is a signed URL that expires (`storage.signing`). A public
  video whose storage only has expiring URLs (a private bucket and no public base URL) is
  served the same way, since relative URIs inside a manifest cannot inherit its signature.

MP4 downloads (docs/downloads.md) follow the same rule: a public video's is its plain URL
(served as an attachment by `/media/`, or by S3 and a CDN from the object's own headers); any
other's is the download view, `/videos/<id>/download/<rung>.mp4`, with a signature and an
expiry, which streams the file or redirects to a short-lived presigned URL.
"""

from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.encoding import filepath_to_uri

from transcoding import access
from transcoding.conf import settings
from transcoding.models import RUNG_NAME, Download, PartStatus, Poster, Storyboard, Video
from transcoding.storage.backends import media_store
from transcoding.storage.signing import signed_query, signed_url_seconds, video_signer


def served_signed(video: Video) -> bool:
    return not access.is_public(video) or (not settings.PUBLIC_BASE_URL and media_store().signs_urls)


def public_url(key: str) -> str:
    base = settings.PUBLIC_BASE_URL
    if base:
        return f"{base.rstrip('/')}/{filepath_to_uri(key)}"
    return default_storage.url(key)


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def media_origins() -> list[str]:
    """Origins other than this site that a player page may fetch media from: MEDIA_URL's, the
    public base URL's, and the storage's (the S3 endpoint, bucket host or custom domain, read
    off a URL the storage makes, so whatever addressing style it uses is covered)."""
    origins = [_origin(django_settings.MEDIA_URL), _origin(settings.PUBLIC_BASE_URL)]
    try:
        origins.append(_origin(default_storage.url(f"{settings.OUTPUT_PREFIX}/0/origin")))
    except Exception:  # a storage that cannot make URLs: nothing to allow
        pass
    return list(dict.fromkeys(o for o in origins if o))


# --- the URLs of the status document ----------------------------------------------------------
def _track(subtitle) -> str:
    return f"{subtitle.language}-{subtitle.kind}"


class VideoUrls:
    """The URLs `video_status` hands out for one video (None for what does not exist)."""

    def __init__(self, video: Video):
        self.video = video
        self.signed = served_signed(video)
        self._signer = None

    def sign(self, key: str, at: float = 0.0) -> str:
        if self._signer is None:  # made on first use: it reads which prefixes the video uses
            self._signer = video_signer(self.video)
        return self._signer(key, at)

    def _view(self, name: str, *args) -> str:
        return reverse(f"transcoding:{name}", args=[self.video.pk, *args])

    def _file(self, key: str, at: float = 0.0) -> str | None:
        if not key:
            return None
        return self.sign(key, at) if self.signed else public_url(key)

    def hls(self) -> str | None:
        if not self.video.hls_path:
            return None
        return self._view("play-master") if self.signed else public_url(self.video.hls_path)

    def dash(self) -> str | None:
        if not self.video.dash_path:
            return None
        return self._view("play-mpd") if self.signed else public_url(self.video.dash_path)

    def poster(self, poster: Poster | None) -> str | None:
        if poster is None or poster.status != PartStatus.READY:
            return None
        return self._file(poster.path)

    def storyboard_vtt(self, storyboard: Storyboard) -> str | None:
        if not storyboard.vtt_path:
            return None
        return self._view("play-storyboard") if self.signed else public_url(storyboard.vtt_path)

    def image(self, key: str) -> str | None:
        return self._file(key, self.video.duration or 0.0)

    def subtitle_vtt(self, subtitle) -> str | None:
        if not subtitle.vtt_path:
            return None
        if self.signed:
            return self._view("play-subtitle", _track(subtitle))
        return public_url(subtitle.vtt_path)

    def download(self, download: Download) -> str | None:
        """A ready download's URL: plain for a public video, else the signed download view."""
        if download.status != PartStatus.READY or not download.path:
            return None
        if not self.signed:
            return public_url(download.path)
        view = self._view("download", download.name)
        return f"{view}?{signed_query(download.path, signed_url_seconds())}"

    def downloads(self, downloads) -> dict[str, str]:
        """{"720p": url, ...} of the ready downloads, highest rung first."""
        ready = [(d.name, self.download(d)) for d in downloads]
        height = {d.name: int(d.name[:-1]) if RUNG_NAME.match(d.name) else 0 for d in downloads}
        return dict(sorted((item for item in ready if item[1]), key=lambda item: -height[item[0]]))
