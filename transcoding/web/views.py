"""Thin views: the player pages and the JSON status API."""

from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render

from transcoding import selectors, video_urls


def _visible_video(request, pk):
    return get_object_or_404(selectors.with_parts(selectors.videos_visible_to(request.user)), pk=pk)


def _with_csp(response, *, embeddable: bool):
    """A strict Content-Security-Policy: the player needs nothing but this site and where the
    media comes from (MEDIA_URL's origin, the public CDN base URL, the S3 endpoint or custom
    domain that presigned URLs name: `video_urls.media_origins`): no inline script, no script
    CDN. MSE plays from blob: URLs."""
    media = " ".join(["'self'", *video_urls.media_origins()])
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} data: blob:",
            f"media-src {media} blob:",
            f"connect-src {media}",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            f"frame-ancestors {'*' if embeddable else chr(39) + 'self' + chr(39)}",
        ]
    )
    return response


def _player_context(request, video):
    fmt = "dash" if request.GET.get("format") == "dash" else "hls"
    status = selectors.video_status(video)
    return {
        "video": video,
        "status": status,
        "format": fmt,
        "status_id": f"video-status-{video.pk}",
        # Link previews fetch the image later, from elsewhere: only a public video's poster.
        "og_image": request.build_absolute_uri(status["poster_url"])
        if status["poster_url"] and not video.private
        else None,
    }


def video_list(request):
    page = Paginator(selectors.videos_published(), 24).get_page(request.GET.get("page"))
    for video in page:
        video.poster_url = selectors.poster_url(video)
    return _with_csp(render(request, "transcoding/video_list.html", {"page": page}), embeddable=False)


def player(request, pk):
    video = _visible_video(request, pk)
    response = render(request, "transcoding/player.html", _player_context(request, video))
    return _with_csp(response, embeddable=False)


def embed(request, pk):
    video = _visible_video(request, pk)
    response = render(request, "transcoding/embed.html", _player_context(request, video))
    response.xframe_options_exempt = True
    return _with_csp(response, embeddable=True)


def api_video(request, pk):
    return JsonResponse(selectors.video_status(_visible_video(request, pk)))


def api_video_list(request):
    """`?ids=1,2,3`: several statuses in one request, for the admin's live updates."""
    try:
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip()][:100]
    except ValueError:
        raise Http404("ids must be a comma-separated list of integers")
    videos = selectors.with_parts(selectors.videos_visible_to(request.user).filter(pk__in=ids))
    return JsonResponse({"videos": [selectors.video_status(v) for v in videos]})
