"""HTML for the admin's columns and read-only fields. Every value that can change carries
`data-tc-video` and a field or part name, which `static/transcoding/admin-live.js` updates from
the status API while a video is processing."""

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.templatetags.static import static
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from transcoding.models import PartStatus, Rendition, Video, VideoStatus
from transcoding.selectors import poster_url
from transcoding.video_urls import VideoUrls

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


def bitrate(bits) -> str:
    if not bits:
        return "–"
    return f"{bits / 1e6:.1f} Mb/s" if bits >= 1e6 else f"{bits / 1e3:.0f} kb/s"


def chip_text(status: str, progress: int) -> str:
    return {"ready": "✓", "failed": "✗", "skipped": "–", "pending": "…"}.get(status, f"{progress}%")


def chip(name: str, status: str, progress: int, error: str = "", video_id=None):
    """One part's status: coloured by status, showing its progress. With `video_id` the chip
    updates itself; chips inside a parts summary are redrawn by the summary instead."""
    title = f"{name}: {LABELS.get(status, status)}, {progress}%" + (f" – {error}" if error else "")
    live = format_html(' data-tc-video="{}" data-tc-part="{}"', video_id, name) if video_id else ""
    return format_html(
        '<span class="tc-chip tc-chip--{}" data-tc-name="{}" data-tc-state="{}" title="{}"{}>'
        "{} <b>{}</b></span>",
        status, name, status, title, live, name, chip_text(status, progress),
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
    return poster_url(video)


def shown(field: str, description: str, show, ordering=None):
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
        chips = format_html_join(" ", "{}", ((chip(*part),) for part in _parts(obj)))
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

    @admin.display(description="Preview")
    def preview(self, obj):
        src = (VideoUrls(obj).hls() or "") if obj.playable else ""
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
            chip("storyboard", board.status, board.progress, board.error, video_id=obj.pk), obj.pk, detail,
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
            chip("poster", poster.status, poster.progress, poster.error, video_id=obj.pk), at, obj.pk,
            format_html(' src="{}"', url) if url else mark_safe(" hidden"),
        )  # fmt: skip
