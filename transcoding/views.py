"""Thin views: the player pages and the JSON status API."""

from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render

from . import selectors


def _visible_video(request, pk):
    return get_object_or_404(selectors.videos_visible_to(request.user), pk=pk)


def video_list(request):
    page = Paginator(selectors.videos_published(), 24).get_page(request.GET.get("page"))
    for video in page:
        video.poster_url = selectors.poster_url(video)
    return render(request, "transcoding/video_list.html", {"page": page})


def player(request, pk):
    video = _visible_video(request, pk)
    return render(
        request, "transcoding/player.html", {"video": video, "status": selectors.video_status(video)}
    )


def embed(request, pk):
    video = _visible_video(request, pk)
    response = render(
        request, "transcoding/embed.html", {"video": video, "status": selectors.video_status(video)}
    )
    response.xframe_options_exempt = True
    return response


def api_video(request, pk):
    return JsonResponse(selectors.video_status(_visible_video(request, pk)))


def api_video_list(request):
    """`?ids=1,2,3`: several statuses in one request, for the admin's live updates."""
    try:
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip()][:100]
    except ValueError:
        raise Http404("ids must be a comma-separated list of integers")
    videos = selectors.videos_visible_to(request.user).filter(pk__in=ids)
    return JsonResponse({"videos": [selectors.video_status(v) for v in videos]})
