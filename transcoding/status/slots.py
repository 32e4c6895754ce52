"""Bounded fan-out: how many encode jobs may run at once, per video
(`TRANSCODING_MAX_CHUNKS_IN_FLIGHT`) and in the whole deployment
(`TRANSCODING_MAX_ENCODES_IN_FLIGHT`), so a burst of long videos cannot take every worker, every
Lambda of the account or every database connection (docs/scaling.md).

The claim enforces the caps (`status.jobs.job_claim` asks `over_cap` once it committed); a job
it refuses is *held*: queued, with no message anywhere. Dispatching is then only a matter of speed,
and every backend obeys the same rule: the fan-out dispatches the chunk jobs that fit and holds
the rest, a job that ends hands its slot on (`release`, after commit), and the watchdog
releases what fits once a minute, in case a hand-over was lost with its worker.

`fit` is the rule itself, a pure function; the rest reads the rows it needs.
"""

from collections import Counter
from collections.abc import Iterable

from django.db.models import Count
from django.db.models.functions import Coalesce
from django.utils import timezone

from transcoding.conf import settings
from transcoding.models import JobState, ProcessingJob

# Held jobs looked at by one release beyond twice the free slots.
WINDOW = 200


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


def _running() -> dict[int, int]:
    """Encodes in flight per video, in one grouped query."""
    rows = ProcessingJob.objects.in_flight(timezone.now())
    return dict(rows.order_by().values("video_id").annotate(n=Count("pk")).values_list("video_id", "n"))


def over_cap(video_id: int) -> bool:
    """Right after an encode's claim committed (it counts itself): are more encodes in flight
    than the caps allow? Then the claim is given back (`status.jobs.job_claim`).

    No lock: every claimer commits first, then counts what is committed. Of any set of
    claims that all went ahead, the one committed last counted every other (each committed
    before it counted), so no more than a cap ever go ahead. Claims racing for the last slot
    may all give it back; they are held, and released when an encode ends, or at once by the
    claimer that gave up (`encoding.fanout.dispatch_released`). A global lock instead made
    every claim and every job's end wait in one line: with a thousand workers behind a pool of
    forty connections, the waiting transactions held every connection (bench B6)."""
    if not capped():
        return False
    in_flight = ProcessingJob.objects.in_flight(timezone.now())
    per_video, total = settings.MAX_CHUNKS_IN_FLIGHT, settings.MAX_ENCODES_IN_FLIGHT
    if per_video and in_flight.filter(video_id=video_id).count() > per_video:
        return True
    return bool(total) and in_flight.count() > total


def _caps() -> dict[str, int]:
    return {"per_video": settings.MAX_CHUNKS_IN_FLIGHT, "total": settings.MAX_ENCODES_IN_FLIGHT}


def hold(job_ids: Iterable[int]) -> None:
    """These queued jobs wait for a slot (no message carries them)."""
    ProcessingJob.objects.filter(pk__in=list(job_ids), state=JobState.QUEUED).update(held=True)


def release() -> list[int]:
    """Held jobs that fit under the caps now, first chunks first and oldest first (the claim's
    order): unheld here, and returned for the caller to dispatch after commit. Call inside a
    transaction. No lock: two releasing at once may release too many, and the claim gives the
    excess back."""
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
