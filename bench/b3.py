"""B3, the fan-out model: time to ready of 10- and 60-minute 1080p videos on K = 1, 10, 100,
1000 workers, and the Lambda cost per minute of video (bench/model.py: pure functions).

Measured here: the chunk tasks' CPU and their time outside ffmpeg (B2's chunk jobs), the audio
encode's CPU (our audio command alone, on B2's source), the stitch, and the Celery dispatch
latency with the real Redis broker (bench/dispatch_probe.py). Assumed, and said so: Lambda's
cold start, asynchronous dispatch and Invoke call, the database round trip from Lambda, and that
a Lambda vCPU does the work of one of this machine's cores.
"""

import math
import os
import shutil
import statistics

from . import b2, commands, dispatch_probe, machine, model, procs, store
from .context import Context
from .report import Section, Summary, figure, table
from .scratch import ffmpeg_input, plan_for

WORKERS = (1, 10, 100, 1000)
LENGTHS = (600.0, 3600.0)
# Lambda, x86, us-east-1 prices; 10240 MB is the largest function, and gets 6 vCPUs.
LAMBDA_MEMORY_GB, LAMBDA_VCPUS, LAMBDA_LIMIT = 10240 / 1024, 6, 900.0
PRICE_GB_SECOND, PRICE_REQUEST = 0.0000166667, 0.20 / 1_000_000
# Assumptions (not measurable here), see the section's text.
COLD_START, ASYNC_DISPATCH, INVOKE_CALL, RDS_ROUND_TRIP = 2.0, 0.1, 0.03, 0.001


def _audio_command(ctx: Context, source, plan, workdir) -> list[commands.Command]:
    """The product's own audio command for a chunked video (build_audio_args: the ffmpeg that
    runs beside chunk 0's), or our audio output alone where the product has no such command."""
    from transcoding.media import ffmpeg

    if hasattr(ffmpeg, "build_audio_args"):
        argv = ffmpeg.build_audio_args(ctx.ffmpeg, ffmpeg_input(source), plan, str(workdir))
        dirs = (ffmpeg.AUDIO_DIR,)
        return [commands.Command("audio", argv, dirs, (f"{ffmpeg.AUDIO_DIR}/seg_*.m4s",))]
    audio = commands.usual_way(ctx.ffmpeg, ffmpeg_input(source), plan, str(workdir))
    return [c for c in audio if c.label == "audio"]


def _audio_cpu(ctx: Context, source, duration: float) -> list[float]:
    """ffmpeg CPU per second of video of the whole video's audio (it reads the whole file)."""
    _, plan = plan_for(source)
    rates = []
    for _ in range(ctx.options.runs):
        workdir = ctx.scratch.work / "b3-audio"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        audio = _audio_command(ctx, source, plan, workdir)
        try:
            measured = procs.run(audio, workdir)
            procs.check_outputs(workdir, audio)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rates.append(measured.cpu / duration)
    return rates


def _celery(ctx: Context) -> dict | None:
    missing = dispatch_probe.redis_missing()
    if missing:
        ctx.log(f"B3: Celery dispatch not measured: {missing}")
        return {"missing": missing}
    result = dispatch_probe.measure(ctx.scratch.env(), ctx.scratch.root, ctx.options.b3_celery_samples)
    for key in ("enqueue_call", "to_start", "to_end"):
        result[key] = Summary.of(s[key] for s in result["samples"])
    ctx.log(f"B3 Celery: enqueue → task start {result['to_start'].median * 1000:.1f} ms (median)")
    return result


def _measured(result: dict, audio: list[float]) -> model.Measured:
    whole, chunked = result["runs"][b2.WHOLE], result["runs"][b2.CHUNKED]
    duration, rows = result["duration"], b2.chunk_rows(result)
    audio_rate = statistics.median(audio)
    whole_cpu = Summary.of(r["ffmpeg_cpu"] for r in whole).median
    chunked_cpu = Summary.of(r["ffmpeg_cpu"] for r in chunked).median
    later = rows[1:]
    return model.Measured(
        video_cpu_per_second=(whole_cpu - audio_rate * duration) / duration,
        chunk_cpu_overhead=max(0.0, (chunked_cpu - whole_cpu) / max(1, len(later))),
        audio_cpu_per_second=audio_rate,
        serial_seconds=statistics.median(r["serial"] for r in later),
        queries_per_chunk=statistics.median(r["queries"] for r in later),
        stitch_seconds_per_segment=Summary.of(r["stitch"] for r in chunked).median / math.ceil(duration / 4),
    )


def inputs(ctx: Context) -> tuple[model.Measured, list[float]]:
    """The model's measured inputs and the audio runs behind them, made once per run of the
    harness (B7 checks the model against real runs with the same inputs)."""
    if "b3" not in ctx.shared:
        result = b2.measurements(ctx)[0]
        audio = _audio_cpu(ctx, result["case"].path, result["duration"])
        ctx.shared["b3"] = (_measured(result, audio), audio)
    return ctx.shared["b3"]


def _checked(ctx: Context) -> str:
    """Beside the server rows: how the model compared with the real pipeline (B7), from this
    run when B7 ran first, else from B7's stored section."""
    line = ctx.shared.get("b7_check")
    if not line:
        stored = store.load(ctx.out).get("b7", {}).get("verdicts") or []
        line = stored[0].split(": ", 1)[-1].rstrip(".") if stored else ""
    if not line:
        return "Not checked against real runs in this run (B7 runs the real pipeline against this model)."
    return (
        "Checked against the real pipeline on this machine (B7, K local workers sharing its cores; "
        f"predicted from inputs measured in the same run): {line}. The server rows above are K "
        "servers of this machine's cores each, where the waves model holds; K workers sharing one "
        "host are B7's corrected model (`model.time_to_ready_shared`)."
    )


def lambda_platform() -> model.Platform:
    """The Lambda encoder B3 models (B9 prices its encodes the same way)."""
    return model.Platform(
        f"Lambda {LAMBDA_MEMORY_GB * 1024:.0f} MB ({LAMBDA_VCPUS} vCPU), 30 s chunks",
        vcpus=LAMBDA_VCPUS, chunk_seconds=30, threshold_seconds=45, dispatch_seconds=ASYNC_DISPATCH,
        cold_start_seconds=COLD_START, enqueue_seconds=INVOKE_CALL, db_round_trip=RDS_ROUND_TRIP,
        time_limit=LAMBDA_LIMIT, memory_gb=LAMBDA_MEMORY_GB, price_gb_second=PRICE_GB_SECOND,
        price_request=PRICE_REQUEST,
    )  # fmt: skip


def _platforms(celery: dict | None) -> list[model.Platform]:
    lam = lambda_platform()
    measured = celery and "to_start" in celery
    server = model.Platform(
        f"servers like this one ({_cores()} cores), Celery, 120 s chunks",
        vcpus=_cores(), chunk_seconds=120, threshold_seconds=180,
        dispatch_seconds=celery["to_start"].median if measured else 0.0,
        enqueue_seconds=celery["enqueue_call"].median if measured else 0.0,
    )  # fmt: skip
    return [lam, server]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _cell(estimate: model.Estimate) -> str:
    flag = " ⚠" if estimate.over_limit else ""
    return f"{_span(estimate.seconds)}{flag}"


def _time_table(m: model.Measured, platforms) -> str:
    rows = []
    for p in platforms:
        for length in LENGTHS:
            estimates = [model.time_to_ready(length, k, m, p) for k in WORKERS]
            whole = model.unchunked(length, m, p)
            tasks = model.task_times(length, m, p)
            rows.append(
                [p.name, f"{length / 60:.0f} min", estimates[0].chunks, *(_cell(e) for e in estimates),
                 _cell(whole), f"{tasks[0]:.0f} / {max(tasks[1:], default=0):.0f} s"]
            )  # fmt: skip
    headers = ["platform", "video", "chunks", *(f"K = {k}" for k in WORKERS), "unchunked, 1 worker"]
    return table([*headers, "task: chunk 0 / others"], rows)


def _cost_table(m: model.Measured, p: model.Platform) -> str:
    rows = []
    for length in LENGTHS:
        tasks = model.task_times(length, m, p)
        per_minute = [f"${model.cost_per_minute(length, k, m, p):.4f}" for k in (1, 1000)]
        rows.append([f"{length / 60:.0f} min", len(tasks), f"{sum(tasks):.0f}", *per_minute,
                     f"${model.cost(length, 1000, m, p):.3f}"])  # fmt: skip
    headers = ["video", "invocations", "billed task s", "$ per video-minute, K = 1"]
    return table([*headers, "K = 1000 (a cold start each)", "$ per video, K = 1000"], rows)


def _limit_note(m: model.Measured, p: model.Platform) -> str:
    """What the 15-minute limit means for a video encoded whole on one invocation."""
    parts = []
    for length in LENGTHS:
        whole, chunked = model.unchunked(length, m, p), model.time_to_ready(length, 1, m, p)
        task = f"one task of {_span(whole.longest_task)}"
        if whole.over_limit:
            parts.append(f"the {length / 60:.0f}-minute video would be {task}: over the limit")
        else:
            share = whole.longest_task / LAMBDA_LIMIT
            parts.append(
                f"the {length / 60:.0f}-minute video is {task}, inside the limit only if the 6 vCPUs "
                f"deliver at least {share:.0%} of the modelled throughput"
            )
        parts[-1] += f" (chunked, the longest task is {_span(chunked.longest_task)})"
    return f"Unchunked on one Lambda invocation, {'; '.join(parts)}."


def _inputs(m: model.Measured, celery: dict | None, audio: list[float]) -> str:
    ms = 1000
    rows = [
        ["ffmpeg CPU per second of video (ladder + storyboard)", f"{m.video_cpu_per_second:.3f} s",
         "B2 whole encode minus the audio"],
        ["extra ffmpeg CPU per further chunk", f"{m.chunk_cpu_overhead:.2f} s",
         "B2 (chunked − whole) / (chunks − 1)"],
        ["audio CPU per second of video (chunk 0 does all)", f"{m.audio_cpu_per_second:.4f} s",
         f"the product's audio command alone, {len(audio)} runs"],
        ["chunk task outside ffmpeg", f"{m.serial_seconds:.2f} s", "B2 chunk jobs 1.., median (SQLite)"],
        ["database queries per chunk task", f"{m.queries_per_chunk:.0f}", "B2 chunk jobs, counted"],
        ["stitch (the fan-in that stitched)", f"{m.stitch_seconds_per_segment * ms:.1f} ms per segment",
         "B2, scaled by segments"],
    ]  # fmt: skip
    if celery and "to_start" in celery:
        start, call = celery["to_start"], celery["enqueue_call"]
        rows += [
            ["Celery: enqueue → task starts (idle worker)",
             f"{start.median * ms:.1f} ms (max {start.high * ms:.1f})", f"{start.n} samples, Redis"],
            ["Celery: one enqueue call (fan-out)", f"{call.median * ms:.1f} ms", "measured"],
            ["Celery: worker start to first task done", f"{celery['worker_boot']:.1f} s", "measured, once"],
        ]  # fmt: skip
    else:
        rows.append(["Celery dispatch", "not measured", (celery or {}).get("missing", "")])
    rows += [
        ["Lambda cold start (init)", f"{COLD_START:g} s", "**assumed**, see below"],
        ["Lambda async dispatch, warm", f"{ASYNC_DISPATCH * 1000:.0f} ms", "**assumed**"],
        ["Lambda Invoke call from the root (fan-out)", f"{INVOKE_CALL * 1000:.0f} ms", "**assumed**"],
        ["database round trip from Lambda", f"{RDS_ROUND_TRIP * 1000:.0f} ms per query", "**assumed**"],
    ]
    return table(["input", "value", "from"], rows, "lrl")


def _chart(m: model.Measured, platforms, path) -> None:
    from matplotlib import ticker

    plt, fig, axes = figure(1, len(LENGTHS), (12, 4.8))
    for ax, length in zip(axes[0], LENGTHS):
        for p, color, dy in zip(platforms, ("tab:orange", "tab:blue"), (-12, 6)):
            times = [model.time_to_ready(length, k, m, p).seconds / 60 for k in WORKERS]
            ax.plot(WORKERS, times, "o-", color=color, label=p.name)
            for k, t in zip(WORKERS, times):
                ax.annotate(_span(t * 60), (k, t), xytext=(4, dy), textcoords="offset points", fontsize=7)
            whole = model.unchunked(length, m, p).seconds / 60
            name = p.name.split(",")[0]
            ax.axhline(whole, color=color, linestyle=":", linewidth=1, label=f"{name}: unchunked, one worker")
        limit = "Lambda's 15-min limit per invocation (binds the unchunked line only)"
        ax.axhline(LAMBDA_LIMIT / 60, color="black", linestyle="--", linewidth=0.8, label=limit)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xticks(WORKERS, [str(k) for k in WORKERS])
        ax.set_xlim(0.6, 2500)
        ax.set_xlabel("workers K")
        ax.set_ylabel("modelled time to ready (min, log scale)")
        ax.set_title(f"{length / 60:.0f}-minute video", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("B3 fan-out model: time to ready against workers (chunks in waves of K)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(ctx: Context) -> Section:
    result = b2.measurements(ctx)[0]
    load = machine.load()
    m, audio = inputs(ctx)
    celery = _celery(ctx)
    ctx.shared["b3_measured"] = m  # B9 prices encoded minutes with the same inputs
    platforms = _platforms(celery)
    _chart(m, platforms, ctx.out / "b3.png")
    body = "\n\n".join(
        [
            _intro(result, load),
            _inputs(m, celery, audio),
            _ASSUMPTIONS,
            "Modelled time from the request to `ready` (⚠: a task would exceed Lambda's 15-minute limit):",
            _time_table(m, platforms),
            _checked(ctx),
            _limit_note(m, platforms[0]),
            f"Lambda cost (x86, us-east-1: ${PRICE_GB_SECOND:.10f} per GB-second, $0.20 per 1M requests; "
            f"{LAMBDA_MEMORY_GB * 1024:.0f} MB), from the measured CPU seconds:",
            _cost_table(m, platforms[0]),
        ]
    )
    raw = {"measured": vars(m), "celery": celery, "audio_cpu_per_second": audio}
    return Section("b3", "B3: fan-out model, time to ready against workers", body, ["b3.png"], raw)


def _intro(result: dict, load: float) -> str:
    return (
        f"Inputs measured on this machine (B2's first source: {result['case'].name}, in "
        f"{len(result['runs'][b2.CHUNKED][0]['jobs'])} chunks; load {load:.1f} at the start) "
        "and the model of bench/model.py: chunks run in waves of K, time = dispatch + fan-out + "
        "first wave (chunk 0 also encodes the whole video's audio) + (waves − 1) × (dispatch + "
        "chunk task) + stitch. Chunk lengths come from the product's own planner: 30 s on Lambda "
        "(whole 4 s segments: 32 s chunks), 120 s elsewhere."
    )


_ASSUMPTIONS = """\
Assumed, not measured: a Lambda vCPU does the work of one of this machine's cores, and an encode
keeps all 6 busy (CPU seconds / 6; here one ffmpeg keeps both cores busy); Lambda's cold start
2 s (AWS says a cold start ranges from under 100 ms to over 1 s; a Django + Zappa package is at
the heavy end; since 1 August 2025 the init phase is billed); 0.1 s from an asynchronous Invoke to
a warm function starting (AWS publishes no figure); 30 ms per Invoke call made by the root's
fan-out; 1 ms per database query from Lambda to RDS. Not modelled: reading the source over the
network (each chunk reads its range; chunk 0 reads the whole file for the audio), Lambda's
concurrency quota (1000 by default per region), retries. The 15-minute limit applies to one
invocation: chunked, every task is one chunk and stays far below it; unchunked, a whole video is
one task."""
