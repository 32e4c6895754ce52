"""Presets: a ladder of rungs and the encoder settings a video is encoded with."""

from django.contrib import admin

from transcoding.admin.display import bitrate, shown
from transcoding.admin.inlines import PresetRungInline
from transcoding.models import Preset


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    inlines = [PresetRungInline]
    list_display = [
        "name",
        "is_default",
        "ladder",
        "x264_preset",
        "audio_bitrate_text",
        "generate_subtitles",
        "download_rungs",
    ]
    search_fields = ["name"]

    class Media:
        css = {"all": ["transcoding/admin.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("rungs")

    @admin.display(description="Ladder")
    def ladder(self, obj):
        return " · ".join(f"{r.height}p {bitrate(r.max_bitrate)}" for r in obj.rungs.all()) or "–"

    audio_bitrate_text = shown("audio_bitrate", "Audio", bitrate, ordering="audio_bitrate")
