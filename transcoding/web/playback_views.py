"""Signed playback (docs/private-playback.md): the manifests of a video, fetched through Django
so that access is checked on every fetch (published, or staff, as for the player page; others
get 404) and every file they name is a short-lived presigned URL. Media bytes never pass
through Django; neither does the original, which staff download by a presigned redirect.

URLs mirror the stored layout, so relative URIs keep working:
`/videos/<id>/play/master.m3u8`, `.../<rendition>/index.m3u8`, `.../manifest.mpd`,
`.../storyboard.vtt`, `.../subtitles/<lang>-<kind>.vtt` and `.../subtitles/<lang>-<kind>/index.m3u8`.
"""

import posixpath

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.cache import patch_cache_control, patch_vary_headers

from transcoding import access, selectors
from transcoding.media import manifest_rewrite
from transcoding.models import PartStatus, Rendition, Storyboard, Subtitle, Video
from transcoding.storage import signing
from transcoding.storage.backends import media_store
from transcoding.storage.content_types import DOWNLOAD_TYPE
from transcoding.web.media_views import protect

HLS_TYPE = "application/vnd.apple.mpegurl"
DASH_TYPE = "application/dash+xml"
VTT_TYPE = "text/vtt; charset=utf-8"


def _playable(request, pk) -> Video:
    video = get_object_or_404(selectors.videos_visible_to(request.user), pk=pk)
    if not video.playable:
        raise Http404("This video is not playable yet.")
    return video


def _read(key: str) -> str:
    if not key:
        raise Http404("No such file.")
    try:
        with default_storage.open(key, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        raise Http404("No such file.")


def _respond(text: str, content_type: str, signer: signing.UrlSigner) -> HttpResponse:
    """A manifest response: private (per viewer), cached for less than its URLs live; an EVENT
    playlist (still growing while the encode runs) only for a second, so the player's reloads
    see new segments."""
    response = HttpResponse(text, content_type=content_type)
    growing = "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    patch_cache_control(response, private=True, max_age=1 if growing else signer.seconds // 2)
    patch_vary_headers(response, ["Cookie"])
    return response


def _rewrite(function, *args):
    try:
        return function(*args)
    except manifest_rewrite.ManifestError as exc:
        raise Http404(str(exc))


def _track(language_kind: str) -> tuple[str, str]:
    language, _, kind = language_kind.rpartition("-")
    if not language or kind not in Subtitle.Kind.values:
        raise Http404("No such subtitle track.")
    return language, kind


def master(request, pk):
    video = _playable(request, pk)
    signer = signing.video_signer(video)
    urls = {
        r.playlist_path: reverse("transcoding:play-rendition", args=[video.pk, r.name])
        for r in video.renditions.exclude(playlist_path="")
    }
    for s in video.subtitles.exclude(playlist_path=""):
        track = f"{s.language}-{s.kind}"
        urls[s.playlist_path] = reverse("transcoding:play-subtitle-playlist", args=[video.pk, track])
    base = posixpath.dirname(video.hls_path)
    text = _rewrite(manifest_rewrite.rewrite_master_playlist, _read(video.hls_path), base, urls.__getitem__)
    return _respond(text, HLS_TYPE, signer)


def _media_playlist(video: Video, key: str) -> HttpResponse:
    signer = signing.video_signer(video)
    text = _rewrite(manifest_rewrite.rewrite_media_playlist, _read(key), posixpath.dirname(key), signer)
    return _respond(text, HLS_TYPE, signer)


# A rung's playlist is served once published: ready, or growing while the encode runs
# (`encoding.live` publishes queued and running rungs as EVENT playlists, and the master names
# them), so a private video plays while it encodes, as a public one does.
SERVED_RUNGS = (PartStatus.READY, PartStatus.RUNNING, PartStatus.QUEUED)


def rendition_playlist(request, pk, name):
    video = _playable(request, pk)
    rungs = Rendition.objects.filter(video=video, name=name, status__in=SERVED_RUNGS).exclude(
        playlist_path=""
    )
    rendition = get_object_or_404(rungs)
    return _media_playlist(video, rendition.playlist_path)


def subtitle_playlist(request, pk, track):
    video = _playable(request, pk)
    language, kind = _track(track)
    subtitle = get_object_or_404(Subtitle, video=video, language=language, kind=kind, status=PartStatus.READY)
    return _media_playlist(video, subtitle.playlist_path)


def subtitle_vtt(request, pk, track):
    """The whole track (no URIs inside: served as stored)."""
    video = _playable(request, pk)
    language, kind = _track(track)
    subtitle = get_object_or_404(Subtitle, video=video, language=language, kind=kind, status=PartStatus.READY)
    signer = signing.video_signer(video)
    signer.check(subtitle.vtt_path)
    return _respond(_read(subtitle.vtt_path), VTT_TYPE, signer)


def mpd(request, pk):
    video = _playable(request, pk)
    signer = signing.video_signer(video)
    base = posixpath.dirname(video.dash_path)
    text = _rewrite(manifest_rewrite.rewrite_mpd, _read(video.dash_path), base, signer)
    return _respond(text, DASH_TYPE, signer)


def storyboard(request, pk):
    video = get_object_or_404(selectors.videos_visible_to(request.user), pk=pk)
    board = get_object_or_404(Storyboard, video=video, status=PartStatus.READY)
    signer = signing.video_signer(video)
    base = posixpath.dirname(board.vtt_path)
    at = video.duration or 0.0  # a thumbnail is wanted wherever the viewer hovers
    text = _rewrite(manifest_rewrite.rewrite_storyboard_vtt, _read(board.vtt_path), base, signer, at)
    return _respond(text, VTT_TYPE, signer)


def original(request, pk):
    """Users allowed to view videos only: the original as a download (attachment, named as
    uploaded, a neutral content type: never rendered by the browser, whatever its bytes). With
    S3 a redirect to a presigned URL, so the bytes never pass through Django; on local
    storage Django streams the file."""
    if not access.sees_every_video(request.user):
        raise Http404("No such video.")
    video = get_object_or_404(Video, pk=pk)
    if not video.source:
        raise Http404("This video has no original.")
    if media_store().remote:
        response = HttpResponseRedirect(signing.original_url(video))
    else:
        try:
            handle = default_storage.open(video.source.name, "rb")
        except FileNotFoundError:
            raise Http404("The original is missing from storage.")
        response = FileResponse(handle, content_type=DOWNLOAD_TYPE)
        response.headers["Content-Disposition"] = signing.download_disposition(video)
        protect(response)
    patch_cache_control(response, private=True, no_store=True)
    return response
