"""VMAF of a stored rendition against the source, with the libvmaf filter of the same ffmpeg.

The rendition is played as a player's buffer holds it: the init segment and every segment its
playlist lists, concatenated into one fragmented MP4 (as tests/support/checks.py `concatenated` does).
The reference is the source through the rung's own filter chain (`ffmpeg.rung_filter`: scaled
to the rung's size with the same scaler), so only the encode differs. Both start at 0
(`setpts=PTS-STARTPTS`: the renditions' timestamps start at the timeline offset). Model: the
filter's default, vmaf_v0.6.1.
"""

import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path

import m3u8

from transcoding.media import ffmpeg


def rung_files(directory: Path) -> tuple[int, str]:
    """Bytes of a stored rendition (init + segments, not its playlist) and their checksum."""
    digest, size = hashlib.sha256(), 0
    for path in sorted(p for p in directory.iterdir() if p.name != ffmpeg.MEDIA_PLAYLIST):
        data = path.read_bytes()
        size += len(data)
        digest.update(data)
    return size, digest.hexdigest()


def concatenate(rung_dir: Path, target: Path) -> int:
    """init + the playlist's segments, in order, into `target`; returns the media bytes."""
    playlist = m3u8.load(str(rung_dir / ffmpeg.MEDIA_PLAYLIST))
    names = [ffmpeg.INIT_NAME] + [s.uri for s in playlist.segments]
    size = 0
    with open(target, "wb") as out:
        for name in names:
            data = (rung_dir / name).read_bytes()
            size += len(data)
            out.write(data)
    return size


def score(binary: str, rung_dir: Path, source: Path, reference_filter: str, threads: int = 2) -> dict:
    """{"mean", "min", "frames": per-frame VMAF, "seconds": how long it took}."""
    with tempfile.TemporaryDirectory(prefix="bench-vmaf-") as tmp:
        distorted = Path(tmp) / "rendition.mp4"
        concatenate(rung_dir, distorted)
        log = Path(tmp) / "vmaf.json"
        graph = (
            "[0:v]setpts=PTS-STARTPTS,format=yuv420p[d];"
            f"[1:v]{reference_filter},setpts=PTS-STARTPTS[r];"
            f"[d][r]libvmaf=n_threads={threads}:log_fmt=json:log_path={log}"
        )
        started = time.perf_counter()
        proc = subprocess.run(
            [binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(distorted),
             "-i", str(source), "-lavfi", graph, "-f", "null", "-"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"libvmaf failed: {proc.stderr[-800:]}")
        data = json.loads(log.read_text())
    frames = [f["metrics"]["vmaf"] for f in data["frames"]]
    pooled = data["pooled_metrics"]["vmaf"]
    return {
        "mean": pooled["mean"],
        "min": pooled["min"],
        "frames": frames,
        "seconds": time.perf_counter() - started,
    }


def near(frames: list[float], fps: float, times: list[float], window: float = 0.5) -> float | None:
    """Mean VMAF of the frames within `window` seconds of any of `times` (the chunk joins)."""
    picked = [v for i, v in enumerate(frames) if any(abs(i / fps - t) <= window for t in times)]
    return sum(picked) / len(picked) if picked else None
