"""Who may see a video, and whether its files may be fetched by plain, permanent URLs.

- **Visible** (the player page, the status API, the playback views): a published video, to
  anyone; a video to the user who uploaded it (`Video.created_by`: an API key's user sees its
  own uploads); every video, to a user Django's permissions allow to view videos (`view_video`,
  or `change_video`, which implies it in the admin). Being staff is not enough.
- **Public** (plain URLs to its files, no signature): visible to anyone and not private.

A video that plays another video's outputs (same source bytes, `Video.outputs_from`) gets no
more than that video allows: it is visible to anyone only when both are published, and public
only when both are public, since the files are the other video's.
"""

from django.db.models import Q, QuerySet

from transcoding.models import Video

VIEW_PERMISSIONS = ("transcoding.view_video", "transcoding.change_video")


def sees_every_video(user) -> bool:
    """Users Django's model permissions let view any video, published or not."""
    return bool(user and user.is_active and any(user.has_perm(p) for p in VIEW_PERMISSIONS))


def published_q(prefix: str = "") -> Q:
    """Published, and so is the video whose outputs it plays, if any."""
    return Q(**{f"{prefix}published": True}) & (
        Q(**{f"{prefix}outputs_from__isnull": True}) | Q(**{f"{prefix}outputs_from__published": True})
    )


def public_q(prefix: str = "") -> Q:
    return (
        published_q(prefix)
        & Q(**{f"{prefix}private": False})
        & (Q(**{f"{prefix}outputs_from__isnull": True}) | Q(**{f"{prefix}outputs_from__private": False}))
    )


def visible_q(user) -> Q:
    """Published, or uploaded by `user` (for a user who does not see every video)."""
    if user is not None and user.is_authenticated and user.is_active:
        return published_q() | Q(created_by=user.pk)
    return published_q()


def videos_visible_to(user) -> QuerySet:
    videos = Video.objects.all()
    return videos if sees_every_video(user) else videos.filter(visible_q(user))


def may_fetch_files(user, video: Video) -> bool:
    """Whether `user` may fetch a non-public video's files without a signature: who sees every
    video, and its uploader. (Being published is not enough: a private video's files go out
    only through signed URLs.)"""
    if sees_every_video(user):
        return True
    return bool(user is not None and user.is_authenticated and video.created_by_id == user.pk)


def is_public(video: Video) -> bool:
    """Its files may be handed out by plain URLs (`video_urls`), and served to anyone
    (`media_views`)."""
    if not video.published or video.private:
        return False
    if video.outputs_from_id is None:
        return True
    source = video.outputs_from  # loaded with the video by `selectors.with_parts`
    return source.published and not source.private


def public_video_ids(ids) -> set[int]:
    """Which of these video ids are public (one query)."""
    return set(Video.objects.filter(public_q(), pk__in=list(ids)).values_list("pk", flat=True))
