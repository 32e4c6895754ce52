"""What every benchmark gets: options, the scratch environment, and shared measurements."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import machine, ours
from .scratch import Scratch


@dataclass
class Options:
    runs: int = 3
    quick: bool = False
    b1_seconds: float = 60.0
    b5_lengths: tuple[float, ...] = (15.0, 60.0, 150.0)
    size: str = "1920x1080"
    rate: str = "30"
    bunny: bool = True
    parallel: bool = True
    # B2: the generated clip's length and the chunk length (whole 4 s segments: 16 s = 4 chunks)
    b2_seconds: float = 60.0
    b2_chunk_seconds: float = 16.0
    b2_bunny_chunk_seconds: float = 4.0  # Big Buck Bunny (5.3 s): one join, quality only
    vmaf: bool = True
    # B3: Celery dispatch latency samples (skipped with a note when Redis is not reachable)
    b3_celery_samples: int = 20
    # B4: lengths, and chunk settings (None: the product's defaults, 120 s chunks from 180 s)
    b4_lengths: tuple[float, ...] = (60.0, 600.0)
    b4_chunk_seconds: float | None = None
    b4_threshold_seconds: float | None = None
    # B7: the real pipeline with K local workers against the model (None: 120 s chunks from 180 s)
    b7_seconds: float = 600.0
    b7_workers: tuple[int, ...] = (1, 2)
    b7_chunk_seconds: float | None = None
    b7_threshold_seconds: float | None = None
    b7_runs: int | None = None  # rounds of B7 (None: --runs)
    # B6: worker counts of the N series (None: 64, 250, 1000; quick: 8, 16), PgBouncer's server
    # connections, and a JSON of chunk-series runs on older code to show beside ("before")
    b6_workers: tuple[int, ...] | None = None
    b6_pool_size: int = 40
    b6_before: str | None = None
    b6_chunks: tuple[int, ...] | None = None  # the chunks series (None: 100, 300, 1000; (): skipped)


@dataclass
class Context:
    options: Options
    scratch: Scratch
    ffmpeg: str
    out: Path
    # Runs of our pipeline by source path: B1's runs on a generated clip count for B5 too.
    pipeline_runs: dict[str, list[dict]] = field(default_factory=dict)
    # Measurements one benchmark hands to another (B2's chunk jobs feed B3's model).
    shared: dict[str, object] = field(default_factory=dict)

    def log(self, message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    def run_pipeline(self, source: Path, *, env: dict | None = None, inspect=None) -> dict:
        """One run of our pipeline; runs with the default settings (no `env`) are kept for
        other benchmarks on the same source."""
        load = machine.load()
        result = ours.run(self.scratch, source, env=env, inspect=inspect)
        result["load"] = load
        if env is None:
            self.pipeline_runs.setdefault(str(source), []).append(result)
        return result
