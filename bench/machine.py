"""What the numbers were measured on."""

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> str:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def ffmpeg_version(binary: str) -> str:
    out = subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split(" Copyright")[0] if out else "unknown"


def load() -> float:
    """The 1-minute load average (runnable processes, all of them, not only ours)."""
    return os.getloadavg()[0]


def info(binary: str) -> dict[str, str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "nproc": str(usable),
        "memory": memory_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "ffmpeg": f"{ffmpeg_version(binary)} ({binary})",
        "load average at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
