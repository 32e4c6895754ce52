"""Bounded fan-out: how many encode jobs may run at once, per video
(`TRANSCODING_MAX_CHUNKS_IN_FLIGHT`) and in the whole deployment
(`TRANSCODING_MAX_ENCODES_IN_FLIGHT`), so a burst of long videos cannot take every worker, every
Lambda of the account or every database connection (docs/scaling.md).

The claim enforces the caps (`status.jobs.job_claim` asks `has_room` under `lock`); a job it
refuses is *held*: queued, with no message anywhere. Dispatching is then only a matter of speed,
and every backend obeys the same rule: the fan-out dispatches the chunk jobs that fit and holds
the rest, a job that ends hands its slot on (`release`, after commit), and the watchdog
releases what fits once a minute, in case a hand-over was lost with its worker.

`fit` is the rule itself, a pure function; the rest reads the rows it needs.
"""

from collections import Counter
from collections.abc import Iterable

from django.db import connection
from django.db.models import Count
from django.db.models.functions import Coalesce
from django.utils import timezone

from transcoding.conf import settings
from transcoding.models import JobState, ProcessingJob

# Held jobs looked at by one release beyond twice the free slots.
WINDOW = 200
# The key of the PostgreSQL advisory lock that makes encode claims decide one at a time.
_LOCK_KEY = 0x7EAD_5107


def fit(
    candidates: Iterable[tuple[int, int]],
    running: dict[int, int],
    *,
    per_video: int,
    total: int,
) -> list[int]:
    """The candidates (job id, video id), in the order given, that may start now without
    passing either cap, counting those already `running` per video. A cap of 0 is no cap."""
    per = Counter(running)
    in_flight = sum(per.values())
    chosen = []
    for job_id, video_id in candidates:
        if total and in_flight >= total:
            break
        if per_video and per[video_id] >= per_video:
            continue
        chosen.append(job_id)
        per[video_id] += 1
        in_flight += 1
    return chosen


def capped() -> bool:
    return bool(settings.MAX_CHUNKS_IN_FLIGHT or settings.MAX_ENCODES_IN_FLIGHT)


def lock() -> None:
    """Inside a transaction: claims and releases of encode jobs decide one at a time, so two
    workers cannot both take the last slot. PostgreSQL: a transaction-scoped advisory lock (not
    the video's row lock, which the stitch holds while it writes manifests). SQLite: the
    IMMEDIATE transaction already holds the database's write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _running(video_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Encodes in flight per video: all of them when a deployment cap applies, else only the
    videos asked about. One grouped query."""
    rows = ProcessingJob.objects.in_flight(timezone.now())
    if video_ids is not None and not settings.MAX_ENCODES_IN_FLIGHT:
        rows = rows.filter(video_id__in=list(video_ids))
    return dict(rows.order_by().values("video_id").annotate(n=Count("pk")).values_list("video_id", "n"))


def has_room(video_id: int) -> bool:
    """May one more encode of this video start now? Inside the claim's transaction: takes
    `lock` first, so the answer holds until the claim commits."""
    if not capped():
        return True
    lock()
    return bool(fit([(0, video_id)], _running([video_id]), **_caps()))


def _caps() -> dict[str, int]:
    return {"per_video": settings.MAX_CHUNKS_IN_FLIGHT, "total": settings.MAX_ENCODES_IN_FLIGHT}


def hold(job_ids: Iterable[int]) -> None:
    """These queued jobs wait for a slot (no message carries them)."""
    ProcessingJob.objects.filter(pk__in=list(job_ids), state=JobState.QUEUED).update(held=True)


def release() -> list[int]:
    """Held jobs that fit under the caps now, first chunks first and oldest first (the claim's
    order): unheld here, and returned for the caller to dispatch after commit. Call inside a
    transaction."""
    lock()
    held = (
        ProcessingJob.objects.filter(held=True, state=JobState.QUEUED)
        .order_by(Coalesce("chunk", 0), "created_at", "pk")
        .values_list("pk", "video_id")
    )
    if not capped():
        chosen = [pk for pk, _ in held]
    else:
        # A window of the queue, not all of it: a job's end must not read every held chunk of
        # every long video. Past the free slots, the window leaves room for videos at their cap.
        running = _running()
        total = settings.MAX_ENCODES_IN_FLIGHT
        free = max(total - sum(running.values()), 0) if total else 0
        chosen = fit(held[: free * 2 + WINDOW], running, **_caps())
    if chosen:
        ProcessingJob.objects.filter(pk__in=chosen, held=True).update(held=False)
    return chosen
