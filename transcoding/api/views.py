"""Videos through the API: thin views over `selectors` (reads) and `services` (writes).

A client sees the videos `access.videos_visible_to` its user (published ones, its own
uploads, or all with the view permission); any other id is a 404. Lists page by cursor (stable
while videos are added) in a fixed number of queries per page.
"""

from django.db.models import Q
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from transcoding import selectors, services
from transcoding.api.serializers import (
    DownloadsSerializer,
    ImportSerializer,
    ReprocessSerializer,
    VideoFilterSerializer,
    VideoSerializer,
    VideoUpdateSerializer,
)


class VideoCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


def _filters(params) -> Q:
    """The list's query parameters as one Q (validated: a bad value is a 400 problem)."""
    data = VideoFilterSerializer(data=params)
    data.is_valid(raise_exception=True)
    values, query = data.validated_data, Q()
    if "status" in values:
        query &= Q(status=values["status"])
    for flag in ("published", "private"):
        if values.get(flag) is not None:
            query &= Q(**{flag: values[flag]})
    if "created_after" in values:
        query &= Q(created_at__gte=values["created_after"])
    if "created_before" in values:
        query &= Q(created_at__lt=values["created_before"])
    for word in values.get("search", "").split()[:10]:
        query &= Q(title__icontains=word)
    return query


@extend_schema_view(
    list=extend_schema(
        summary="List videos",
        parameters=[VideoFilterSerializer, OpenApiParameter("page_size", int, description="1 to 100")],
    ),
    retrieve=extend_schema(summary="One video's document"),
    partial_update=extend_schema(
        summary="Change a video's details", request=VideoUpdateSerializer, responses=VideoSerializer
    ),
    update=extend_schema(
        summary="Change a video's details", request=VideoUpdateSerializer, responses=VideoSerializer
    ),
    destroy=extend_schema(summary="Delete a video with every output and its original"),
)
class VideoViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = VideoSerializer
    pagination_class = VideoCursorPagination
    # The Django permission a write needs, when not the method's (`permissions.ApiPermission`).
    required_permission = None

    def get_queryset(self):
        videos = selectors.with_parts(selectors.videos_visible_to(self.request.user))
        if self.action == "list":
            videos = videos.filter(_filters(self.request.query_params))
        return videos

    def update(self, request, *args, **kwargs):
        video = self.get_object()
        changes = VideoUpdateSerializer(video, data=request.data, partial=kwargs.get("partial", False))
        changes.is_valid(raise_exception=True)
        services.video_update(video, dict(changes.validated_data))
        return Response(VideoSerializer(self.get_object()).data)

    def perform_destroy(self, instance):
        services.video_delete(instance)

    @extend_schema(
        summary="Import a video from a URL",
        description="The server fetches the file (after checking the address), then encodes it.",
        request=ImportSerializer,
        responses={202: VideoSerializer},
    )
    @action(detail=False, methods=["post"], url_path="import", required_permission="transcoding.add_video")
    def import_url(self, request):
        body = ImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        video = services.video_import_url(user=request.user, **body.validated_data)
        response = Response(
            VideoSerializer(self.get_queryset().get(pk=video.pk)).data, status=status.HTTP_202_ACCEPTED
        )
        response["Location"] = reverse("api:video-detail", args=[video.pk])
        return response

    @extend_schema(summary="Process again", request=ReprocessSerializer, responses={202: VideoSerializer})
    @action(detail=True, methods=["post"])
    def reprocess(self, request, pk=None):
        video = self.get_object()
        body = ReprocessSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.video_request_processing(
            video, parts=body.validated_data.get("parts"), force=body.validated_data["force"]
        )
        return Response(VideoSerializer(self.get_object()).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Make MP4 downloads", request=DownloadsSerializer, responses={202: VideoSerializer}
    )
    @action(detail=True, methods=["post"])
    def downloads(self, request, pk=None):
        """MP4s of chosen rungs, remuxed from the stored segments; `download_urls` in the
        document names them once ready (a `video.ready` webhook follows)."""
        video = self.get_object()
        body = DownloadsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.downloads_request(
            video, body.validated_data.get("rungs"), force=body.validated_data["force"]
        )
        return Response(VideoSerializer(self.get_object()).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Cancel queued and running work", request=None, responses=VideoSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        services.video_cancel(self.get_object())
        return Response(VideoSerializer(self.get_object()).data)
