"""Creating videos from originals: the one place that decides a new video's title (the file's
name when none is given), preset (the default one) and stored name (`Video.source`'s upload_to,
chosen by the server), and records the size and the SHA-256 the server computed.

Four ways in: a file or a path (`video_create`: the `ingest` command, tests), an object
already in the bucket (`video_create_from_stored`: the S3 drop folder), an upload the admin
form streamed in (`video_store_upload`), and an upload in parts (`ingest.uploads`: straight to
S3 or to the site, through `video_from_upload`). None of them queues work: the caller does
(`services.video_request_processing`). Each announces a new video
(`status.events.video_created`) in the transaction that writes its row.
"""

from pathlib import Path, PurePosixPath

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from transcoding.errors import InvalidRequest
from transcoding.ingest.hashing import HashingFile
from transcoding.models import Preset, Video
from transcoding.status.events import announce_created

UNTITLED = "Untitled video"


def default_preset() -> Preset | None:
    return Preset.objects.filter(is_default=True).first() or Preset.objects.order_by("pk").first()


def default_title(filename: str) -> str:
    """The client's file name without its extension (a label, never a path)."""
    return PurePosixPath(filename.replace("\\", "/")).stem[:200] or UNTITLED


def _defaults(video: Video, filename: str) -> Video:
    """The title (when none is given), the file name as a label and, for a new video without
    one, the default preset (an existing video may use the built-in ladder on purpose)."""
    video.title = video.title or default_title(filename)
    video.original_filename = Path(filename).name[:255]
    if video.pk is None and video.preset_id is None:
        video.preset = default_preset()
    return video


def _save(video: Video) -> None:
    """Save the row; a new video is announced (`status.events.video_created`, which the
    webhooks' `video.created` hangs on) in the same transaction as its row is written."""
    new = video.pk is None
    with transaction.atomic():
        video.save()
        if new:
            announce_created(Video, video.pk)


def video_create(
    *,
    source: File | str | Path,
    title: str = "",
    description: str = "",
    preset: Preset | None = None,
    poster_time: float | None = None,
    published: bool = False,
    original_filename: str = "",
) -> Video:
    """Store the original and create the video. `source` is an open File or a local path."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidRequest(f"No such file: {path}")
        with open(path, "rb") as handle:
            return video_create(
                source=File(handle, name=path.name),
                title=title,
                description=description,
                preset=preset,
                poster_time=poster_time,
                published=published,
                original_filename=original_filename or path.name,
            )
    name = original_filename or Path(getattr(source, "name", "") or "video").name
    video = _defaults(
        Video(
            title=title, description=description, preset=preset, poster_time=poster_time, published=published
        ),
        name,
    )
    hashing = HashingFile(source)
    video.source.save(name, hashing, save=False)
    video.source_size = video.source.size
    video.source_sha256 = getattr(source, "sha256", "") or hashing.hexdigest()
    _save(video)
    return video


def video_create_from_stored(name: str, *, title: str = "", preset: Preset | None = None) -> Video | None:
    """A video whose original is the already stored object `name` (an S3 drop folder): nothing
    is copied. None when a video with that original exists already (events arrive at least
    once)."""
    with transaction.atomic():
        if Video.objects.filter(source=name).exists():
            return None
        video = _defaults(Video(title=title, preset=preset), PurePosixPath(name).name)
        video.source.name = name
        video.source_size = default_storage.size(name)
        _save(video)
    return video


def video_from_upload(video: Video, *, name: str, size: int, filename: str, sha256: str = "") -> Video:
    """Save `video` (unsaved, its details filled by a form) with the uploaded object `name` as
    its original. `sha256` only when the server computed it over the bytes it stored (an upload
    in parts to the site); none for a direct upload to S3: the bytes never passed through."""
    video.source.name = name
    video.source_size = size
    video.source_sha256 = sha256
    _save(_defaults(video, filename))
    return video


def video_store_upload(video: Video) -> Video:
    """Save a video whose `source` a form has just set to an upload (the admin's form): a new
    video, or a replaced original. Records the file's name, size and the SHA-256 the upload
    handlers computed, forgets what was learned from a previous original (deleted once the
    transaction commits). Storage streams the upload: a temporary file on disk is moved or
    copied in chunks, never read into memory."""
    name = Path(video.source.name).name
    previous = Video.objects.filter(pk=video.pk).values_list("source", flat=True).first() if video.pk else ""
    _defaults(video, name)
    video.source_size = video.source.size
    video.source_sha256 = getattr(video.source.file, "sha256", "")  # hashed as it streamed in
    video.container = video.video_codec = video.audio_codec = ""
    video.duration = video.width = video.height = video.fps = None
    video.probe = {}
    _save(video)
    if previous and previous != video.source.name:
        storage = video.source.storage
        transaction.on_commit(lambda: storage.delete(previous))
    return video
