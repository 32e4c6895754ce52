"""Our pipeline, one run per fresh worker process (bench/worker.py)."""

import json
import subprocess
import sys
from pathlib import Path

from .scratch import Scratch

WORKER = Path(__file__).resolve().parent / "worker.py"


class PipelineFailed(RuntimeError):
    pass


def run(scratch: Scratch, source: Path) -> dict:
    with scratch.fresh_database() as database:
        proc = subprocess.run(
            [sys.executable, str(WORKER), str(source)],
            env=scratch.env(database),
            capture_output=True,
            text=True,
        )
    scratch.clean_outputs()
    if proc.returncode != 0:
        raise PipelineFailed(f"pipeline run failed ({proc.returncode}): {proc.stderr[-1500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["cpu"] = result["ffmpeg_cpu"] + result["python_cpu"]
    return result
