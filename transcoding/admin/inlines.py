"""What a video's page lists below its fields (renditions, subtitles, the job log; the MP4
downloads as a table) and a preset's rungs. Renditions, downloads and jobs are read-only: the
pipeline writes them."""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from transcoding.admin.display import bitrate, chip, shown
from transcoding.admin.forms import SubtitleForm
from transcoding.models import PresetRung, ProcessingJob, Rendition, Subtitle
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


def downloads_table(video) -> str:
    """The video's MP4 downloads (status, size, duration, a link), as a read-only field rather
    than an inline: a formset would make every POST of the change form carry its management
    data, and nothing here is edited."""
    rows = list(video.downloads.all()) if video.pk else []
    if not rows:
        return "–"
    urls = VideoUrls(video)
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                d.name,
                chip(d.name, d.status, d.progress, d.error),
                "–" if d.size is None else filesizeformat(d.size),
                "–" if d.duration is None else f"{d.duration:.1f} s",
                format_html('<a href="{}">Download</a>', url)
                if (url := urls.download(d))
                else d.error or "–",
            )
            for d in rows
        ),
    )
    head = "<tr><th>Rung</th><th>Status</th><th>Size</th><th>Duration</th><th>File</th></tr>"
    return format_html(
        '<table class="tc-downloads"><thead>{}</thead><tbody>{}</tbody></table>', mark_safe(head), body
    )


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
        "step", "parts_list", "job_state", "progress", "attempts", "worker", "started_at", "finished_at",
        "error", "log",
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

    @admin.display(description="State")
    def job_state(self, obj):
        """A held job is queued, waiting for a slot under the caps on encodes in flight."""
        state = obj.get_state_display()
        return f"{state} (waiting for a slot)" if obj.held and obj.state == "queued" else state

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
