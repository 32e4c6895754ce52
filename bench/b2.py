"""B2, chunking: the same source encoded whole and in chunks (split and stitch) at the same
settings, through the real service path in fresh worker processes (bench/worker.py).

- whole: the product's defaults (a 60 s video is one chunk).
- chunked: TRANSCODING_CHUNK_SECONDS = TRANSCODING_CHUNK_THRESHOLD_SECONDS = the chunk length,
  delivered by one worker, job after job: the root (probe, plan, fan-out, chunk 0 with the
  poster, and the whole video's audio in an ffmpeg of its own beside it), then each chunk job;
  the last one stitches. Sequential, so each job's CPU
  and wall are its own (on 2 cores one 1080p ffmpeg keeps both busy anyway).

Runs are interleaved round by round. Compared: CPU (every job's ffmpeg + the worker's own),
output bytes, VMAF of the top and 360p rungs against the source (bench/vmaf.py), the segments,
and per chunk: task wall, CPU and what is not ffmpeg (B3 models on these).
"""

from dataclasses import dataclass
from pathlib import Path

from transcoding.media import ffmpeg

from . import sources, vmaf
from .context import Context
from .report import MIB, Section, Summary, figure, save, table
from .scratch import plan_for

WHOLE, CHUNKED = "whole", "chunked"
TARGET_CPU, TARGET_BYTES, TARGET_VMAF = 1.1, 1.05, 0.5


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    chunk_seconds: float


def _cases(ctx: Context) -> list[Case]:
    """The generated clip (the targets are judged on it), and Big Buck Bunny for quality only."""
    o = ctx.options
    name = f"generated testsrc2 {o.size} {o.rate} fps, {o.b2_seconds:g} s, {o.b2_chunk_seconds:g} s chunks"
    cases = [Case(name, sources.generated(o.b2_seconds, o.size, o.rate), o.b2_chunk_seconds)]
    if o.bunny:
        try:
            name = (
                f"real footage: Big Buck Bunny 720p, 5.3 s, {o.b2_bunny_chunk_seconds:g} s chunks (one join)"
            )
            cases.append(Case(name, sources.bunny(), o.b2_bunny_chunk_seconds))
        except Exception as exc:
            ctx.log(f"Big Buck Bunny unavailable, skipped: {exc}")
    return cases


def _inspector(ctx: Context, case: Case, plan, scored: dict):
    """Bytes and a checksum of every rung; VMAF the first time an output is seen (a run whose
    rungs are byte-identical to a scored one's has the same scores)."""
    picked = [plan.rungs[0], *[r for r in plan.rungs[1:] if r.height == 360]]

    def inspect(output: Path, result: dict) -> None:
        files = {r: vmaf.rung_files(output / r) for r in result["rungs"]}
        result["rung_bytes"] = {r: size for r, (size, _) in files.items()}
        key = "".join(digest for _, digest in files.values())
        result["output_key"] = key[:16]
        if ctx.options.vmaf and key not in scored:
            scored[key] = {
                rung.name: vmaf.score(ctx.ffmpeg, output / rung.name, case.path, ffmpeg.rung_filter(rung))
                for rung in picked
            }
        result["vmaf"] = scored.get(key, {})

    return inspect


def _measure(ctx: Context, case: Case) -> dict:
    info, plan = plan_for(case.path)
    env = {
        "TRANSCODING_CHUNK_SECONDS": f"{case.chunk_seconds:g}",
        "TRANSCODING_CHUNK_THRESHOLD_SECONDS": f"{case.chunk_seconds:g}",
    }
    runs: dict[str, list[dict]] = {WHOLE: [], CHUNKED: []}
    scored: dict[str, dict] = {}
    inspect = _inspector(ctx, case, plan, scored)
    for round_ in range(ctx.options.runs):
        for way in (WHOLE, CHUNKED) if round_ % 2 == 0 else (CHUNKED, WHOLE):
            result = ctx.run_pipeline(case.path, env=env if way == CHUNKED else None, inspect=inspect)
            jobs = len(result["jobs"])
            if (way == WHOLE) != (jobs == 1):
                raise RuntimeError(f"B2 {way} run made {jobs} job(s)")
            result["round"] = round_ + 1
            runs[way].append(result)
            ctx.log(
                f"B2 {case.path.name} round {round_ + 1}/{ctx.options.runs} {way} ({jobs} jobs): wall "
                f"{result['wall']:.1f} s, CPU {result['cpu']:.1f} s (load {result['load']:.1f})"
            )
    joins, start = [], 0.0
    for job in runs[CHUNKED][0]["jobs"][:-1]:
        start += job["seconds"]
        joins.append(start)
    return {"case": case, "duration": info.duration, "fps": float(info.fps), "runs": runs, "joins": joins}


def _med(runs: list[dict], key) -> float:
    return Summary.of(key(r) if callable(key) else r[key] for r in runs).median


def chunk_rows(result: dict) -> list[dict]:
    """Per chunk, medians over the chunked runs (the B3 inputs)."""
    chunked, rows = result["runs"][CHUNKED], []
    for index, job in enumerate(chunked[0]["jobs"]):
        jobs = [r["jobs"][index] for r in chunked]
        row = {k: job[k] for k in ("chunk", "seconds", "parts")}
        row.update({k: _med(jobs, k) for k in ("wall", "cpu", "python_cpu", "queries")})
        row["serial"] = _med(jobs, lambda j: j["wall"] - j["timers"].get("ffmpeg", 0.0))  # not ffmpeg
        rows.append(row)
    return rows


def _verdict(value: float, target: float, unit: str = "×") -> str:
    if value != value:
        return "not measured"
    if value <= target:
        return f"**met** ({value:.3f}{unit} ≤ {target}{unit})"
    return f"**not met** ({value:.3f}{unit} > {target}{unit})"


def _vmaf_rows(result: dict) -> list[list]:
    """Per scored rung: medians over the runs (a run whose rungs are byte-identical to another's
    has the same scores), the ±0.5 s around the joins and the worst frame of the first run."""
    runs, rows = result["runs"], []
    for rung, first in runs[WHOLE][0]["vmaf"].items():
        mean = {way: _med(runs[way], lambda r, n=rung: r["vmaf"][n]["mean"]) for way in runs}
        other = runs[CHUNKED][0]["vmaf"][rung]
        joins = [vmaf.near(x["frames"], result["fps"], result["joins"]) for x in (first, other)]
        diff = mean[CHUNKED] - mean[WHOLE]
        rows.append([rung, f"{mean[WHOLE]:.2f}", f"{mean[CHUNKED]:.2f}", f"{diff:+.2f}",
                     f"{joins[0]:.2f} → {joins[1]:.2f}", f"{first['min']:.1f} / {other['min']:.1f}",
                     _verdict(abs(diff), TARGET_VMAF, "")])  # fmt: skip
    return rows


def _ratios(result: dict) -> dict[str, float]:
    w, c = result["runs"][WHOLE], result["runs"][CHUNKED]
    return {
        "cpu": _med(c, "cpu") / _med(w, "cpu"),
        "ffmpeg_cpu": _med(c, "ffmpeg_cpu") / _med(w, "ffmpeg_cpu"),
        "wall": _med(c, "wall") / _med(w, "wall"),
        "bytes": _med(c, "output_bytes") / _med(w, "output_bytes"),
        "rung_bytes": _med(c, lambda r: sum(r["rung_bytes"].values()))
        / _med(w, lambda r: sum(r["rung_bytes"].values())),
    }


def _segments_match(result: dict) -> str:
    frame = 1 / result["fps"] + 1e-6
    a, b = result["runs"][WHOLE][0]["segments"], result["runs"][CHUNKED][0]["segments"]
    bad = [
        n for n in a if len(a[n]) != len(b.get(n, [])) or any(abs(x - y) > frame for x, y in zip(a[n], b[n]))
    ]
    if bad:
        return f"**Segments differ** in {', '.join(bad)} (count, or a duration by more than a frame)."
    count = len(next(iter(a.values())))
    return f"Segments: the same count in every rendition ({count}), durations within a frame of each other."


def _way_rows(runs: dict) -> list[list]:
    rows = []
    for way, items in runs.items():
        keys = ("wall", "cpu", "ffmpeg_cpu", "python_cpu", "output_bytes", "load")
        s = {k: Summary.of(r[k] for r in items) for k in keys}
        rows.append(
            [way, len(items[0]["jobs"]), s["wall"].fmt(), s["wall"].range(), s["cpu"].fmt(), s["cpu"].range(),
             s["ffmpeg_cpu"].fmt(), s["python_cpu"].fmt(1), s["output_bytes"].fmt(2, MIB), s["wall"].n,
             s["load"].fmt()]
        )  # fmt: skip
    return rows


def _ratio_rows(ratios: dict) -> list[list]:
    def row(label, key, target=None, digits=3):
        goal = f"≤ {target}" if target else "–"
        verdict = _verdict(ratios[key], target) if target else "–"
        return [label, f"{ratios[key]:.{digits}f}", goal, verdict]

    return [
        row("CPU, ffmpeg + worker (medians)", "cpu", TARGET_CPU),
        row("CPU, ffmpeg only", "ffmpeg_cpu"),
        row("output bytes, every file", "bytes", TARGET_BYTES, 4),
        row("output bytes, video renditions only", "rung_bytes", None, 4),
        row("wall, one worker (chunks one after another)", "wall"),
    ]


def _chunk_table(result: dict) -> str:
    rows = [
        [r["chunk"], f"{r['seconds']:.1f}", ", ".join(r["parts"]), f"{r['wall']:.1f}", f"{r['cpu']:.1f}",
         f"{r['python_cpu']:.2f}", f"{r['serial']:.2f}", f"{r['queries']:.0f}"]
        for r in chunk_rows(result)
    ]  # fmt: skip
    headers = ["chunk", "video s", "parts", "task wall s", "ffmpeg CPU s", "worker CPU s", "not ffmpeg s"]
    return table([*headers, "DB queries"], rows)


def _steps_table(runs: dict) -> str:
    steps = sorted({k for r in runs[CHUNKED] for k in r["timers"]} - {"ffmpeg"})
    rows = [
        [step]
        + [f"{_med(runs[way], lambda r, s=step: r['timers'].get(s, 0.0)):.3f}" for way in (WHOLE, CHUNKED)]
        for step in steps
    ]
    return table(["step", "whole s", "chunked s"], rows)


def _markdown(result: dict) -> str:
    case, runs = result["case"], result["runs"]
    headers = ["way", "jobs", "wall s (median)", "min–max", "CPU s (median)", "min–max", "ffmpeg CPU s"]
    headers += ["worker CPU s", "output MiB", "runs", "load (median)"]
    lines = [f"### {case.name}", "", table(headers, _way_rows(runs)), ""]
    lines += [table(["chunked / whole", "ratio", "target", "verdict"], _ratio_rows(_ratios(result))), ""]
    lines += [_segments_match(result), ""]
    distinct = {way: len({r["output_key"] for r in runs[way]}) for way in runs}
    lines.append(
        "Every run's renditions were byte-identical to the other runs of the same way (x264 is "
        "deterministic here), so VMAF was computed once per way."
        if set(distinct.values()) == {1}
        else f"Not every run made the same bytes (distinct outputs: whole {distinct[WHOLE]}, chunked "
        f"{distinct[CHUNKED]} of {len(runs[WHOLE])}; x264 under a binding bitrate cap is not "
        "deterministic across runs): VMAF was computed for each distinct output, medians shown."
    )
    if runs[WHOLE][0]["vmaf"]:
        headers = ["rung", "VMAF whole", "VMAF chunked", "difference", "±0.5 s around the joins"]
        headers += ["worst frame", f"target: within {TARGET_VMAF}"]
        lines += ["", table(headers, _vmaf_rows(result))]
    lines += [
        "",
        "Per chunk, medians over the chunked runs (B3's inputs). *Not ffmpeg*: the task's wall time "
        "outside ffmpeg (claim, probe, fan-out, storing results, fan-in, finishing):",
        "",
        _chunk_table(result),
        "",
        "Where the time outside the encode goes, per video (wall seconds in the worker, medians; "
        "heartbeats, live publishing and progress happen while ffmpeg runs):",
        "",
        _steps_table(runs),
    ]
    return "\n".join(lines)


def _chart(result: dict, path: Path) -> None:
    plt, fig, axes = figure(1, 3, (15, 4.2))
    cpu_ax, bytes_ax, vmaf_ax = axes[0]
    runs, rows = result["runs"], chunk_rows(result)
    whole_cpu = _med(runs[WHOLE], "cpu")
    cpu_ax.bar([0], [whole_cpu], color="tab:gray")
    bottom = 0.0
    for row, color in zip(rows, plt.cm.tab10.colors):
        cpu = row["cpu"] + row["python_cpu"]
        cpu_ax.bar(
            [1], [cpu], bottom=bottom, color=color, label=f"chunk {row['chunk']} ({row['seconds']:.0f} s)"
        )
        bottom += cpu
    target = f"target {TARGET_CPU}× whole"
    cpu_ax.axhline(TARGET_CPU * whole_cpu, color="black", linestyle="--", linewidth=1, label=target)
    cpu_ax.set_xticks([0, 1], ["whole\n(one job)", "chunked\n(jobs stacked)"])
    cpu_ax.set_ylabel("CPU s, ffmpeg + worker (medians)")
    cpu_ax.legend(fontsize=7, loc="upper left")
    cpu_ax.margins(y=0.4)
    names = list(runs[WHOLE][0]["rung_bytes"])
    ratio = [runs[CHUNKED][0]["rung_bytes"][n] / runs[WHOLE][0]["rung_bytes"][n] for n in names]
    bytes_ax.bar(range(len(names)), ratio, color="tab:blue")
    bytes_ax.axhline(
        TARGET_BYTES, color="black", linestyle="--", linewidth=1, label=f"target ≤ {TARGET_BYTES}"
    )
    bytes_ax.axhline(1.0, color="gray", linewidth=0.8)
    bytes_ax.set_ylim(min(0.95, *ratio) - 0.01, max(1.07, *ratio) + 0.01)
    bytes_ax.set_xticks(range(len(names)), names)
    bytes_ax.set_ylabel("bytes, chunked / whole")
    bytes_ax.legend(fontsize=7)
    fps = result["fps"]
    for (rung, a), color in zip(runs[WHOLE][0]["vmaf"].items(), ("tab:blue", "tab:orange")):
        b = runs[CHUNKED][0]["vmaf"][rung]["frames"]
        diff = [y - x for x, y in zip(a["frames"], b)]
        vmaf_ax.plot([i / fps for i in range(len(diff))], diff, color=color, linewidth=0.6, label=rung)
    for t in result["joins"]:
        vmaf_ax.axvline(t, color="tab:red", linestyle=":", linewidth=1)
    vmaf_ax.axhline(0, color="gray", linewidth=0.8)
    vmaf_ax.set_xlabel("time (s); dotted red: chunk joins")
    vmaf_ax.set_ylabel("VMAF per frame, chunked − whole")
    vmaf_ax.legend(fontsize=7, loc="lower right")
    for ax, title in zip(axes[0], ("CPU", "output bytes per rung", "quality difference over time")):
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"B2 chunking: {result['case'].name}; medians of {len(runs[WHOLE])} runs", fontsize=10)
    save(plt, fig, path)


def measurements(ctx: Context) -> dict:
    """B2's measurements, made once per run of the harness (B3 uses them too)."""
    if "b2" not in ctx.shared:
        ctx.shared["b2"] = [_measure(ctx, case) for case in _cases(ctx)]
    return ctx.shared["b2"]


def run(ctx: Context) -> Section:
    results = measurements(ctx)
    _chart(results[0], ctx.out / "b2.png")
    intro = (
        f"Targets (issue): the chunks' summed CPU at most {TARGET_CPU}× the unchunked encode's, output "
        f"bytes at most {TARGET_BYTES}×, VMAF within {TARGET_VMAF}; judged on the first source. Both ways "
        "run through the real service path in a fresh worker process, interleaved round by round; "
        "the chunked one is delivered by one worker, job after job (recording dispatcher)."
    )
    body = "\n\n".join([intro, *(_markdown(r) for r in results)])
    raw = [{**r, "case": r["case"].name} for r in results]
    section = Section("b2", "B2: chunked against whole, same settings", body, ["b2.png"], {"sources": raw})
    main, ratios = results[0], _ratios(results[0])
    chunks = f"{len(main['runs'][CHUNKED][0]['jobs'])} chunks of {main['case'].chunk_seconds:g} s"
    section.verdicts = [
        f"B2, chunked CPU ≤ {TARGET_CPU}× whole ({chunks}, {main['duration']:.0f} s clip): "
        f"{_verdict(ratios['cpu'], TARGET_CPU)}.",
        f"B2, chunked output bytes ≤ {TARGET_BYTES}× whole: {_verdict(ratios['bytes'], TARGET_BYTES)}.",
    ]
    if main["runs"][WHOLE][0]["vmaf"]:
        rows = _vmaf_rows(main)
        met = all(row[6].startswith("**met**") for row in rows)
        diffs = ", ".join(f"{row[0]} {row[1]} → {row[2]} ({row[3]})" for row in rows)
        section.verdicts.append(
            f"B2, VMAF within {TARGET_VMAF} of whole: {'**met**' if met else '**not met**'} ({diffs})."
        )
    return section
