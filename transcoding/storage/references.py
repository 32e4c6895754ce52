"""Which stored objects belong to which video, and deleting them in batches.

A video's outputs live under its prefix, `videos/<id>/`. A video whose source bytes equal an
earlier video's plays that video's outputs instead of encoding again
(`dedupe.video_link_duplicate`): its rows name keys under the other video's prefix. So the
rule for deleting is by reference, not by id: a prefix is deleted only when no other video's
rows name a key under it, and `purge_orphans` calls a prefix an orphan only when its id is no
video's and no video's rows name it.

Listing and deleting are the media store's (`backends`): with S3 one flat listing and
`DeleteObjects`, 1000 keys a request.
"""

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from transcoding.conf import settings
from transcoding.models import Download, Poster, Rendition, Storyboard, Subtitle, Video
from transcoding.storage import objects
from transcoding.storage.backends import StoredObject

# Fields naming output keys, per model, and how each row names its video.
_KEY_FIELDS = (
    (Video, ("hls_path", "dash_path"), "pk"),
    (Rendition, ("playlist_path", "init_path"), "video_id"),
    (Storyboard, ("vtt_path",), "video_id"),
    (Poster, ("path",), "video_id"),
    (Subtitle, ("vtt_path", "playlist_path"), "video_id"),
    (Download, ("path",), "video_id"),
)


# --- references -------------------------------------------------------------------------------
def output_prefix_of(key: str) -> str | None:
    """`videos/7` for `videos/7/720p/seg_00001.m4s`; None for a key outside any video's prefix."""
    root = settings.OUTPUT_PREFIX.strip("/")
    rest = key.removeprefix(root + "/") if key.startswith(root + "/") else None
    if not rest or "/" not in rest:
        return None
    return f"{root}/{rest.split('/', 1)[0]}"


def referenced_keys(video: Video) -> set[str]:
    """Every output key the video's rows name (manifests, playlists, init sections, storyboard,
    poster, subtitle tracks, MP4 downloads; segments and sprite sheets sit beside these)."""
    keys = {video.hls_path, video.dash_path}
    for model, fields, owner in _KEY_FIELDS[1:]:
        for row in model.objects.filter(**{owner: video.pk}).values_list(*fields):
            keys.update(row)
    try:
        keys.update(video.storyboard.image_paths or [])
    except Storyboard.DoesNotExist:
        pass
    return {k for k in keys if k}


def video_output_prefixes(video: Video) -> list[str]:
    """The prefixes the video's outputs are under: its own, and the one of the video it shares
    outputs with, if any. The only prefixes its signed URLs may name."""
    own = objects.video_prefix(video.pk)
    others = {output_prefix_of(k) for k in referenced_keys(video)} - {None, own}
    return [own, *sorted(others)]


def prefix_users(prefix: str, *, exclude: int | None = None) -> set[int]:
    """Ids of the videos whose rows name a key under `prefix` (or have it as output prefix)."""
    users = set()
    for model, fields, owner in _KEY_FIELDS:
        query = Q()
        for field in fields:
            query |= Q(**{f"{field}__startswith": prefix + "/"})
        if model is Video:
            query |= Q(output_prefix=prefix)
        users.update(model.objects.filter(query).values_list(owner, flat=True))
    users.discard(exclude)
    return users


def video_delete_outputs(video: Video) -> dict[str, int]:
    """Delete the video's outputs: each of its prefixes that no other video plays from.
    Returns {prefix: objects deleted}; a prefix still in use by another video is kept."""
    deleted = {}
    for prefix in video_output_prefixes(video):
        if not prefix_users(prefix, exclude=video.pk):
            deleted[prefix] = objects.delete_prefix(prefix)
    return deleted


# --- orphans ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Orphan:
    object: StoredObject
    reason: str


def _referenced_output_prefixes() -> set[str]:
    prefixes = set(Video.objects.exclude(output_prefix="").values_list("output_prefix", flat=True))
    for model, fields, _ in _KEY_FIELDS:
        for row in model.objects.values_list(*fields):
            prefixes.update(output_prefix_of(k) for k in row if k)
    return prefixes - {None}


def find_orphans(*, min_age: timedelta = timedelta(hours=24)) -> Iterator[Orphan]:
    """Stored objects no video owns, older than `min_age` (younger ones may belong to an upload
    or a video being created right now):
    - under the outputs prefix: `videos/<id>/...` where no video has that id and no video's
      rows name a key under it;
    - under the originals prefix: keys no video's `source` is;
    - under `subtitles/`: uploaded subtitle files no track's `file` is."""
    cutoff = timezone.now() - min_age
    video_ids = {str(pk) for pk in Video.objects.values_list("pk", flat=True)}
    in_use = _referenced_output_prefixes()
    sources = set(Video.objects.exclude(source="").values_list("source", flat=True))
    tracks = set(Subtitle.objects.exclude(file="").values_list("file", flat=True))

    def old(obj: StoredObject) -> bool:
        return obj.modified is None or obj.modified <= cutoff

    for obj in objects.list_objects(settings.OUTPUT_PREFIX):
        prefix = output_prefix_of(obj.key)
        if prefix is None:
            if old(obj):
                yield Orphan(obj, "outside any video's prefix")
        elif posixpath.basename(prefix) not in video_ids and prefix not in in_use and old(obj):
            yield Orphan(obj, f"{prefix}: no such video")
    for obj in objects.list_objects(settings.SOURCE_PREFIX):
        if obj.key not in sources and old(obj):
            yield Orphan(obj, "original of no video")
    for obj in objects.list_objects("subtitles"):
        if obj.key not in tracks and old(obj):
            yield Orphan(obj, "subtitle file of no track")
