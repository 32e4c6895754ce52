"""What a video's page lists below its fields (renditions, subtitles, MP4 downloads, the job log)
and a preset's rungs. Renditions, downloads and jobs are read-only: the pipeline writes them."""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from transcoding.admin.display import bitrate, chip, shown
from transcoding.admin.forms import SubtitleForm
from transcoding.models import Download, PresetRung, ProcessingJob, Rendition, Subtitle
from transcoding.video_urls import VideoUrls


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RenditionInline(ReadOnlyInline):
    model = Rendition
    verbose_name_plural = "Renditions (video rungs and audio)"
    fields = readonly_fields = [
        "name", "kind", "status_chip", "progress_text", "width", "height", "bitrate_cap", "average",
        "peak", "written", "cpu_seconds", "error",
    ]  # fmt: skip

    @admin.display(description="Status")
    def status_chip(self, obj):
        return chip(obj.name, obj.status, obj.progress, obj.error, video_id=obj.video_id)

    @admin.display(description="Progress")
    def progress_text(self, obj):
        return format_html(
            '<span data-tc-video="{}" data-tc-progress-of="{}">{}%</span>',
            obj.video_id,
            obj.name,
            obj.progress,
        )

    bitrate_cap = shown("bitrate", "Bitrate cap", bitrate)
    average = shown("average_bitrate", "Average", bitrate)
    peak = shown("peak_bitrate", "Peak", bitrate)
    written = shown("bytes_written", "Written", filesizeformat)


class DownloadInline(ReadOnlyInline):
    model = Download
    verbose_name_plural = "MP4 downloads"
    fields = readonly_fields = [
        "name", "status_chip", "size_text", "duration", "finished_at", "link", "error",
    ]  # fmt: skip

    @admin.display(description="Status")
    def status_chip(self, obj):
        return chip(obj.name, obj.status, obj.progress, obj.error)

    size_text = shown("size", "Size", lambda n: "–" if n is None else filesizeformat(n))

    @admin.display(description="File")
    def link(self, obj):
        url = VideoUrls(obj.video).download(obj)
        return format_html('<a href="{}">Download</a>', url) if url else "–"


class SubtitleInline(admin.TabularInline):
    model = Subtitle
    form = SubtitleForm
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, form=SubtitleForm.for_request(request), **kwargs)

    fields = ["language", "label", "kind", "is_default", "file", "origin", "status_chip"]
    readonly_fields = ["origin", "status_chip"]

    @admin.display(description="Status")
    def status_chip(self, obj):
        return chip(obj.language, obj.status, obj.progress, obj.error) if obj.pk else "–"


class JobInline(ReadOnlyInline):
    model = ProcessingJob
    verbose_name_plural = "Job log"
    fields = readonly_fields = [
        "step", "parts_list", "state", "progress", "attempts", "worker", "started_at", "finished_at", "error",
        "log",
    ]  # fmt: skip

    @admin.display(description="Parts")
    def parts_list(self, obj):
        parts = ", ".join(obj.parts)
        span = obj.options.get("span")
        if not span or span.get("count", 1) == 1:
            return parts
        return (
            f"{parts} · chunk {span['index'] + 1}/{span['count']} ({span['start']:.0f}–{span['end']:.0f} s)"
        )

    @admin.display(description="Attempt")
    def attempts(self, obj):
        return f"{obj.attempt}/{obj.max_attempts}"

    @admin.display(description="Log")
    def log(self, obj):
        if not obj.log_tail:
            return "–"
        return format_html(
            '<details class="tc-log"><summary>tail</summary><pre>{}</pre></details>', obj.log_tail
        )


class PresetRungInline(admin.TabularInline):
    model = PresetRung
    extra = 1
    fields = ["height", "max_bitrate", "crf"]
