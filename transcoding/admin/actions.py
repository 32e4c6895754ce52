"""Bulk actions on the video list: each asks `services` and reports per video, so one video
that cannot be reprocessed does not stop the others."""

from django.contrib import admin, messages

from transcoding import services
from transcoding.errors import InvalidRequest
from transcoding.models import ENCODE_PARTS, PartKind


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
    _report(modeladmin, request, done, errors, what)


def _report(modeladmin, request, done: int, errors: list[str], what: str) -> None:
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


@admin.action(description="Make MP4 downloads", permissions=["change"])
def make_downloads(modeladmin, request, queryset):
    """The preset's downloads (else the highest rung), those not made yet or made from older
    renditions (`services.downloads_request`)."""
    done, errors = 0, []
    for video in queryset:
        try:
            services.downloads_request(video)
            done += 1
        except InvalidRequest as exc:
            errors.append(f"{video}: {exc}")
    _report(modeladmin, request, done, errors, "MP4 downloads")


@admin.action(description="Cancel processing", permissions=["change"])
def cancel_processing(modeladmin, request, queryset):
    videos = list(queryset)
    jobs = sum(services.video_cancel(video) for video in videos)
    modeladmin.message_user(
        request, f"Cancelled {jobs} job{'' if jobs == 1 else 's'} of {_count(len(videos))}.", messages.SUCCESS
    )


def video_actions() -> list:
    """Everything the video list offers, in menu order."""
    return [
        reprocess_all,
        *(_reprocess_action(kind) for kind in ENCODE_PARTS),
        generate_subtitles,
        make_downloads,
        cancel_processing,
    ]
