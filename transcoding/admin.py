"""The Django admin: upload videos, watch every part's status and progress, reprocess, delete.

Declarative and thin: saving and actions call `services`, lists read `selectors`. The markup
carries `data-tc-*` attributes that `static/transcoding/admin-live.js` updates from the status
API while a video is processing; `admin-upload.js` streams uploads with a progress bar.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.core.exceptions import ObjectDoesNotExist
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from django.templatetags.static import static
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from . import outputs, selectors, services
from .conf import settings
from .models import (
    ENCODE_PARTS,
    PartKind,
    PartStatus,
    Preset,
    PresetRung,
    ProcessingJob,
    Rendition,
    Subtitle,
    Video,
    VideoStatus,
)

HLS_SCRIPT = "transcoding/vendor/hls.js-1.6.19/hls.min.js"
LABELS = {**dict(PartStatus.choices), **dict(VideoStatus.choices)}


# --- presentation ----------------------------------------------------------------------------
def _related(obj, name):
    """A reverse one-to-one (poster, storyboard) or None when it does not exist yet."""
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _bitrate(bits) -> str:
    if not bits:
        return "–"
    return f"{bits / 1e6:.1f} Mb/s" if bits >= 1e6 else f"{bits / 1e3:.0f} kb/s"


def _chip_text(status: str, progress: int) -> str:
    return {"ready": "✓", "failed": "✗", "skipped": "–", "pending": "…"}.get(status, f"{progress}%")


def _chip(name: str, status: str, progress: int, error: str = "", video_id=None):
    """One part's status: coloured by status, showing its progress. With `video_id` the chip
    updates itself; chips inside a parts summary are redrawn by the summary instead."""
    title = f"{name}: {LABELS.get(status, status)}, {progress}%" + (f" – {error}" if error else "")
    live = format_html(' data-tc-video="{}" data-tc-part="{}"', video_id, name) if video_id else ""
    return format_html(
        '<span class="tc-chip tc-chip--{}" data-tc-name="{}" data-tc-state="{}" title="{}"{}>'
        "{} <b>{}</b></span>",
        status, name, status, title, live, name, _chip_text(status, progress),
    )  # fmt: skip


def _parts(video: Video) -> list[tuple[str, str, int, str]]:
    """(name, status, progress, error) of each part: video rungs, audio, storyboard, poster."""
    renditions = list(video.renditions.all())
    rows = [r for r in renditions if r.kind == Rendition.Kind.VIDEO]
    rows += [r for r in renditions if r.kind == Rendition.Kind.AUDIO]
    parts = [(r.name, r.status, r.progress, r.error) for r in rows]
    for name in ("storyboard", "poster"):
        part = _related(video, name)
        if part is not None:
            parts.append((name, part.status, part.progress, part.error))
    return parts


def _poster_url(video: Video):
    poster = _related(video, "poster")
    return outputs.url(poster.path) if poster and poster.status == PartStatus.READY else None


def _shown(field: str, description: str, show, ordering=None):
    """A read-only column showing `field` formatted by `show`."""
    return admin.display(description=description, ordering=ordering)(
        lambda self, obj: show(getattr(obj, field))
    )


def _live(field: str, video: Video, html: str = "", tag: str = "span", css: str = "", title: str = ""):
    return format_html(
        '<{} class="{}" title="{}" data-tc-video="{}" data-tc-field="{}">{}</{}>',
        tag, css, title, video.pk, field, html, tag,
    )  # fmt: skip


class LiveDisplays:
    """Columns and read-only fields the live-update script refreshes."""

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="tc-badge tc-badge--{}" data-tc-video="{}" data-tc-field="status" '
            'data-tc-state="{}">{}</span>',
            obj.status, obj.pk, obj.status, obj.get_status_display(),
        )  # fmt: skip

    @admin.display(description="Progress", ordering="progress")
    def progress_bar(self, obj):
        inner = format_html(
            '<progress max="100" value="{}"></progress> <span class="tc-progress-text">{}%</span>',
            obj.progress, obj.progress,
        )  # fmt: skip
        return _live("progress", obj, inner, css="tc-progress")

    @admin.display(description="Parts")
    def parts_summary(self, obj):
        chips = format_html_join(" ", "{}", ((_chip(*part),) for part in _parts(obj)))
        return _live("parts", obj, chips, css="tc-parts")

    @admin.display(description="Error")
    def error_text(self, obj):
        return _live("error", obj, obj.error, css="tc-error")

    @admin.display(description="Status", ordering="status")
    def status_cell(self, obj):
        return format_html(
            "{}{}", self.status_badge(obj), _live("error", obj, obj.error, "div", "tc-row-error", obj.error)
        )

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj):
        created = localtime(obj.created_at)
        return format_html("{}<br>{}", date_format(created, "Y-m-d"), date_format(created, "H:i"))

    @admin.display(description="Playable")
    def playable_text(self, obj):
        return _live("playable", obj, "Yes" if obj.playable else "No")

    @admin.display(description="Duration", ordering="duration")
    def duration_text(self, obj):
        return _live("duration", obj, _duration(obj.duration))

    @admin.display(description="Resolution", ordering="height")
    def resolution(self, obj):
        return _live("resolution", obj, f"{obj.width}×{obj.height}" if obj.width else "–")

    @admin.display(description="")
    def thumbnail(self, obj):
        url = _poster_url(obj)
        img = format_html(
            '<img class="tc-thumb" alt="" loading="lazy" data-tc-video="{}" data-tc-field="poster"{}>',
            obj.pk, format_html(' src="{}"', url) if url else mark_safe(" hidden"),
        )  # fmt: skip
        return format_html('<span class="tc-thumb-box">{}</span>', img)


# --- forms and inlines -----------------------------------------------------------------------
class VideoForm(forms.ModelForm):
    class Meta:
        model = Video
        fields = ["title", "description", "source", "preset", "poster_time", "published"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False
        self.fields["title"].help_text = "Leave empty to use the file name."
        self.fields["source"].help_text = "Choosing a new file replaces the original and reprocesses."

    def clean_source(self):
        source = self.cleaned_data.get("source")
        if isinstance(source, UploadedFile) and source.size > settings.MAX_UPLOAD_BYTES:
            limit = filesizeformat(settings.MAX_UPLOAD_BYTES)
            raise forms.ValidationError(f"The file is larger than the {limit} limit.")
        return source

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("title") and not isinstance(cleaned.get("source"), UploadedFile):
            self.add_error("title", "A title is required.")
        return cleaned


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
        return _chip(obj.name, obj.status, obj.progress, obj.error, video_id=obj.video_id)

    @admin.display(description="Progress")
    def progress_text(self, obj):
        return format_html(
            '<span data-tc-video="{}" data-tc-progress-of="{}">{}%</span>',
            obj.video_id,
            obj.name,
            obj.progress,
        )

    bitrate_cap = _shown("bitrate", "Bitrate cap", _bitrate)
    average = _shown("average_bitrate", "Average", _bitrate)
    peak = _shown("peak_bitrate", "Peak", _bitrate)
    written = _shown("bytes_written", "Written", filesizeformat)


class SubtitleInline(admin.TabularInline):
    model = Subtitle
    extra = 0
    fields = ["language", "label", "kind", "is_default", "file", "status_chip"]
    readonly_fields = ["status_chip"]

    @admin.display(description="Status")
    def status_chip(self, obj):
        return _chip(obj.language, obj.status, obj.progress, obj.error) if obj.pk else "–"


class JobInline(ReadOnlyInline):
    model = ProcessingJob
    verbose_name_plural = "Job log"
    fields = readonly_fields = [
        "step", "parts_list", "state", "attempts", "worker", "started_at", "finished_at", "error", "log",
    ]  # fmt: skip

    @admin.display(description="Parts")
    def parts_list(self, obj):
        return ", ".join(obj.parts) + (f" (chunk {obj.chunk})" if obj.chunk is not None else "")

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


# --- actions ---------------------------------------------------------------------------------
def _count(n: int) -> str:
    return f"{n} video{'' if n == 1 else 's'}"


def _reprocess(modeladmin, request, queryset, parts, what):
    done, errors = 0, []
    for video in queryset:
        try:
            services.video_request_processing(video, parts=parts, force=True)
            done += 1
        except services.InvalidRequest as exc:
            errors.append(f"{video}: {exc}")
    if done:
        modeladmin.message_user(request, f"Queued {what} for {_count(done)}.", messages.SUCCESS)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        modeladmin.message_user(request, f"Not queued: {errors[0]}{more}", messages.ERROR)


def _reprocess_action(kind: PartKind):
    def action(modeladmin, request, queryset):
        _reprocess(modeladmin, request, queryset, [kind.value], f"{kind.label.lower()} reprocessing")

    action.__name__ = f"reprocess_{kind.value}"
    return admin.action(description=f"Reprocess {kind.value}", permissions=["change"])(action)


@admin.action(description="Reprocess everything", permissions=["change"])
def reprocess_all(modeladmin, request, queryset):
    _reprocess(modeladmin, request, queryset, None, "full reprocessing")


@admin.action(description="Cancel processing", permissions=["change"])
def cancel_processing(modeladmin, request, queryset):
    videos = list(queryset)
    jobs = sum(services.video_cancel(video) for video in videos)
    modeladmin.message_user(
        request, f"Cancelled {jobs} job{'' if jobs == 1 else 's'} of {_count(len(videos))}.", messages.SUCCESS
    )


# --- model admins ----------------------------------------------------------------------------
@admin.register(Video)
class VideoAdmin(LiveDisplays, admin.ModelAdmin):
    form = VideoForm
    list_display = [
        "thumbnail", "title", "duration_text", "resolution", "status_cell", "parts_summary",
        "published", "created",
    ]  # fmt: skip
    list_display_links = ["thumbnail", "title"]
    list_filter = ["status", "preset", "published"]
    search_fields = ["title", "^source_sha256"]
    actions = [
        reprocess_all, *(_reprocess_action(kind) for kind in ENCODE_PARTS), cancel_processing,
        "delete_selected",
    ]  # fmt: skip
    add_fieldsets = [
        (None, {"fields": ["title", "description", "source", "preset", "poster_time", "published"]})
    ]
    fieldsets = [
        *add_fieldsets,
        ("Status", {"fields": [
            "status_badge", "progress_bar", "error_text", "playable_text", "parts_summary", "preview",
        ]}),
        ("Source", {"fields": [
            "original_filename", "source_size_text", "source_sha256", "duration_text", "resolution",
            "container", "video_codec", "audio_codec", "fps",
        ]}),
        ("Storyboard and poster", {"fields": ["storyboard_summary", "poster_summary"]}),
        ("Times", {"classes": ["collapse"], "fields": [
            "created_at", "updated_at", "processing_started_at", "processing_finished_at",
        ]}),
    ]  # fmt: skip
    readonly_fields = [
        "status_badge", "progress_bar", "error_text", "playable_text", "parts_summary", "preview",
        "original_filename", "source_size_text", "source_sha256", "duration_text", "resolution",
        "container", "video_codec", "audio_codec", "fps", "storyboard_summary", "poster_summary",
        "created_at", "updated_at", "processing_started_at", "processing_finished_at",
    ]  # fmt: skip

    class Media:
        css = {"all": ["transcoding/admin.css"]}
        js = [
            forms.Script("transcoding/admin-live.js", defer=True),
            forms.Script("transcoding/admin-upload.js", defer=True),
        ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("poster", "storyboard", "preset")
            .prefetch_related("renditions")
        )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_inlines(self, request, obj):
        return [SubtitleInline] if obj is None else [RenditionInline, SubtitleInline, JobInline]

    def get_changeform_initial_data(self, request):
        return {"preset": services.default_preset(), **super().get_changeform_initial_data(request)}

    def changelist_view(self, request, extra_context=None):
        extra_context = {"job_counts": selectors.job_counts(), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {"max_upload_bytes": settings.MAX_UPLOAD_BYTES, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if "source" in form.changed_data:
            services.video_store_upload(obj)
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        services.video_delete(obj)

    def delete_queryset(self, request, queryset):
        for video in queryset:
            services.video_delete(video)

    @admin.action(description="Delete with all outputs", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's confirmation page, then `delete_queryset`: files go with the rows."""
        return admin_actions.delete_selected(self, request, queryset)

    source_size_text = _shown("source_size", "Size", lambda n: "–" if n is None else filesizeformat(n))

    @admin.display(description="Preview")
    def preview(self, obj):
        src = outputs.url(obj.hls_path) if obj.playable else ""
        return format_html(
            '<div class="tc-player" data-tc-video="{}" data-tc-field="player" data-tc-hls-src="{}" '
            'data-tc-hls-script="{}"><video controls playsinline preload="metadata"{}></video>'
            '<p class="tc-player-note">{}</p></div>',
            obj.pk, src or "", static(HLS_SCRIPT),
            format_html(' poster="{}"', _poster_url(obj)) if _poster_url(obj) else "",
            "" if src else "No preview: processing failed." if obj.status == VideoStatus.FAILED
            else "The preview starts when the first rendition is ready.",
        )  # fmt: skip

    @admin.display(description="Storyboard")
    def storyboard_summary(self, obj):
        board = _related(obj, "storyboard")
        if board is None:
            return "–"
        sheets = len(board.image_paths) if board.status == PartStatus.READY else 0
        detail = f"{sheets} sheet{'s' * (sheets != 1)}, {board.tile_count} tiles" if sheets else board.error
        return format_html(
            '{} <span data-tc-video="{}" data-tc-field="storyboard-sheets">{}</span>',
            _chip("storyboard", board.status, board.progress, board.error, video_id=obj.pk), obj.pk, detail,
        )  # fmt: skip

    @admin.display(description="Poster")
    def poster_summary(self, obj):
        poster = _related(obj, "poster")
        if poster is None:
            return "–"
        url = _poster_url(obj)
        at = f" at {poster.time:.1f} s" if poster.time is not None and url else ""
        at = at or (f" {poster.error}" if poster.status == PartStatus.FAILED else "")
        return format_html(
            '{}{}<br><img class="tc-poster" alt="Poster" data-tc-video="{}" data-tc-field="poster"{}>',
            _chip("poster", poster.status, poster.progress, poster.error, video_id=obj.pk), at, obj.pk,
            format_html(' src="{}"', url) if url else mark_safe(" hidden"),
        )  # fmt: skip


class PresetRungInline(admin.TabularInline):
    model = PresetRung
    extra = 1
    fields = ["height", "max_bitrate", "crf"]


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    inlines = [PresetRungInline]
    list_display = ["name", "is_default", "ladder", "x264_preset", "audio_bitrate_text"]
    search_fields = ["name"]

    class Media:
        css = {"all": ["transcoding/admin.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("rungs")

    @admin.display(description="Ladder")
    def ladder(self, obj):
        return " · ".join(f"{r.height}p {_bitrate(r.max_bitrate)}" for r in obj.rungs.all()) or "–"

    audio_bitrate_text = _shown("audio_bitrate", "Audio", _bitrate, ordering="audio_bitrate")


@admin.register(ProcessingJob)
class ProcessingJobAdmin(admin.ModelAdmin):
    """Read-only. Deleting stays allowed, so deleting a video can take its jobs along."""

    list_display = ["id", "video_link", "step", "parts_list", "state", "attempts", "worker", "started_at",
                    "finished_at", "error"]  # fmt: skip
    list_filter = ["state", "step"]
    list_select_related = ["video"]
    search_fields = ["video__title"]
    readonly_fields = ["log"]
    exclude = ["log_tail"]
    parts_list = JobInline.parts_list
    attempts = JobInline.attempts
    log = JobInline.log

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Video", ordering="video__title")
    def video_link(self, obj):
        url = reverse("admin:transcoding_video_change", args=[obj.video_id])
        return format_html('<a href="{}">{}</a>', url, obj.video)
