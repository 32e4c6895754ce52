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


@dataclass
class Context:
    options: Options
    scratch: Scratch
    ffmpeg: str
    out: Path
    # Runs of our pipeline by source path: B1's runs on a generated clip count for B5 too.
    pipeline_runs: dict[str, list[dict]] = field(default_factory=dict)

    def log(self, message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    def run_pipeline(self, source: Path) -> dict:
        load = machine.load()
        result = ours.run(self.scratch, source)
        result["load"] = load
        self.pipeline_runs.setdefault(str(source), []).append(result)
        return result
