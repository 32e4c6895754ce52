"""Run the benchmarks and write bench/results/RESULTS.md with a chart per benchmark.

    python bench/run.py [--quick] [--runs N] [--only b1,b2,b3,b4,b5,b6,b7,b8,b9] [--out DIR]

Everything runs against a throwaway SQLite database (B6: PostgreSQL), media root and work directory (deleted
at the end); sources are generated or fetched once and cached under .cache/. See README.md.
"""

import argparse
import importlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine, report, scratch  # noqa: E402
from bench.context import Context, Options  # noqa: E402

# name -> module with run(ctx) -> report.Section
BENCHMARKS = {
    "b1": "bench.b1",
    "b2": "bench.b2",
    "b3": "bench.b3",
    "b4": "bench.b4",
    "b5": "bench.b5",
    "b6": "bench.b6",
    "b7": "bench.b7",
    "b8": "bench.b8",
    "b9": "bench.b9",
}
# B3 quotes B7's check of its model beside its server rows: when both run, B7 runs first.
RUN_BEFORE = {"b3": "b7"}

QUICK = {
    "b1_seconds": 3.0,
    "b5_lengths": (3.0, 6.0),
    "size": "640x360",
    "rate": "30",
    "bunny": False,
    "b2_seconds": 8.0,
    "b2_chunk_seconds": 4.0,  # 2 chunks
    "b3_celery_samples": 3,
    "b4_lengths": (4.0, 12.0),
    "b4_chunk_seconds": 4.0,  # the 12 s clip in 3 chunks
    "b4_threshold_seconds": 6.0,
    "b7_seconds": 12.0,
    "b7_chunk_seconds": 4.0,  # 3 chunks
    "b7_threshold_seconds": 6.0,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny 360p sources (a smoke run, seconds)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement (median)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma list of benchmarks")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--b1-seconds", type=float, help="length of B1's generated source (default 60)")
    parser.add_argument("--b5-lengths", help="comma list of B5 lengths in seconds (default 15,60,150)")
    parser.add_argument("--no-bunny", action="store_true", help="skip the real-footage source in B1")
    parser.add_argument("--no-parallel", action="store_true", help="skip the parallel usual-way variant")
    parser.add_argument("--b2-seconds", type=float, help="length of B2's generated source (default 60)")
    parser.add_argument("--b2-chunk-seconds", type=float, help="B2's chunk length (default 16: 4 chunks)")
    parser.add_argument("--no-vmaf", action="store_true", help="skip B2's VMAF (the slowest part of B2)")
    parser.add_argument("--b4-lengths", help="comma list of B4 lengths in seconds (default 60,600)")
    parser.add_argument("--b7-seconds", type=float, help="length of B7's generated source (default 600)")
    parser.add_argument("--b7-workers", help="comma list of B7's worker counts K (default 1,2)")
    parser.add_argument("--b7-chunk-seconds", type=float, help="B7 chunk length (default 120)")
    parser.add_argument("--b7-threshold-seconds", type=float, help="B7's chunking threshold (default 180)")
    parser.add_argument("--b7-runs", type=int, help="B7's rounds (default --runs)")
    parser.add_argument("--b6-workers", help="comma list of B6's worker counts (default 64,250,1000)")
    parser.add_argument("--b6-chunks", help="B6: comma list of chunks per video of its series, or none")
    parser.add_argument("--b6-pool-size", type=int, help="B6: PgBouncer's server connections (default 40)")
    parser.add_argument("--b6-before", help="B6: chunk-series results of older code to show beside (JSON)")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.only = [name.strip().lower() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    return args


def options(args: argparse.Namespace) -> Options:
    opts = Options(runs=args.runs, quick=args.quick, parallel=not args.no_parallel)
    if args.quick:
        for key, value in QUICK.items():
            setattr(opts, key, value)
    if args.no_bunny:
        opts.bunny = False
    if args.b1_seconds:
        opts.b1_seconds = args.b1_seconds
    if args.b5_lengths:
        opts.b5_lengths = tuple(sorted(float(x) for x in args.b5_lengths.split(",")))
    if args.b2_seconds:
        opts.b2_seconds = args.b2_seconds
    if args.b2_chunk_seconds:
        opts.b2_chunk_seconds = args.b2_chunk_seconds
    if args.no_vmaf:
        opts.vmaf = False
    if args.b4_lengths:
        opts.b4_lengths = tuple(sorted(float(x) for x in args.b4_lengths.split(",")))
    if args.b7_seconds:
        opts.b7_seconds = args.b7_seconds
    if args.b7_workers:
        opts.b7_workers = tuple(int(x) for x in args.b7_workers.split(","))
    if args.b7_chunk_seconds:
        opts.b7_chunk_seconds = args.b7_chunk_seconds
    if args.b7_threshold_seconds is not None:
        opts.b7_threshold_seconds = args.b7_threshold_seconds
    if args.b7_runs:
        opts.b7_runs = args.b7_runs
    if args.b6_workers:
        opts.b6_workers = tuple(int(x) for x in args.b6_workers.split(","))
    if args.b6_chunks:
        opts.b6_chunks = () if args.b6_chunks == "none" else tuple(int(x) for x in args.b6_chunks.split(","))
    if args.b6_pool_size:
        opts.b6_pool_size = args.b6_pool_size
    if args.b6_before:
        opts.b6_before = args.b6_before
    return opts


def order(names: list[str]) -> list[str]:
    """The benchmarks in the order given, except that one that quotes another runs after it."""
    ordered = list(names)
    for name, first in RUN_BEFORE.items():
        if name in ordered and first in ordered and ordered.index(first) > ordered.index(name):
            ordered.remove(first)
            ordered.insert(ordered.index(name), first)
    return ordered


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        env = scratch.setup(root)
        from transcoding.conf import ffmpeg_binary

        binary = ffmpeg_binary()
        ctx = Context(options(args), env, binary, args.out)
        facts = machine.info(binary)
        sections = []
        for name in order(args.only):
            ctx.log(f"{name} starting")
            sections.append(importlib.import_module(BENCHMARKS[name]).run(ctx))
        command = shlex.join(["python", "bench/run.py", *argv])
        loads = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        minutes = (time.monotonic() - started) / 60
        note = (
            "**Quick run** (`--quick`): tiny 360p sources where fixed costs dominate; it checks the "
            "harness, it does not measure performance."
            if args.quick
            else ""
        )
        path = report.write_results(args.out, facts, sections, command, minutes, loads, note)
        if args.json:
            raw = {"machine": facts, **{s.key: s.raw for s in sections}}
            args.json.write_text(json.dumps(raw, indent=1, default=str))
        ctx.log(f"wrote {path} in {minutes:.1f} min")
    finally:
        if args.keep_scratch:
            print(f"scratch kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
