"""Uploads through the API (/api/v1/uploads/): one resumable protocol over both storages,
thin views over `ingest.uploads` (docs/uploads-api.md is the user's guide).

    POST   /uploads/                      start: {filename, size, video fields} -> the upload
    GET    /uploads/<id>/                 the upload and the parts stored so far (to resume)
    POST   /uploads/<id>/parts/sign/      S3: presigned PUT URLs for some part numbers
    PUT    /uploads/<id>/parts/<n>/       local: part n's bytes as the request body
    POST   /uploads/<id>/complete/        the video (201; 200 with the same video again)
    DELETE /uploads/<id>/                 abort: every stored part removed

Starting, sending parts, completing and aborting need a write key and the add-video
permission. An upload is its starter's: any other id is a 404. Refusals are problems with
one line and `resumable` (true: the upload is still there, fix it and go on).

A part's body is never parsed: the view hands the raw request stream to the service, which
reads it in chunks (so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies), whatever the
Content-Type (curl's --data-binary sends a form type). Part PUTs have their own rate
(`UPLOAD_PART_RATE`), not the write rate: a 50 GiB upload is thousands of them.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from transcoding import services
from transcoding.api import problems
from transcoding.api.serializers import VideoSerializer, VideoUpdateSerializer
from transcoding.api.throttling import WriteRateThrottle
from transcoding.conf import settings
from transcoding.ingest import uploads
from transcoding.ingest.direct_uploads import MAX_PARTS, MAX_SIGN_BATCH, UploadError, part_count
from transcoding.models import PendingUpload, Video

DETAIL_FIELDS = list(VideoUpdateSerializer.Meta.fields)


# --- serializers ------------------------------------------------------------------------------
class UploadCreateSerializer(VideoUpdateSerializer):
    """The file (its name, a label only, and its size) and the new video's fields (all
    optional; the title is the file's name without one), checked now, used at completion."""

    filename = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, default="", trim_whitespace=False
    )
    size = serializers.IntegerField(help_text="Bytes, at most TRANSCODING_MAX_UPLOAD_BYTES.")

    class Meta(VideoUpdateSerializer.Meta):
        fields = ["filename", "size", *VideoUpdateSerializer.Meta.fields]
        extra_kwargs = {**VideoUpdateSerializer.Meta.extra_kwargs, "title": {"required": False}}


class UploadPartSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    size = serializers.IntegerField()
    etag = serializers.CharField(allow_null=True, help_text="S3: the part's ETag.")
    sha256 = serializers.CharField(allow_null=True, help_text="Local: the SHA-256 the site computed.")


class TransferSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=PendingUpload.Mode.choices)
    method = serializers.CharField(help_text="How each part is sent: PUT.")
    part_url = serializers.CharField(
        allow_null=True, help_text="local: PUT part {number} (from 1) here, its bytes as the body."
    )
    sign_url = serializers.CharField(
        allow_null=True, help_text="s3: POST {part_numbers} here for each part's presigned PUT URL."
    )


class UploadSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["receiving", "completing", "completed"])
    mode = serializers.ChoiceField(choices=PendingUpload.Mode.choices)
    filename = serializers.CharField(allow_blank=True)
    size = serializers.IntegerField()
    part_size = serializers.IntegerField(help_text="Every part's size but the last (the remainder).")
    part_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="Not completed by then, it may be removed.")
    transfer = TransferSerializer()
    parts = UploadPartSerializer(many=True, help_text="The parts stored so far.")
    missing = serializers.ListField(child=serializers.IntegerField(), help_text="Part numbers still to send.")
    complete_url = serializers.CharField()
    video = serializers.IntegerField(allow_null=True, help_text="The video it became, once completed.")
    video_url = serializers.CharField(allow_null=True)


class SignSerializer(serializers.Serializer):
    part_numbers = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_PARTS),
        min_length=1,
        max_length=MAX_SIGN_BATCH,
    )


class SignedSerializer(serializers.Serializer):
    method = serializers.CharField()
    urls = serializers.DictField(child=serializers.CharField(), help_text="Part number -> presigned URL.")
    expires_in = serializers.IntegerField(help_text="Seconds each URL stays valid.")


class CompletedPartSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=1, max_value=MAX_PARTS)
    etag = serializers.CharField(max_length=200)


class CompleteSerializer(serializers.Serializer):
    parts = serializers.ListField(
        child=CompletedPartSerializer(),
        required=False,
        max_length=MAX_PARTS,
        help_text="S3: every part's number and ETag (omitted: S3's own list). Local: nothing.",
    )


class RawPartParser(parsers.BaseParser):
    """Names the part's body in the schema; never called (the view streams the body)."""

    media_type = "application/octet-stream"


class PartRateThrottle(WriteRateThrottle):
    scope = "upload-part"

    def get_rate(self):
        return settings.UPLOAD_PART_RATE


# --- the document -----------------------------------------------------------------------------
def upload_document(request, upload: PendingUpload, parts: list[dict] | None = None) -> dict:
    detail = request.build_absolute_uri(reverse("api:upload-detail", args=[upload.public_id]))
    local = upload.mode == PendingUpload.Mode.LOCAL
    parts = uploads.upload_received(upload) if parts is None else parts
    received = {p["number"] for p in parts}
    done = upload.completed_at is not None
    return {
        "id": upload.public_id,
        "status": uploads.status(upload),
        "mode": upload.mode,
        "filename": upload.filename,
        "size": upload.size,
        "part_size": upload.part_size,
        "part_count": part_count(upload),
        "created_at": upload.created_at,
        "expires_at": uploads.expires_at(upload),
        "transfer": {
            "mode": upload.mode,
            "method": "PUT",
            "part_url": f"{detail}parts/{{number}}/" if local else None,
            "sign_url": None if local else f"{detail}parts/sign/",
        },
        "parts": parts,
        "missing": [] if done else [n for n in range(1, part_count(upload) + 1) if n not in received],
        "complete_url": f"{detail}complete/",
        "video": upload.video_id,
        "video_url": _video_path(upload.video_id) if upload.video_id else None,
    }


def _video_path(pk: int) -> str:
    return reverse("api:video-detail", args=[pk])


def _details(data: dict) -> dict:
    return {name: data[name] for name in DETAIL_FIELDS if name in data}


def _refusal(serializer, *, resumable: bool = False) -> UploadError:
    """A serializer's first error as the one line of a refusal."""
    field, detail = next(iter(serializer.errors.items()))
    while isinstance(detail, (list, dict)) and detail:
        if isinstance(detail, dict):
            field, detail = next(iter(detail.items()))  # nested: the innermost field names it
        else:
            detail = detail[0]
    message = " ".join(str(detail).split())
    prefix = "" if field in ("non_field_errors", "detail") or not isinstance(field, str) else f"{field}: "
    return UploadError(f"{prefix}{message}", resumable=resumable)


# --- the views --------------------------------------------------------------------------------
UPLOAD_ID = OpenApiParameter(
    "id", str, OpenApiParameter.PATH, description="The upload's id (32 hex digits).", pattern="^[0-9a-f]{32}$"
)


@extend_schema_view(
    create=extend_schema(
        summary="Start an upload", request=UploadCreateSerializer, responses={201: UploadSerializer}
    ),
    retrieve=extend_schema(summary="An upload and its parts so far", parameters=[UPLOAD_ID]),
    destroy=extend_schema(summary="Abort an upload: every stored part removed", parameters=[UPLOAD_ID]),
)
class UploadViewSet(viewsets.GenericViewSet):
    serializer_class = UploadSerializer
    queryset = PendingUpload.objects.none()
    lookup_value_regex = "[0-9a-f]{32}"
    required_permission = "transcoding.add_video"

    def get_object(self) -> PendingUpload:
        return uploads.upload_of(self.request.user, self.kwargs.get("pk"))

    def handle_exception(self, exc):
        if isinstance(exc, UploadError):
            return problems.problem(exc.status, str(exc), resumable=exc.resumable)
        return super().handle_exception(exc)

    def create(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        body = UploadCreateSerializer(data=request.data)
        if not body.is_valid():
            if isinstance(data.get("size"), int):
                uploads.size_check(data["size"])  # over the limit is a 413, whatever else is wrong
            raise _refusal(body)
        upload = uploads.upload_start(
            user=request.user,
            filename=body.validated_data["filename"],
            size=body.validated_data["size"],
            details=_details(data),
        )
        location = reverse("api:upload-detail", args=[upload.public_id])
        return Response(
            upload_document(request, upload, parts=[]), status=201, headers={"Location": location}
        )

    def retrieve(self, request, pk=None):
        return Response(upload_document(request, self.get_object()))

    def destroy(self, request, pk=None):
        uploads.upload_abort(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="S3: presigned URLs for parts", parameters=[UPLOAD_ID], request=SignSerializer,
        responses=SignedSerializer,
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="parts/sign", url_name="sign")
    def sign(self, request, pk=None):
        upload = self.get_object()
        body = SignSerializer(data=request.data)
        if not body.is_valid():
            raise _refusal(body)
        urls = uploads.upload_sign(upload, body.validated_data["part_numbers"])
        return Response(
            {
                "method": "PUT",
                "urls": {str(n): u for n, u in urls.items()},
                "expires_in": settings.UPLOAD_URL_SECONDS,
            }
        )

    @extend_schema(
        summary="Local storage: send one part",
        parameters=[
            UPLOAD_ID,
            OpenApiParameter("number", int, OpenApiParameter.PATH, description="From 1 to part_count."),
            OpenApiParameter(
                "Content-Digest", str, OpenApiParameter.HEADER,
                description="Optional, RFC 9530: sha-256=:<base64>: of the part; checked.",
            ),
        ],
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={200: UploadPartSerializer, 413: OpenApiResponse(description="Larger than its size.")},
    )  # fmt: skip
    @action(
        detail=True,
        methods=["put"],
        url_path=r"parts/(?P<number>(?!sign/)[^/.]+)",
        url_name="part",
        parser_classes=[RawPartParser],
        throttle_classes=[PartRateThrottle],
    )
    def part(self, request, pk=None, number=None):
        upload = self.get_object()
        try:
            length = int(request.META["CONTENT_LENGTH"])
        except (KeyError, TypeError, ValueError):
            length = None
        stream = request.stream if length else None
        part = uploads.upload_put_part(upload, number, stream, length, request.headers.get("Content-Digest"))
        return Response(part)

    @extend_schema(
        summary="Complete: the video is made and queued",
        parameters=[UPLOAD_ID],
        request=CompleteSerializer,
        responses={201: VideoSerializer, 200: VideoSerializer},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        upload = self.get_object()
        body = CompleteSerializer(data=request.data)
        if not body.is_valid():
            raise _refusal(body, resumable=True)
        video = None if upload.completed_at else self._new_video(request, upload)
        video, created = uploads.upload_finish(
            upload,
            video=video,
            parts=body.validated_data.get("parts"),
            then=services.video_request_processing,
        )
        return Response(
            VideoSerializer(video).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={"Location": _video_path(video.pk)},
        )

    @staticmethod
    def _new_video(request, upload: PendingUpload) -> Video:
        """The video's fields as given when the upload started, checked again (a preset may
        have gone meanwhile)."""
        details = UploadCreateSerializer(
            data={**upload.details, "filename": upload.filename, "size": upload.size}
        )
        if not details.is_valid():
            raise _refusal(details, resumable=True)
        fields = {k: v for k, v in details.validated_data.items() if k in DETAIL_FIELDS}
        return Video(**fields, created_by=request.user)
