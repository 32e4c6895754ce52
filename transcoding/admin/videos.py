"""The video admin: the add form (a file, or straight to S3 with direct uploads), every part's
status while it processes, the original, and deleting with all outputs."""

from django import forms
from django.contrib import admin
from django.contrib.admin import actions as admin_actions
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from transcoding import selectors, services
from transcoding.admin.actions import video_actions
from transcoding.admin.display import LiveDisplays, shown
from transcoding.admin.forms import VideoForm
from transcoding.admin.inlines import JobInline, RenditionInline, SubtitleInline, downloads_table
from transcoding.conf import settings
from transcoding.ingest import direct_uploads
from transcoding.ingest.create import default_preset, video_store_upload
from transcoding.models import Subtitle, Video


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
    actions = [*video_actions(), "delete_selected"]
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
            "import_url", "original_filename", "original_download", "outputs_link", "source_size_text",
            "source_sha256",
            "duration_text", "resolution",
            "container", "video_codec", "audio_codec", "fps",
        ]}),
        ("Storyboard and poster", {"fields": ["storyboard_summary", "poster_summary"]}),
        ("MP4 downloads", {"fields": ["downloads_list"]}),
        ("Times", {"classes": ["collapse"], "fields": [
            "created_at", "updated_at", "processing_started_at", "processing_finished_at",
        ]}),
    ]  # fmt: skip
    readonly_fields = [
        "status_badge", "progress_bar", "error_text", "playable_text", "parts_summary", "preview",
        "import_url", "original_filename", "original_download", "outputs_link", "source_size_text",
        "source_sha256",
        "duration_text", "resolution",
        "container", "video_codec", "audio_codec", "fps", "storyboard_summary", "poster_summary",
        "downloads_list", "created_at", "updated_at", "processing_started_at", "processing_finished_at",
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
            .select_related("poster", "storyboard", "preset", "outputs_from")
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
            return [] if direct_uploads.enabled() else [SubtitleInline]
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
            "direct_upload": object_id is None and direct_uploads.enabled(),
            **(extra_context or {}),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if "source" in form.changed_data:
            video_store_upload(obj)
            services.video_request_processing(obj, force=True)  # replaces work on an old original
        elif change and obj.import_url:
            # The import job records the original meanwhile: write only what the form changed.
            obj.save(update_fields=[*form.changed_data, "updated_at"])
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

    @admin.display(description="Downloads")
    def downloads_list(self, obj):
        return downloads_table(obj)

    source_size_text = shown("source_size", "Size", lambda n: "–" if n is None else filesizeformat(n))
