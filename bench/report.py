"""Medians, Markdown tables and the RESULTS.md file. Charts are drawn by each benchmark with
`figure()` (matplotlib, Agg backend: no display needed)."""

import statistics
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024**2


@dataclass
class Section:
    key: str  # "b1": charts are <key>.png
    title: str
    markdown: str
    charts: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # for --json
    verdicts: list[str] = field(default_factory=list)  # one Markdown line per target


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values) -> "Summary":
        values = [v for v in values if v is not None]
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, digits: int = 1, scale: float = 1.0) -> str:
        return f"{self.median / scale:.{digits}f}"

    def range(self, digits: int = 1, scale: float = 1.0) -> str:
        return f"{self.low / scale:.{digits}f}–{self.high / scale:.{digits}f}"


def table(headers: list[str], rows: list[list], align: str = "") -> str:
    """A GitHub Markdown table; `align` is one letter a column (l, r), default left then right."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure(rows: int, cols: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    return plt, fig, axes


def save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(
    out: Path,
    machine: dict[str, str],
    sections: list[Section],
    command: str,
    minutes: float,
    load_end: str,
    note: str = "",
) -> Path:
    """Store this run's sections with the others kept from earlier runs (bench/store.py) and
    render RESULTS.md from all of them."""
    from . import store

    stored = store.load(out)
    facts = {k: v for k, v in machine.items() if k != "load average at start"}
    run = {
        "command": command,
        "minutes": round(minutes, 1),
        "machine": facts,
        "load_start": machine.get("load average at start", ""),
        "load_end": load_end,
        "note": note,
    }
    for section in sections:
        stored[section.key] = {
            "title": section.title,
            "markdown": section.markdown.strip(),
            "charts": section.charts,
            "verdicts": section.verdicts,
            "run": run,
        }
    store.save(out, stored)
    path = out / "RESULTS.md"
    path.write_text(render(stored))
    return path


def _runs(stored: dict[str, dict]) -> list[tuple[list[str], dict]]:
    """The distinct runs behind the sections, with the sections each measured."""
    runs: list[tuple[list[str], dict]] = []
    for key in sorted(stored):
        run = stored[key]["run"]
        for keys, known in runs:
            if known == run:
                keys.append(key)
                break
        else:
            runs.append(([key], run))
    return runs


def _machine_table(runs: list[tuple[list[str], dict]]) -> str:
    names = list(dict.fromkeys(name for _, run in runs for name in run["machine"]))
    rows = [["sections", *(", ".join(k.upper() for k in keys) for keys, _ in runs)]]
    rows.append(["command", *(f"`{run['command']}`" for _, run in runs)])
    rows.append(["minutes (whole run)", *(f"{run['minutes']}" for _, run in runs)])
    rows += [[name, *(run["machine"].get(name, "–") for _, run in runs)] for name in names]
    rows.append(["load average at start", *(run["load_start"] for _, run in runs)])
    rows.append(["load average at end", *(run["load_end"] for _, run in runs)])
    return table(["", *(f"run {i}" for i in range(1, len(runs) + 1))], rows, "l" * (len(runs) + 1))


def render(stored: dict[str, dict]) -> str:
    keys = sorted(stored, key=lambda k: int(k[1:]) if k[1:].isdigit() else 99)
    runs = _runs(stored)
    notes = [run["note"] for _, run in runs if run.get("note")]
    lines = [
        "# Benchmark results",
        "",
        "Method: [bench/README.md](../README.md). Medians over the runs; wall is elapsed time, CPU is",
        "user + system seconds of the processes (os.wait4 rusage; for our pipeline the jobs' ffmpeg CPU",
        "plus the worker's own). Each section comes from one run of `bench/run.py` (see Machine); a",
        "run with `--only` replaces its own sections and keeps the others (`sections.json`).",
        "",
    ]
    verdicts = [line for key in keys for line in stored[key]["verdicts"]]
    if verdicts:
        lines += ["## Targets", "", *(f"{n}\n" for n in notes), *(f"- {line}" for line in verdicts), ""]
    lines += [
        "## Machine",
        "",
        _machine_table(runs),
        "",
        "The load average counts every runnable process on the machine, other people's test runs",
        "included: above the core count, wall times are inflated (CPU times much less so); the",
        "variants of a benchmark run interleaved, round by round, so they share the same conditions.",
        "",
    ]
    for key in keys:
        section = stored[key]
        lines += [f"## {section['title']}", "", section["markdown"], ""]
        lines += [f"![{key}]({chart})" for chart in section["charts"]]
        lines.append("")
    return "\n".join(lines)
