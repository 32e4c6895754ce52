"""Reads used by views, the admin and commands. `video_status` is the JSON API's schema
(DESIGN.md, "Interface contract")."""

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from transcoding import access
from transcoding.models import (
    ENCODE_PARTS,
    JobState,
    PartKind,
    PartStatus,
    Poster,
    Preset,
    ProcessingJob,
    Rendition,
    Storyboard,
    Video,
    VideoStatus,
    stuck_q,
)
from transcoding.video_urls import VideoUrls

videos_visible_to = access.videos_visible_to


def videos_published() -> QuerySet:
    """The public listing: published videos (a linked one only if its source is too)."""
    return Video.objects.filter(access.published_q()).select_related("poster", "outputs_from")


def with_parts(videos: QuerySet) -> QuerySet:
    """Everything `video_status` reads, in a fixed number of queries however many videos:
    the one-to-one parts and the linked video joined, renditions and subtitles prefetched."""
    return videos.select_related("poster", "storyboard", "outputs_from", "preset").prefetch_related(
        "renditions", "subtitles", "downloads"
    )


def _part(obj, *names):
    return {name: getattr(obj, name) for name in names}


def _poster(video: Video) -> Poster | None:
    try:
        return video.poster
    except Poster.DoesNotExist:
        return None


def _storyboard(video: Video) -> Storyboard | None:
    try:
        return video.storyboard
    except Storyboard.DoesNotExist:
        return None


def poster_url(video: Video) -> str | None:
    return VideoUrls(video).poster(_poster(video))


def video_status(video: Video) -> dict:
    """URLs are root-relative or absolute: for a private video the manifests are the signed
    playback views and files are presigned (`video_urls.VideoUrls`)."""
    urls = VideoUrls(video)
    renditions = list(video.renditions.all())
    audio = next((r for r in renditions if r.kind == Rendition.Kind.AUDIO), None)
    storyboard = _storyboard(video)
    ready_storyboard = storyboard is not None and storyboard.status == PartStatus.READY
    return {
        "id": video.pk,
        "title": video.title,
        "status": video.status,
        "playable": video.playable,
        "progress": video.progress,
        "error": video.error,
        "duration": video.duration,
        "width": video.width,
        "height": video.height,
        "source": {
            "size": video.source_size,
            "sha256": video.source_sha256 or None,
            "container": video.container or None,
            "video_codec": video.video_codec or None,
            "audio_codec": video.audio_codec or None,
            "fps": video.fps,
        },
        "renditions": [
            {
                **_part(r, "name", "width", "height", "bitrate", "status", "progress", "error"),
                "codec": r.codec or None,
            }
            for r in renditions
            if r.kind == Rendition.Kind.VIDEO
        ],
        "audio": None
        if audio is None
        else {"status": audio.status, "codec": audio.codec or None, "bitrate": audio.bitrate},
        "hls_url": urls.hls() if video.playable else None,
        "dash_url": urls.dash() if video.playable else None,
        "poster_url": urls.poster(_poster(video)),
        "storyboard": {
            "status": storyboard.status if storyboard else PartStatus.PENDING,
            "vtt_url": urls.storyboard_vtt(storyboard) if ready_storyboard else None,
            "image_urls": [urls.image(p) for p in storyboard.image_paths] if ready_storyboard else [],
        },
        "subtitles": [
            {
                "language": s.language,
                "label": s.label or s.language,
                "kind": s.kind,
                "status": s.status,
                "vtt_url": urls.subtitle_vtt(s) if s.status == PartStatus.READY else None,
                "default": s.is_default,
            }
            for s in video.subtitles.all()
        ],
    }


def video_document(video: Video) -> dict:
    """The API v1 document (and every webhook's `data`): the status document above, unchanged,
    plus what a program editing the video needs, and `download_urls` ({"720p": url}: the ready
    MP4 downloads, signed for a video that is not public). Read `with_parts` first."""
    return {
        **video_status(video),
        "description": video.description,
        "published": video.published,
        "private": video.private,
        "preset": video.preset.name if video.preset_id else None,
        "poster_time": video.poster_time,
        "download_urls": VideoUrls(video).downloads(video.downloads.all()),
        "created_at": video.created_at.isoformat() if video.created_at else None,
        "updated_at": video.updated_at.isoformat() if video.updated_at else None,
    }


def job_counts() -> dict:
    """Queued, running and stuck (lease expired) job counts, for the admin."""
    now = timezone.now()
    return ProcessingJob.objects.aggregate(
        queued=Count("pk", filter=Q(state=JobState.QUEUED)),
        running=Count("pk", filter=Q(state=JobState.RUNNING) & ~stuck_q(now)),
        stuck=Count("pk", filter=stuck_q(now)),
    )


def presets_by_name() -> dict:
    """Every preset by name, for commands that take `--preset NAME`."""
    return {preset.name: preset for preset in Preset.objects.all()}


def videos_by_ids(ids) -> tuple[list[Video], list[int]]:
    """(the videos, in the order asked, without repeats; the ids that match none)."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    found = Video.objects.in_bulk(ids)
    return [found[i] for i in ids if i in found], [i for i in ids if i not in found]


def videos_requeue_filter(*, failed: bool = False, stuck: bool = False) -> Q:
    """Which videos `reprocess --failed/--stuck` selects: failed ones; those with a stuck job,
    or queued or processing without any job."""
    query = Q(pk__in=[])
    if failed:
        query |= Q(status=VideoStatus.FAILED)
    if stuck:
        query |= stuck_q(prefix="jobs__") | Q(
            status__in=[VideoStatus.QUEUED, VideoStatus.PROCESSING], jobs__isnull=True
        )
    return query


def videos_for_reprocess(*, ids=(), failed: bool = False, stuck: bool = False, everything: bool = False):
    """The videos `reprocess` selects: the given ids plus the failed and/or stuck ones, or all."""
    if everything:
        return list(Video.objects.order_by("pk"))
    query = Q(pk__in=list(ids)) | videos_requeue_filter(failed=failed, stuck=stuck)
    return list(Video.objects.filter(query).distinct().order_by("pk"))


def video_active_job(video: Video, parts=None):
    """The video's queued or running job for these parts (None: every encode part), if any:
    at most one per step. A subtitles job waiting hours for its service does not stand in
    the way of a request for the encode's parts, nor the encode of one for subtitles."""
    names = set(parts or ENCODE_PARTS)
    steps = [ProcessingJob.Step.ENCODE] if names - {PartKind.SUBTITLES} else []
    steps += [ProcessingJob.Step.SUBTITLES] if PartKind.SUBTITLES in names else []
    return video.jobs.active().filter(step__in=steps).order_by("-pk").first()


def video_parts(video: Video) -> list[dict]:
    """Every part of the video with its status, for listings: renditions (video rungs, then
    the audio), storyboard, poster, subtitles."""
    rows = [
        {"part": r.name, "kind": r.kind, "status": r.status, "progress": r.progress, "error": r.error}
        for r in sorted(video.renditions.all(), key=lambda r: r.kind != Rendition.Kind.VIDEO)
    ]
    for kind, part in (("storyboard", _storyboard(video)), ("poster", _poster(video))):
        if part is not None:
            rows.append(
                {
                    "part": kind,
                    "kind": kind,
                    "status": part.status,
                    "progress": part.progress,
                    "error": part.error,
                }
            )
    for s in video.subtitles.all():
        rows.append(
            {
                "part": f"subtitles {s.language}",
                "kind": "subtitles",
                "status": s.status,
                "progress": s.progress,
                "error": s.error,
            }
        )
    return rows
