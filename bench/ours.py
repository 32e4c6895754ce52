"""Our pipeline, one run per fresh worker process (bench/worker.py)."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .scratch import Scratch

WORKER = Path(__file__).resolve().parent / "worker.py"


class PipelineFailed(RuntimeError):
    pass


def run(
    scratch: Scratch,
    source: Path,
    *,
    env: dict[str, str] | None = None,
    inspect: Callable[[Path, dict], None] | None = None,
) -> dict:
    """`env`: extra environment for the worker (e.g. chunk settings). `inspect(output_dir,
    result)` is called while the outputs still exist (they are deleted after every run)."""
    try:
        with scratch.fresh_database() as database:
            proc = subprocess.run(
                [sys.executable, str(WORKER), str(source)],
                env={**scratch.env(database), **(env or {})},
                capture_output=True,
                text=True,
            )
        if proc.returncode != 0:
            raise PipelineFailed(f"pipeline run failed ({proc.returncode}): {proc.stderr[-1500:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["cpu"] = result["ffmpeg_cpu"] + result["python_cpu"]
        if inspect is not None:
            inspect(Path(result["output_dir"]), result)
    finally:
        scratch.clean_outputs()
    return result
