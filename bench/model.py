"""B3's fan-out model: time to ready and Lambda cost of a chunked encode on K workers. Pure
functions of measured inputs (`Measured`, from B2 on this machine) and a platform's numbers
(`Platform`: measured or assumed, said where they are built, in b3.py).

A chunk task takes its ffmpeg CPU spread over the worker's vCPUs (an encode keeps every vCPU
busy, as it keeps both cores of this machine busy), plus the wall time of everything else the
task does (claim, probe, fan-out, storing results, fan-in) and its database round trips:

    task = max((cpu + audio) / vcpus, audio) + serial + queries * db_round_trip

where only chunk 0 has `audio` (it encodes the whole video's audio, on one thread) and every
further chunk pays `chunk_cpu_overhead` (ffmpeg start-up, seeking into the source). Chunks run
in waves of K (chunk 0, the root job, in the first):

    ready = start + fan_out + first_wave + (waves - 1) * (dispatch + task) + stitch
    start = dispatch + cold_start            (the root job reaches a worker)
    fan_out = (n - 1) * enqueue              (the root enqueues the other chunks one by one)
    first_wave = task0 if K == 1 else max(task0, dispatch + cold_start + task)

That is K workers with `vcpus` each (K Lambda invocations, K servers). K workers that share ONE
host's cores (worker threads or processes on one server) are `time_to_ready_shared`: the
running encodes split the host's cores between them, so a chunk alone gets all of them. B7
found the waves model wrong there (it gave each of 2 workers on 2 cores 1 core for the whole
run, and the last wave's lone chunk ran at half speed in the model, not on the machine).
"""

import math
from dataclasses import dataclass
from fractions import Fraction

from transcoding.media.chunking import plan_chunks


@dataclass(frozen=True)
class Measured:
    video_cpu_per_second: float  # ffmpeg CPU per second of video: ladder + storyboard, no audio
    chunk_cpu_overhead: float  # extra ffmpeg CPU of each further chunk
    audio_cpu_per_second: float  # the audio encode, per second of video (chunk 0 does it all)
    serial_seconds: float  # a chunk task's wall time outside ffmpeg
    queries_per_chunk: float  # database queries a chunk task makes
    stitch_seconds_per_segment: float  # the fan-in that stitches, per 4 s segment of the video


@dataclass(frozen=True)
class Platform:
    name: str
    vcpus: float
    chunk_seconds: float  # the product's chunk length there
    threshold_seconds: float  # videos up to this long are one chunk
    dispatch_seconds: float  # enqueue until a worker starts the task
    cold_start_seconds: float = 0.0  # a fresh worker's start-up (first wave only)
    enqueue_seconds: float = 0.0  # one enqueue call made by the root's fan-out
    db_round_trip: float = 0.0  # added per query (the measured serial time has a local DB)
    time_limit: float | None = None  # seconds one task may run (Lambda: 900)
    memory_gb: float = 0.0
    price_gb_second: float = 0.0
    price_request: float = 0.0


@dataclass(frozen=True)
class Estimate:
    chunks: int
    waves: int
    seconds: float  # request to ready
    longest_task: float
    over_limit: bool  # some task would run longer than the platform allows


def chunk_lengths(duration: float, platform: Platform, segment_seconds: float = 4.0) -> list[float]:
    """The product's own chunk plan (transcoding.media.chunking) for a 30 fps video."""
    spans = plan_chunks(
        duration,
        Fraction(30),
        segment_seconds=segment_seconds,
        chunk_seconds=platform.chunk_seconds,
        threshold_seconds=platform.threshold_seconds,
    )
    return [span.duration for span in spans]


def task_seconds(
    seconds: float, m: Measured, p: Platform, *, first: bool, audio_seconds: float = 0.0
) -> float:
    cpu = m.video_cpu_per_second * seconds + (0.0 if first else m.chunk_cpu_overhead)
    audio = m.audio_cpu_per_second * audio_seconds
    return max((cpu + audio) / p.vcpus, audio) + m.serial_seconds + m.queries_per_chunk * p.db_round_trip


def task_times(duration: float, m: Measured, p: Platform) -> list[float]:
    lengths = chunk_lengths(duration, p)
    first = task_seconds(lengths[0], m, p, first=True, audio_seconds=duration)
    return [first, *(task_seconds(s, m, p, first=False) for s in lengths[1:])]


def stitch_seconds(duration: float, m: Measured, segment_seconds: float = 4.0) -> float:
    return m.stitch_seconds_per_segment * math.ceil(duration / segment_seconds)


def time_to_ready(duration: float, workers: int, m: Measured, p: Platform) -> Estimate:
    tasks = task_times(duration, m, p)
    n, waves = len(tasks), math.ceil(len(tasks) / workers)
    start = p.dispatch_seconds + p.cold_start_seconds
    task = max(tasks[1:], default=0.0)
    if n == 1:
        encode = tasks[0]
    else:
        first_wave = tasks[0] if workers == 1 else max(tasks[0], start + task)
        encode = (n - 1) * p.enqueue_seconds + first_wave + (waves - 1) * (p.dispatch_seconds + task)
    longest = max(tasks)
    over = p.time_limit is not None and longest > p.time_limit
    return Estimate(n, waves, start + encode + stitch_seconds(duration, m), longest, over)


def unchunked(duration: float, m: Measured, p: Platform) -> Estimate:
    """The whole video as one task on one worker (no chunking), for reference."""
    task = task_seconds(duration, m, p, first=True, audio_seconds=duration)
    seconds = p.dispatch_seconds + p.cold_start_seconds + task + stitch_seconds(duration, m)
    return Estimate(1, 1, seconds, task, p.time_limit is not None and task > p.time_limit)


@dataclass(frozen=True)
class Work:
    cpu: float  # ffmpeg CPU seconds (video, plus the audio for chunk 0): split over the cores it gets
    floor: float  # chunk 0's audio ffmpeg is one thread: the encode takes at least this long
    fixed: float  # wall time outside ffmpeg (serial + queries * round trip), no CPU of note


def task_work(duration: float, m: Measured, p: Platform) -> list[Work]:
    """Each chunk task's work, before it is divided by the cores it gets (task_seconds's terms)."""
    fixed = m.serial_seconds + m.queries_per_chunk * p.db_round_trip
    works = []
    for index, seconds in enumerate(chunk_lengths(duration, p)):
        audio = m.audio_cpu_per_second * duration if index == 0 else 0.0
        cpu = m.video_cpu_per_second * seconds + (0.0 if index == 0 else m.chunk_cpu_overhead)
        works.append(Work(cpu + audio, audio, fixed))
    return works


def time_to_ready_shared(duration: float, workers: int, m: Measured, p: Platform) -> Estimate:
    """K workers on one host of `p.vcpus` cores: the encodes running at a moment share the cores
    equally (an ffmpeg alone uses them all; two use half each), so the host stays busy while any
    chunk runs. Jobs go to the first free worker (a worker takes the next job as it finishes
    one, not in waves), after `dispatch_seconds`; the chunk jobs are there once the root's
    fan-out is done. A small event simulation: exact for this processor-sharing model, pure."""
    works = task_work(duration, m, p)
    n, eps = len(works), 1e-9
    start = p.dispatch_seconds + p.cold_start_seconds
    fanned = start + (n - 1) * p.enqueue_seconds
    pending = list(range(1, n))
    begins = [(fanned, 0)]  # (when a job's encode begins, job)
    for _ in range(min(workers - 1, len(pending))):  # idle workers take chunks as they are enqueued
        begins.append((fanned + p.dispatch_seconds + p.cold_start_seconds, pending.pop(0)))
    now, left, waiting, began, finished = 0.0, {}, {}, {}, {}
    while begins or left or waiting:
        share = p.vcpus / len(left) if left else 0.0
        now_next = min(
            [b for b, _ in begins] + list(waiting.values()) + [now + r / share for r in left.values()]
        )
        for job in left:
            left[job] -= (now_next - now) * share
        now = now_next
        for job in [j for j, r in left.items() if r <= eps]:
            del left[job]
            waiting[job] = max(now, began[job] + works[job].floor) + works[job].fixed
        for job in [j for j, t in waiting.items() if t <= now + eps]:
            del waiting[job]
            finished[job] = now
            if pending:
                begins.append((now + p.dispatch_seconds, pending.pop(0)))
        for item in [b for b in begins if b[0] <= now + eps]:
            begins.remove(item)
            began[item[1]] = now
            left[item[1]] = works[item[1]].cpu
    ready = max(finished.values()) + stitch_seconds(duration, m)
    longest = max(finished[j] - began[j] for j in finished)
    over = p.time_limit is not None and longest > p.time_limit
    return Estimate(n, math.ceil(n / workers), ready, longest, over)


def cost(duration: float, workers: int, m: Measured, p: Platform) -> float:
    """Dollars for one video: every task's billed duration (plus one cold start per worker
    started, billed as init time) at the platform's memory, and one request per task."""
    tasks = task_times(duration, m, p)
    billed = sum(tasks) + min(workers, len(tasks)) * p.cold_start_seconds
    return billed * p.memory_gb * p.price_gb_second + len(tasks) * p.price_request


def cost_per_minute(duration: float, workers: int, m: Measured, p: Platform) -> float:
    return cost(duration, workers, m, p) / (duration / 60)


# --- The site and the encoder as two Lambda functions (bench/b9.py): what a page view costs ---

LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1769 MB of memory


@dataclass(frozen=True)
class LambdaFunction:
    name: str
    memory_mb: int
    archive_mib: float  # the slim handler's project archive, fetched from S3 at a cold start
    unpacked_mib: float  # ...and unpacked into /tmp


@dataclass(frozen=True)
class ColdStart:
    """Assumed (b9.py says so): what a slim-handler cold start costs besides the request."""

    init_seconds: float  # runtime start, Zappa's handler, Django set up (measured here, CPU)
    download_mib_per_second: float  # S3 to the function
    unpack_mib_per_second: float  # gunzip + tar into /tmp, on one full vCPU


def cpu_share(memory_mb: int) -> float:
    """The vCPU a single-threaded request gets: one core from 1769 MB, less below (CPU is in
    proportion to memory). Django serves a request on one thread, so more does not help."""
    return min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)


def request_seconds(local_seconds: float, memory_mb: int) -> float:
    """A request measured on one of this machine's cores, on a function of `memory_mb`."""
    return local_seconds / cpu_share(memory_mb)


def cold_start_seconds(fn: LambdaFunction, c: ColdStart) -> float:
    """Init plus fetching and unpacking the project archive; the CPU-bound parts slow down
    below one vCPU like a request does."""
    cpu = c.init_seconds + fn.unpacked_mib / c.unpack_mib_per_second
    return fn.archive_mib / c.download_mib_per_second + cpu / cpu_share(fn.memory_mb)


def page_view_cost(
    local_seconds: float,
    fn: LambdaFunction,
    cold: ColdStart,
    cold_share: float,
    price_gb_second: float,
    price_request: float,
) -> float:
    """Dollars for one page view: its billed duration at the function's memory and one request;
    a share `cold_share` of views also pays a cold start (billed, as init is since August 2025)."""
    seconds = request_seconds(local_seconds, fn.memory_mb) + cold_share * cold_start_seconds(fn, cold)
    return seconds * fn.memory_mb / 1024 * price_gb_second + price_request
