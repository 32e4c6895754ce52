"""The job list: what each worker did, for whom, with its log tail. Read-only."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from transcoding import access
from transcoding.admin.inlines import JobInline
from transcoding.models import ProcessingJob


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
