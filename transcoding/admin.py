"""The Django admin: upload videos, watch every part's status and progress, reprocess, delete.

Declarative and thin: saving and actions call `services`, lists read `selectors`. The markup
carries `data-tc-*` attributes that `static/transcoding/admin-live.js` updates from the status
API while a video is processing; `admin-upload.js` streams uploads with a progress bar.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin.widgets import AdminFileWidget
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from transcoding import access, selectors, services
from transcoding.admin_display import LiveDisplays, _bitrate, _chip, _shown
from transcoding.captions import subtitles
from transcoding.conf import settings
from transcoding.errors import InvalidRequest
from transcoding.ingest import direct_uploads as uploads
from transcoding.ingest import upload_handlers
from transcoding.ingest.create import default_preset, video_store_upload
from transcoding.models import (
    ENCODE_PARTS,
    PartKind,
    Preset,
    PresetRung,
    ProcessingJob,
    Rendition,
    Subtitle,
    Video,
)


# --- forms and inlines -----------------------------------------------------------------------
class RequestForm(forms.ModelForm):
    """A form that knows its request (`for_request`), to show why the upload handlers stopped
    one of its files (`upload_handlers.LimitedUploadHandler`): the file is then missing, and
    the form says why instead of asking for it."""

    request = None

    @classmethod
    def for_request(cls, request):
        return type(cls.__name__, (cls,), {"request": request})

    def refusal(self, name: str) -> str | None:
        return upload_handlers.refusals(self.request).get(self.add_prefix(name)) if self.request else None

    def _clean_fields(self):
        for name in self.files_refused():
            self.fields[name].required = False  # the refusal is the error, not "required"
        super()._clean_fields()
        for name in self.files_refused():
            self.add_error(name, self.refusal(name))

    def files_refused(self) -> list[str]:
        return [n for n, f in self.fields.items() if isinstance(f, forms.FileField) and self.refusal(n)]


class StoredFileInput(AdminFileWidget):
    """The admin's file input, naming the stored file without linking to it."""

    template_name = "transcoding/widgets/stored_file_input.html"


class VideoForm(RequestForm):
    class Meta:
        model = Video
        fields = [
            "title", "description", "source", "preset", "poster_time", "published", "private",
            "speech_language",
        ]  # fmt: skip
        widgets = {"source": StoredFileInput}  # downloaded from "Original", never opened here

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False
        self.fields["title"].help_text = "Leave empty to use the file name."
        self.fields["source"].help_text = "Choosing a new file replaces the original and reprocesses."
        if self.instance.pk is None and uploads.enabled():
            self.fields["source"].help_text = (
                "Sent straight to storage in parts; if the upload is interrupted, choose the same file "
                "again to resume it. Subtitles can be added once the video is saved."
            )

    def clean_source(self):
        source = self.cleaned_data.get("source")
        if isinstance(source, UploadedFile) and source.size > settings.MAX_UPLOAD_BYTES:
            limit = filesizeformat(settings.MAX_UPLOAD_BYTES)
            raise forms.ValidationError(f"The file is larger than the {limit} limit.")
        return source

    def clean_speech_language(self):
        code = self.cleaned_data.get("speech_language", "")
        try:
            return subtitles.validate_language(code) if code else ""
        except subtitles.SubtitleInvalid as exc:
            raise forms.ValidationError(str(exc))

    def clean(self):
        cleaned = super().clean()
        if self.files_refused():
            return cleaned
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


class SubtitleForm(RequestForm):
    """An uploaded track is parsed here, so a broken file is refused on the form with one
    sentence and nothing is saved. A file over the limit is stopped while it uploads."""

    class Meta:
        model = Subtitle
        fields = ["language", "label", "kind", "is_default", "file"]
        widgets = {"file": StoredFileInput}

    def clean_language(self):
        try:
            return subtitles.validate_language(self.cleaned_data.get("language", ""))
        except subtitles.SubtitleInvalid as exc:
            raise forms.ValidationError(str(exc))

    def clean_label(self):
        try:
            return subtitles.validate_label(self.cleaned_data.get("label", ""))
        except subtitles.SubtitleInvalid as exc:
            raise forms.ValidationError(str(exc))

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if isinstance(upload, UploadedFile):
            try:
                subtitles.check_size(upload.size)  # before reading it
                subtitles.parse(upload.read(), self.cleaned_data.get("language", ""))
            except subtitles.SubtitleInvalid as exc:
                raise forms.ValidationError(str(exc))
            finally:
                upload.seek(0)
        elif not upload and not self.instance.pk and not self.refusal("file"):
            raise forms.ValidationError("Choose an SRT or WebVTT file.")
        return upload


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
        return _chip(obj.language, obj.status, obj.progress, obj.error) if obj.pk else "–"


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


# --- actions ---------------------------------------------------------------------------------
def _count(n: int) -> str:
    return f"{n} video{'' if n == 1 else 's'}"


def _reprocess(modeladmin, request, queryset, parts, what):
    done, errors = 0, []
    for video in queryset:
        try:
            services.video_request_processing(video, parts=parts, force=True)
            done += 1
        except InvalidRequest as exc:
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


@admin.action(description="Generate subtitles (speech recognition)", permissions=["change"])
def generate_subtitles(modeladmin, request, queryset):
    _reprocess(modeladmin, request, queryset, [PartKind.SUBTITLES.value], "subtitle generation")


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
    list_filter = ["status", "preset", "published", "private"]
    search_fields = ["title", "^source_sha256"]
    actions = [
        reprocess_all, *(_reprocess_action(kind) for kind in ENCODE_PARTS), generate_subtitles,
        cancel_processing,
        "delete_selected",
    ]  # fmt: skip
    add_fieldsets = [
        (
            None,
            {
                "fields": [
                    "title",
                    "description",
                    "source",
                    "preset",
                    "poster_time",
                    "published",
                    "private",
                    "speech_language",
                ]
            },
        )
    ]
    fieldsets = [
        *add_fieldsets,
        ("Status", {"fields": [
            "status_badge", "progress_bar", "error_text", "playable_text", "parts_summary", "preview",
        ]}),
        ("Source", {"fields": [
            "original_filename", "original_download", "outputs_link", "source_size_text", "source_sha256",
            "duration_text", "resolution",
            "container", "video_codec", "audio_codec", "fps",
        ]}),
        ("Storyboard and poster", {"fields": ["storyboard_summary", "poster_summary"]}),
        ("Times", {"classes": ["collapse"], "fields": [
            "created_at", "updated_at", "processing_started_at", "processing_finished_at",
        ]}),
    ]  # fmt: skip
    readonly_fields = [
        "status_badge", "progress_bar", "error_text", "playable_text", "parts_summary", "preview",
        "original_filename", "original_download", "outputs_link", "source_size_text", "source_sha256",
        "duration_text", "resolution",
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

    def get_form(self, request, obj=None, **kwargs):
        return super().get_form(request, obj, form=VideoForm.for_request(request), **kwargs)

    def get_inlines(self, request, obj):
        if obj is None:
            # A direct upload to S3 sends the file and the video's fields, not the whole form:
            # subtitles are added on the video's page afterwards.
            return [] if uploads.enabled() else [SubtitleInline]
        return [RenditionInline, SubtitleInline, JobInline]

    def get_changeform_initial_data(self, request):
        return {"preset": default_preset(), **super().get_changeform_initial_data(request)}

    def changelist_view(self, request, extra_context=None):
        extra_context = {"job_counts": selectors.job_counts(), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
            # The add form uploads straight to the bucket (admin-s3-upload.js) with S3 storage.
            "direct_upload": object_id is None and uploads.enabled(),
            **(extra_context or {}),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if "source" in form.changed_data:
            video_store_upload(obj)
            services.video_request_processing(obj, force=True)  # replaces work on an old original
        else:
            super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Subtitle:
            return super().save_formset(request, form, formset, change)
        tracks = formset.save(commit=False)
        for track in formset.deleted_objects:
            services.subtitle_delete(track)
        for track in tracks:
            services.subtitle_save(track)

    def delete_model(self, request, obj):
        services.video_delete(obj)

    @admin.display(description="Original")
    def original_download(self, obj):
        if not obj.pk or not obj.source:
            return "–"
        url = reverse("transcoding:original", args=[obj.pk])
        return format_html('<a href="{}">Download {}</a>', url, obj.original_filename or "the original")

    @admin.display(description="Outputs")
    def outputs_link(self, obj):
        if obj.outputs_from_id is None:
            return "Encoded for this video"
        url = reverse("admin:transcoding_video_change", args=[obj.outputs_from_id])
        return format_html('Shared with <a href="{}">{}</a> (same source)', url, obj.outputs_from)

    def delete_queryset(self, request, queryset):
        for video in queryset:
            services.video_delete(video)

    @admin.action(description="Delete with all outputs", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's confirmation page, then `delete_queryset`: files go with the rows."""
        return admin_actions.delete_selected(self, request, queryset)

    source_size_text = _shown("source_size", "Size", lambda n: "–" if n is None else filesizeformat(n))


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
    exclude = ["log_tail", "result"]
    parts_list = JobInline.parts_list
    attempts = JobInline.attempts
    log = JobInline.log

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        """Jobs of the videos the user may see: a job names its video's title, error and log."""
        return super().get_queryset(request).filter(video__in=access.videos_visible_to(request.user))

    @admin.display(description="Video", ordering="video__title")
    def video_link(self, obj):
        url = reverse("admin:transcoding_video_change", args=[obj.video_id])
        return format_html('<a href="{}">{}</a>', url, obj.video)
