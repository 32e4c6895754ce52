"""The video document as the API shows it, and what a client may send.

`VideoSerializer` is read-only and renders `selectors.video_document`, the one builder of the
document (the webhooks send the same one); its declared fields exist for the OpenAPI schema,
so the schema and the JSON cannot drift apart unnoticed (tests compare them). Input
serializers validate everything a client sends, with bounds on every number.
"""

from rest_framework import serializers

from transcoding import selectors
from transcoding.conf import settings
from transcoding.models import PartKind, PartStatus, Preset, Video, VideoStatus

PART_CHOICES = [k.value for k in PartKind]


class SourceSerializer(serializers.Serializer):
    size = serializers.IntegerField(allow_null=True, help_text="Bytes.")
    sha256 = serializers.CharField(allow_null=True, help_text="Computed by the server.")
    container = serializers.CharField(allow_null=True)
    video_codec = serializers.CharField(allow_null=True)
    audio_codec = serializers.CharField(allow_null=True)
    fps = serializers.FloatField(allow_null=True)


class PartFields(serializers.Serializer):
    status = serializers.ChoiceField(choices=PartStatus.choices)


class RenditionSerializer(PartFields):
    name = serializers.CharField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    bitrate = serializers.IntegerField(allow_null=True, help_text="Bits per second.")
    codec = serializers.CharField(allow_null=True)
    progress = serializers.IntegerField(min_value=0, max_value=100)
    error = serializers.CharField(allow_blank=True)


class AudioSerializer(PartFields):
    codec = serializers.CharField(allow_null=True)
    bitrate = serializers.IntegerField(allow_null=True)


class StoryboardSerializer(PartFields):
    vtt_url = serializers.CharField(allow_null=True)
    image_urls = serializers.ListField(child=serializers.CharField())


class SubtitleSerializer(PartFields):
    language = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=["subtitles", "captions"])
    vtt_url = serializers.CharField(allow_null=True)
    default = serializers.BooleanField()


class VideoSerializer(serializers.Serializer):
    """The document of `/api/videos/<id>/` (DESIGN.md), plus the editable fields."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.ChoiceField(choices=VideoStatus.choices)
    playable = serializers.BooleanField(help_text="At least one rendition can be played.")
    progress = serializers.IntegerField(min_value=0, max_value=100)
    error = serializers.CharField(allow_blank=True)
    duration = serializers.FloatField(allow_null=True, help_text="Seconds.")
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    source = SourceSerializer()
    renditions = RenditionSerializer(many=True)
    audio = AudioSerializer(allow_null=True)
    hls_url = serializers.CharField(allow_null=True)
    dash_url = serializers.CharField(allow_null=True)
    poster_url = serializers.CharField(allow_null=True)
    storyboard = StoryboardSerializer()
    subtitles = SubtitleSerializer(many=True)
    download_urls = serializers.DictField(
        child=serializers.CharField(), help_text="MP4 downloads by rung name, when made."
    )
    description = serializers.CharField(allow_blank=True)
    published = serializers.BooleanField()
    private = serializers.BooleanField()
    preset = serializers.CharField(allow_null=True)
    poster_time = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance):
        document = selectors.video_document(instance)
        document.setdefault("download_urls", {})
        return document


class VideoUpdateSerializer(serializers.ModelSerializer):
    """PATCH (or PUT) /api/v1/videos/<id>/: the fields a client may change."""

    preset = serializers.SlugRelatedField(
        slug_field="name", queryset=Preset.objects.all(), allow_null=True, required=False
    )
    poster_time = serializers.FloatField(
        min_value=0, max_value=settings.MAX_DURATION_SECONDS, allow_null=True, required=False
    )

    class Meta:
        model = Video
        fields = ["title", "description", "published", "private", "poster_time", "preset", "speech_language"]
        extra_kwargs = {"description": {"max_length": 10_000}}


class VideoDetailsSerializer(serializers.Serializer):
    """A new video's details, sent with an import (and an upload)."""

    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    preset = serializers.SlugRelatedField(
        slug_field="name", queryset=Preset.objects.all(), allow_null=True, required=False, default=None
    )
    published = serializers.BooleanField(default=False)
    private = serializers.BooleanField(required=False, allow_null=True, default=None)


class ImportSerializer(VideoDetailsSerializer):
    url = serializers.URLField(
        max_length=2000,
        help_text="https only by default; internal addresses are refused after every redirect.",
    )


class ReprocessSerializer(serializers.Serializer):
    parts = serializers.ListField(
        child=serializers.ChoiceField(choices=PART_CHOICES),
        required=False,
        allow_empty=False,
        max_length=len(PART_CHOICES),
        help_text="Which parts to make again (default: every part the encode makes).",
    )
    force = serializers.BooleanField(default=False, help_text="Cancel work in progress and start over.")


class DownloadsSerializer(serializers.Serializer):
    rungs = serializers.ListField(
        child=serializers.CharField(max_length=16),
        required=False,
        allow_empty=False,
        max_length=20,
        help_text="Rung names such as 720p (default: the preset's choice, else the highest rung).",
    )
    force = serializers.BooleanField(default=False, help_text="Make them again even if they exist.")


class VideoFilterSerializer(serializers.Serializer):
    """The list's query parameters."""

    status = serializers.ChoiceField(choices=VideoStatus.choices, required=False)
    published = serializers.BooleanField(required=False, allow_null=True, default=None)
    private = serializers.BooleanField(required=False, allow_null=True, default=None)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    search = serializers.CharField(required=False, max_length=200, help_text="Words in the title.")
