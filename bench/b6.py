"""B6: the job protocol at scale. N simulated workers (threads in a few processes) run the real
protocol against a throwaway PostgreSQL database, through PgBouncer (transaction pooling,
standing in for RDS Proxy) once N passes the connections we may take directly, with a stand-in
encoder (bench/scale_worker.py). Three series: growth with N (several long videos at once),
growth with the chunks of one video, and workers under a role whose CONNECTION LIMIT is below
their number. Every run asserts zero lost, zero duplicated and zero stuck jobs.

Each run is a process of its own (`python -m bench.scale_run`): its Django is set up on its
own database, dropped at its end.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from . import report, scale_pg

ROOT = Path(__file__).resolve().parent.parent

FULL = {
    "workers": (64, 250, 1000),
    "videos": [1000, 300, 100],  # the N series: requested at once
    "chunk_workers": 250,
    "chunks": (100, 300, 1000),  # the chunks series: one video each
    "processes": 5,
    "encode": [4.0, 8.0],
    "role": {"workers": 24, "processes": 2, "role_limit": 8, "videos": [100]},
}
QUICK = {
    "workers": (8, 16),
    "videos": [12, 6],
    "chunk_workers": 8,
    "chunks": (6, 24),
    "processes": 2,
    "encode": [0.2, 0.5],
    "role": {"workers": 4, "processes": 1, "role_limit": 2, "videos": [5, 3]},
}


def run_one(config: dict, log=None) -> dict:
    """One harness run in its own process; returns its summary (bench/scale_run.py)."""
    with tempfile.TemporaryDirectory(prefix="bench-b6-") as tmp:
        cfg, out = Path(tmp) / "config.json", Path(tmp) / "out.json"
        cfg.write_text(json.dumps(config))
        proc = subprocess.run(
            [sys.executable, "-m", "bench.scale_run", str(cfg), str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=config.get("timeout", 900) + 300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"scale run failed: {proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def problems(result: dict) -> str:
    """What broke the protocol's promise (every video ready, nothing lost, encoded twice, stuck
    or failed), as one line; empty when nothing did."""
    found = {k: result[k] for k in ("lost", "duplicated", "stuck", "failed") if result[k]}
    if result["videos_ready"] == result["videos"] and not found and not result["errors"]:
        return ""
    return (
        f"{result['config']['workers']} workers: {result['videos_ready']}/{result['videos']} videos ready, "
        f"{found}, errors {result['errors']}"
    )


def check(result: dict) -> None:
    """The protocol's promise, asserted (the quick test; the full run reports it as a verdict,
    so a broken run's numbers are still written)."""
    broken = problems(result)
    if broken:
        raise AssertionError(f"B6 run with {broken}")


def _ms(result: dict, step: str) -> float:
    return result["steps_per_chunk"].get(step, [0, 0, 0, 0.0])[3] * 1000


def _queries(result: dict, step: str) -> float:
    return result["steps_per_chunk"].get(step, [0, 0, 0, 0.0])[1]


def _longest(result: dict) -> dict:
    return max(result["ready"], key=lambda r: r["chunks"])


def _took(video: dict) -> str:
    """Time to ready against the ideal; a video not ready by the run's end says so."""
    took = f"{video['seconds']:.1f} s" if video["seconds"] is not None else f"not ready ({video['status']})"
    return f"{took} / {video['ideal']:.1f} s"


BEFORE = (
    ' "before": the same runs on the code before the fixes (a video that never became ready shows its state).'
)

STEPS = ("claim", "heartbeat", "progress", "live", "finish chunk", "fan-in", "refresh", "finish job")


def _n_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        longest = _longest(r)
        via = f"PgBouncer (pool {r['config']['pool_size']})" if r["pgbouncer"] else "direct"
        rows.append(
            [
                r["config"]["workers"], via, r["chunks"],
                f"{r['claims_per_second_mean']:.0f} / {r['claims_per_second_peak']}",
                f"{r['queries_per_chunk']:.1f}", f"{r['rows_per_chunk']:.1f}", r["peak_server_connections"],
                f"{r['fan_in_lock_wait_mean'] * 1000:.1f} / {r['fan_in_lock_wait_p95'] * 1000:.1f}",
                f"{r['refresh_lock_wait_mean'] * 1000:.1f}",
                _took(longest),
                f"{r['watchdog_seconds_mean'] * 1000:.0f} ms, {r['watchdog_queries_mean']:.0f} q",
                f"{r['lost']} / {r['duplicated']} / {r['stuck']}",
            ]
        )  # fmt: skip
    return report.table(
        ["workers", "connections", "chunks", "claims/s mean / peak", "queries per chunk",
         "rows written per chunk", "peak server connections", "fan-in lock wait mean / p95 (ms)",
         "job end lock wait (ms)",
         f"time to ready, {_longest(results[0])['chunks']}-chunk video / ideal", "watchdog pass",
         "lost / duplicated / stuck"],
        rows,
    )  # fmt: skip


def _c_table(results: list[dict], before: dict | None) -> str:
    rows = []
    for r in results:
        c = str(r["chunks"])
        old = (before or {}).get(c)
        cells = [c, f"{r['queries_per_chunk']:.1f}", f"{r['rows_per_chunk']:.1f}"]
        cells += [f"{_ms(r, s):.1f}" for s in ("claim", "progress", "live", "finish chunk", "fan-in")]
        cells += [f"{_ms(r, 'job end lock') + _ms(r, 'finish job') + _ms(r, 'refresh'):.1f}"]
        longest = _longest(r)
        cells += [
            f"{r['fan_in_lock_wait_mean'] * 1000:.1f}",
            _took(longest),
        ]
        rows.append(cells)
        if old:
            was = [f"{c}, before", f"{old['queries_per_chunk']:.1f}", f"{old['rows_per_chunk']:.1f}"]
            was += [f"{_ms(old, s):.1f}" for s in ("claim", "progress", "live", "finish chunk", "fan-in")]
            was += [f"{_ms(old, 'job end lock') + _ms(old, 'finish job') + _ms(old, 'refresh'):.1f}"]
            o = _longest(old)
            was += [f"{old['fan_in_lock_wait_mean'] * 1000:.1f}", _took(o)]
            rows.append(was)
    return report.table(
        ["chunks", "queries per chunk", "rows written per chunk", "claim (ms per chunk)", "progress",
         "live publishing", "finish chunk + frontier", "fan-in", "job end + status refresh",
         "fan-in lock wait (ms)",
         "time to ready / ideal"],
        rows,
    )  # fmt: skip


def _chart(ctx, n_results, c_results, before, path: Path) -> None:
    plt, fig, axes = report.figure(2, 2, (13, 9))
    ax = axes[0][0]
    ns = [r["config"]["workers"] for r in n_results]
    ax.plot(ns, [r["queries_per_chunk"] for r in n_results], "o-", label="queries per chunk")
    ax.plot(ns, [r["rows_per_chunk"] for r in n_results], "s-", label="rows written per chunk")
    ax.plot(ns, [r["peak_server_connections"] for r in n_results], "^-", label="peak server connections")
    ax.set_xscale("log")
    ax.set_xlabel("workers (N)")
    ax.set_title("Growth with N")
    ax.legend()
    ax = axes[0][1]
    ax.set_title("Protocol steps per chunk against chunks per video")
    if c_results:
        cs = [r["chunks"] for r in c_results]
        for step in ("progress", "live", "fan-in", "refresh"):
            line = ax.plot(cs, [_ms(r, step) for r in c_results], "o-", label=f"{step}")[0]
            if before:
                olds = [before.get(str(c)) for c in cs]
                if all(olds):
                    values = [_ms(o, step) for o in olds]
                    ax.plot(cs, values, "x--", color=line.get_color(), label=f"{step}, before")
        ax.set_xscale("log")
        ax.set_xlabel(f"chunks of one video ({c_results[0]['config']['workers']} workers)")
        ax.set_ylabel("ms per chunk")
        ax.legend(fontsize=7)
    else:  # an empty frame with axes would read as a measured zero
        ax.axis("off")
        ax.text(0.5, 0.5, "not run in this run (--b6-chunks none)", ha="center", va="center")
    big = n_results[-1]
    ax = axes[1][0]
    if big["connection_samples"]:
        t0 = big["connection_samples"][0][0]
        ax.plot([t - t0 for t, _ in big["connection_samples"]], [n for _, n in big["connection_samples"]])
    ax.set_xlabel("seconds")
    ax.set_ylabel("server connections (pg_stat_activity)")
    ax.set_title(f"{big['config']['workers']} workers: connections held on the server")
    ax = axes[1][1]
    times = big["claim_times"]
    ax.plot(times, [i * big["deliveries"] / max(1, len(times)) for i in range(len(times))])
    ax.set_xlabel("seconds")
    ax.set_ylabel("jobs claimed (cumulative)")
    ax.set_title(f"{big['config']['workers']} workers: claims")
    report.save(plt, fig, path)


def run(ctx) -> report.Section:
    missing = scale_pg.reachable()
    if missing:
        return report.Section("b6", "B6: the job protocol at scale", f"Skipped: {missing}.")
    plan = QUICK if ctx.options.quick else FULL
    workers = ctx.options.b6_workers or plan["workers"]
    base = {"processes": plan["processes"], "encode": plan["encode"], "pool_size": ctx.options.b6_pool_size}
    n_results, c_results = [], []
    for n in workers:
        ctx.log(f"b6: {n} workers, videos of {plan['videos']} chunks")
        n_results.append(run_one({**base, "workers": n, "videos": plan["videos"]}))
    for c in plan["chunks"] if ctx.options.b6_chunks is None else ctx.options.b6_chunks:
        ctx.log(f"b6: one video of {c} chunks, {plan['chunk_workers']} workers")
        c_results.append(run_one({**base, "workers": plan["chunk_workers"], "videos": [c]}))
    ctx.log(f"b6: a role with CONNECTION LIMIT {plan['role']['role_limit']}")
    limited = run_one({**base, **plan["role"]})
    before = json.loads(Path(ctx.options.b6_before).read_text()) if ctx.options.b6_before else None
    _chart(ctx, n_results, c_results, before, ctx.out / "b6.png")
    big = n_results[-1]
    c_small, c_large = (c_results[0], c_results[-1]) if c_results else (None, None)
    growth = c_large["queries_per_chunk"] / max(c_small["queries_per_chunk"], 0.001) if c_results else 0.0
    lines = [
        "N simulated workers run the real job protocol (claim by conditional UPDATE, heartbeats, progress,",
        "chunk results, the fan-in under the video's row lock, status refreshes) against a throwaway",
        "PostgreSQL database, with a stand-in encoder that sleeps for a chunk's modelled time (uniform in",
        f"{plan['encode'][0]:g}–{plan['encode'][1]:g} s) and writes tiny outputs; deliveries go through a",
        "queue that delivers 5% of ids twice. Workers are threads in",
        f"{plan['processes']} processes; above {big['config']['direct_max']} they connect through PgBouncer",
        f"(transaction pooling, {ctx.options.b6_pool_size} server connections) standing in for RDS Proxy.",
        "Leases are the default 120 s; the watchdog runs every 10 s. Method:",
        "bench/README.md, B6.",
        "",
        f"### Growth with N (videos of {', '.join(str(c) for c in plan['videos'])} chunks requested at once)",
        "",
        _n_table(n_results),
        "",
        "Ideal time to ready: the longest modelled chunk, or the video's modelled work over N when it needs",
        "more than one wave. Lock waits are the `SELECT … FOR UPDATE` of the video's row, per call.",
        "",
        f"### Growth with chunks per video ({plan['chunk_workers']} workers, one video)",
        "",
        _c_table(c_results, before) if c_results else "Not run this time (`--b6-chunks none`).",
        "",
        "Milliseconds are wall time per chunk spent in each protocol step (all of the chunk's calls), on a",
        "machine shared with other runs." + (BEFORE if before else ""),
        "",
        f"### A role with CONNECTION LIMIT {limited['config']['role_limit']}, "
        f"{limited['config']['workers']} workers connecting directly",
        "",
        report.table(
            [
                "workers",
                "connection limit",
                "jobs",
                "failed",
                "jobs that waited to connect",
                "mean / longest wait",
                "peak server connections",
            ],
            [
                [
                    limited["config"]["workers"],
                    limited["config"]["role_limit"],
                    limited["chunks"],
                    limited["failed"],
                    limited["connect_waited_jobs"],
                    f"{limited['connect_wait_mean']:.2f} s / {limited['connect_wait_max']:.1f} s",
                    limited["peak_server_connections"],
                ]
            ],
        ),  # fmt: skip
    ]
    broken = [problems(r) for r in [*n_results, *c_results, limited] if problems(r)]
    if broken:
        lines += ["", "**Runs that broke the promise** (asserted as a target below):", ""]
        lines += [f"- {b}" for b in broken]
    verdicts = [
        f"B6, {big['config']['workers']} workers: {big['lost']} lost, {big['duplicated']} duplicated, "
        f"{big['stuck']} stuck jobs ({big['chunks']} chunks): "
        + ("**not met**" if problems(big) else "**met**"),
        "B6, every run: zero lost, duplicated, stuck or failed jobs: "
        + (f"**not met** ({len(broken)} runs)" if broken else "**met**"),
        *(
            [
                f"B6, queries per chunk at {c_large['chunks']} chunks vs {c_small['chunks']}: {growth:.2f}x "
                "(flat: ≤ 1.25x): " + ("**met**" if growth <= 1.25 else "**not met**")
            ]
            if c_results
            else []
        ),
        f"B6, workers over a role's connection limit: {limited['failed']} failed jobs, "
        f"{limited['connect_waited_jobs']} waited (longest {limited['connect_wait_max']:.1f} s): "
        + ("**not met**" if limited["failed"] else "**met**"),
    ]
    return report.Section(
        "b6",
        "B6: the job protocol at scale",
        "\n".join(lines),
        ["b6.png"],
        raw={"n": n_results, "chunks": c_results, "limited": limited},
        verdicts=verdicts,
    )
