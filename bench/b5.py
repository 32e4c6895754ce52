"""B5, what a worker needs against video length: our pipeline on the same generated source at
several lengths, each run in a fresh worker process. Reads the job's ffmpeg peak RSS
(its VmHWM, sampled from /proc) and peak temporary disk (the SegmentUploader's high-water mark of the work
directory), and the worker process's own peak RSS (RUSAGE_SELF ru_maxrss, before the request and
at the end). Target: flat in length. Runs B1 made on a clip of the same length are reused.
"""

from . import sources
from .context import Context
from .report import MIB, Section, Summary, figure, save, table

# A measure is called flat when the longest video needs at most this much more than the shortest.
FLAT_TOLERANCE = 0.25

MEASURES = (
    ("ffmpeg_peak_rss", "ffmpeg peak RSS (job)"),
    ("ffmpeg_vmhwm", "ffmpeg peak RSS (sampled VmHWM)"),
    ("python_peak_rss", "worker peak RSS"),
    ("python_growth", "worker RSS growth during the job"),
    ("peak_temp", "peak temporary disk"),
)


def _measure(ctx: Context) -> list[dict]:
    o = ctx.options
    rows = []
    for length in o.b5_lengths:
        source = sources.generated(length, o.size, o.rate)
        runs = ctx.pipeline_runs.get(str(source), [])
        reused = len(runs)
        while len(runs) < o.runs:
            result = ctx.run_pipeline(source)
            runs = ctx.pipeline_runs[str(source)]
            ctx.log(
                f"B5 {length:g} s run {len(runs)}/{o.runs}: ffmpeg RSS {result['ffmpeg_peak_rss'] / MIB:.0f} "
                f"MiB, temp {result['peak_temp'] / MIB:.1f} MiB, worker RSS "
                f"{result['python_peak_rss'] / MIB:.0f} MiB (load {result['load']:.1f})"
            )
        for r in runs:
            r["python_growth"] = r["python_peak_rss"] - r["python_rss_before"]
        rows.append({"length": length, "path": str(source), "runs": runs[: max(o.runs, 1)], "reused": reused})
    return rows


def _flatness(rows: list[dict], key: str) -> tuple[float, str]:
    first = Summary.of(r[key] for r in rows[0]["runs"]).median
    last = Summary.of(r[key] for r in rows[-1]["runs"]).median
    if first <= 0:
        return float("nan"), "–"
    growth = last / first - 1
    return growth, "**flat**" if growth <= FLAT_TOLERANCE else "**grows**"


def _markdown(rows: list[dict], ctx: Context) -> str:
    o = ctx.options
    keys = ("wall", "ffmpeg_peak_rss", "ffmpeg_vmhwm", "peak_temp", "python_peak_rss", "python_growth")
    table_rows = []
    for row in rows:
        runs = row["runs"]
        s = {key: Summary.of(r[key] for r in runs) for key in (*keys, "output_bytes", "load")}
        table_rows.append(
            [
                f"{row['length']:g}",
                s["wall"].fmt(),
                s["ffmpeg_peak_rss"].fmt(0, MIB),
                s["ffmpeg_peak_rss"].range(0, MIB),
                s["ffmpeg_vmhwm"].fmt(0, MIB),
                s["peak_temp"].fmt(1, MIB),
                s["peak_temp"].range(1, MIB),
                s["python_peak_rss"].fmt(0, MIB),
                s["python_growth"].fmt(1, MIB),
                s["output_bytes"].fmt(1, MIB),
                f"{len(runs)} ({row['reused']} from B1)",
                s["load"].fmt(1),
            ]
        )
    headers = [
        "length s", "wall s", "ffmpeg peak RSS MiB (job)", "min–max", "ffmpeg VmHWM MiB (sampled)",
        "peak temp disk MiB", "min–max",
        "worker peak RSS MiB", "worker growth MiB", "output MiB (for scale)", "runs", "load (median)",
    ]  # fmt: skip
    lines = [
        f"Source: generated testsrc2 {o.size} {o.rate} fps with a 440 Hz tone, the same content at "
        f"each length; the default ladder. Medians over runs. The output size grows with length: "
        f"it is what the temporary disk would hold if segments were not stored as they finish.",
        "",
        "Two ffmpeg memory columns: the job's `peak_rss_bytes` (wait4 `ru_maxrss`, what the admin "
        "shows) and `VmHWM` sampled from /proc five times a second. On Linux a child's `ru_maxrss` "
        "starts from the RSS of the process that forked it, so the job's number can never be below "
        "the worker's own size; VmHWM counts ffmpeg's image only. Worker RSS is the worker "
        "process's VmHWM (it ran nothing else); growth is from just before the request to the end.",
        "",
        table(headers, table_rows),
        "",
    ]
    if len(rows) > 1:
        span = rows[-1]["length"] / rows[0]["length"]
        flat_rows = []
        for key, label in MEASURES:
            growth, verdict = _flatness(rows, key)
            flat_rows.append([label, "–" if growth != growth else f"{growth:+.0%}", verdict])
        out_growth, _ = _flatness(rows, "output_bytes")
        flat_rows.append(["output size (grows by design)", f"{out_growth:+.0%}", "–"])
        lines += [
            f"Flat in length? From {rows[0]['length']:g} s to {rows[-1]['length']:g} s ({span:.0f}× longer); "
            f"flat means at most {FLAT_TOLERANCE:.0%} more.",
            "",
            table(["measure", "longest vs shortest", "verdict"], flat_rows),
        ]
    return "\n".join(lines)


def _chart(rows: list[dict], path) -> None:
    from matplotlib import ticker

    plt, fig, axes = figure(1, 2, (11, 4))
    lengths = [r["length"] for r in rows]

    def medians(key):
        return [Summary.of(x[key] for x in r["runs"]).median / MIB for r in rows]

    mem, disk = axes[0]
    mem.plot(lengths, medians("ffmpeg_peak_rss"), "o-", label="ffmpeg peak RSS (job, VmHWM)")
    mem.plot(lengths, medians("ffmpeg_vmhwm"), "x:", label="ffmpeg peak RSS (sampled VmHWM)")
    mem.plot(lengths, medians("python_peak_rss"), "s-", label="worker (Python) peak RSS")
    mem.plot(lengths, medians("python_growth"), "^-", label="worker RSS growth during the job")
    mem.set_ylabel("MiB")
    mem.set_ylim(bottom=0)
    mem.set_title("memory per worker", fontsize=10)
    disk.plot(lengths, medians("peak_temp"), "o-", color="tab:green", label="peak temporary disk")
    disk.plot(lengths, medians("output_bytes"), "--", color="tab:gray", label="total output (for scale)")
    disk.set_yscale("log")
    disk.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    disk.yaxis.set_minor_formatter(ticker.NullFormatter())
    disk.set_ylabel("MiB (log scale)")
    disk.set_title("local disk per worker", fontsize=10)
    for ax in (mem, disk):
        ax.set_xlabel("video length (s)")
        ax.set_xticks(lengths)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("B5: peak memory and temporary disk against video length (target: flat)", fontsize=10)
    save(plt, fig, path)


def run(ctx: Context) -> Section:
    rows = _measure(ctx)
    _chart(rows, ctx.out / "b5.png")
    title = "B5: peak memory and temporary disk per worker against length"
    section = Section("b5", title, _markdown(rows, ctx), ["b5.png"], {"lengths": rows})
    if len(rows) > 1:
        checked = [(label, *_flatness(rows, key)) for key, label in MEASURES if key != "python_growth"]
        flat = all(verdict == "**flat**" for _, _, verdict in checked)
        growths = ", ".join(f"{label} {growth:+.0%}" for label, growth, _ in checked)
        section.verdicts = [
            f"B5, flat in length ({rows[0]['length']:g} → {rows[-1]['length']:g} s): "
            f"{'**met**' if flat else '**not met**'} ({growths})."
        ]
    return section
