"""Originals imported from a URL: the server fetches the file a user names, under the outbound
rules (`transcoding.outbound`: https only by default, no internal address after any
redirect), and streams it into storage like an upload, with the same size limit and the SHA-256
computed on the way. ffmpeg only ever opens the stored copy, never the URL.

Two halves, as with every way in: `video_create_for_import` checks the URL and creates the
video (no source yet) when the request arrives; `fetch_source` is the import job's work. Like
the rest of `ingest`, neither queues work: `services.video_import_url` and the `import` step
(`jobs.steps`) do.
"""

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from django.core.files import File
from django.core.files.storage import default_storage
from django.template.defaultfilters import filesizeformat

from transcoding.conf import settings
from transcoding.errors import InvalidRequest, LimitExceeded, SourceRejected
from transcoding.ingest.create import UNTITLED, default_preset, default_title
from transcoding.ingest.hashing import HashingStream
from transcoding.models import Preset, Video
from transcoding.models.videos import source_upload_to
from transcoding.outbound.http import OutboundRefused, OutboundUnavailable, check_url, open_url

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
# Answers worth another attempt: the server is overloaded or down for now.
RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}


def url_filename(url: str) -> str:
    """The URL's last path segment, as a label (the original's "file name"), or ""."""
    return PurePosixPath(unquote(urlsplit(url).path)).name[:255]


def new_source_key() -> str:
    """Where an import stores its original: a key the server chooses, as for uploads. Chosen
    once per import job, so a retried attempt overwrites its own partial file."""
    return source_upload_to(None, "")


def video_create_for_import(
    url: str,
    *,
    title: str = "",
    description: str = "",
    preset: Preset | None = None,
    published: bool = False,
    private: bool | None = None,
    created_by=None,
) -> Video:
    """Check the URL as it resolves now (InvalidRequest, one line, when refused: nothing is
    stored) and create its video, still without an original."""
    try:
        check_url(
            url,
            allow_http=settings.URL_IMPORT_ALLOW_HTTP,
            allow_internal=settings.URL_IMPORT_ALLOW_INTERNAL,
        )
    except (OutboundRefused, OutboundUnavailable) as exc:
        raise InvalidRequest(str(exc))
    filename = url_filename(url)
    video = Video(
        title=(title or (default_title(filename) if filename else UNTITLED))[:200],
        description=description,
        preset=preset or default_preset(),
        published=published,
        created_by=created_by,
        original_filename=filename,
        import_url=url,
    )
    if private is not None:
        video.private = private
    video.save()
    return video


def _size(n: int) -> str:
    """A size for a one-line message (filesizeformat's no-break space would not survive it)."""
    return filesizeformat(n).replace("\xa0", " ")


class _Stopped(Exception):
    """The job stopped (cancelled, or its lease lost) while storage was reading the download."""


def _limited(chunks: Iterable[bytes], limit: int, stop: threading.Event) -> Iterator[bytes]:
    """The chunks, stopped (LimitExceeded) as soon as they pass `limit` bytes, whatever the
    server announced, or when the job stops."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise LimitExceeded(f"The file at the URL is larger than the {_size(limit)} limit.")
        if stop.is_set():
            raise _Stopped()
        yield chunk


def _save_with_heartbeat(key: str, stream: HashingStream, stop: threading.Event, heartbeat) -> str:
    """Store the stream while this thread keeps the job's lease. Storage may read the stream
    in a thread of its own (S3's transfer manager does), and a heartbeat writes to the
    database, so the save runs in a helper thread and the heartbeat stays here; when the
    heartbeat raises (the job was cancelled) the save is stopped at its next chunk."""
    outcome: dict = {}

    def save():
        try:
            outcome["name"] = default_storage.save(key, File(stream, name=key))
        except BaseException as exc:
            outcome["error"] = exc

    saver = threading.Thread(target=save, name=f"url-import {key}", daemon=True)
    saver.start()
    try:
        while saver.is_alive():
            saver.join(timeout=1.0)
            heartbeat()
    except BaseException:
        stop.set()
        saver.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["name"]


def _check_answer(status: int, length: str | None, limit: int) -> None:
    if status in RETRYABLE_STATUSES:
        raise OutboundUnavailable(f"The URL answered {status}.")
    if not 200 <= status < 300:
        raise SourceRejected(f"The URL answered {status}.")
    if length and length.strip().isdigit() and int(length) > limit:
        raise LimitExceeded(f"The URL announces {_size(int(length))}, more than the {_size(limit)} limit.")


def fetch_source(video: Video, key: str, heartbeat: Callable[[], None]) -> Video:
    """Download the video's `import_url` into storage under `key` and record it as the
    original (name, size, SHA-256). Any failure (refused, over the limit, the network, a
    cancel) deletes what was stored, so nothing half-stored is left and a retry starts over."""
    limit = int(settings.MAX_UPLOAD_BYTES)
    try:
        with open_url(
            video.import_url,
            allow_http=settings.URL_IMPORT_ALLOW_HTTP,
            allow_internal=settings.URL_IMPORT_ALLOW_INTERNAL,
            max_redirects=int(settings.URL_IMPORT_MAX_REDIRECTS),
            timeout=float(settings.URL_IMPORT_TIMEOUT),
        ) as response:
            _check_answer(response.status, response.headers.get("Content-Length"), limit)
            stop = threading.Event()
            stream = HashingStream(_limited(response.iter_bytes(CHUNK), limit, stop))
            name = _save_with_heartbeat(key, stream, stop, heartbeat)
            if stream.count == 0:
                raise SourceRejected("The URL answered an empty file.")
    except BaseException:
        try:
            default_storage.delete(key)
        except Exception:  # the storage failing too: the failure that matters is the first
            log.warning("could not delete the partial import %s", key, exc_info=True)
        raise
    video.source.name = name
    video.source_size = stream.count
    video.source_sha256 = stream.hexdigest()
    video.original_filename = url_filename(response.url) or video.original_filename
    video.save(update_fields=["source", "source_size", "source_sha256", "original_filename", "updated_at"])
    return video
