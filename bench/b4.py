"""B4, time to first playable: from `video_request_processing` until `Video.playable` is true
(the master playlist is out: the first segments of every rung and the audio are published as
HLS EVENT playlists), for a short and a long generated 1080p source, on this machine.

Each run is a fresh worker process (bench/worker.py --announce: Django set up and the original
stored before the clock starts; it prints the request's time.time(), then delivers the recorded
jobs, the root first). This process polls the run's SQLite database (WAL: readers never wait)
every 20 ms. The short source runs on to `ready` (its time to ready is reported too); for the
long ones the worker is killed once the video is playable (its ffmpeg dies with it,
PR_SET_PDEATHSIG; checked) and the run's database and outputs are deleted. Product defaults:
120 s chunks from 180 s, so the 10-minute source is chunked and the 60 s one is not.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

from . import machine, sources
from .context import Context
from .ours import WORKER
from .report import Section, Summary, figure, save, table

TARGET = 10.0
POLL = 0.02


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(x) for x in handle.read().split()]
    except OSError:
        pass
    return found


def _stop(proc: subprocess.Popen) -> int:
    """Kill the worker this module started, then any ffmpeg of its that outlived it.
    Returns how many such leftovers had to be killed (expected: 0)."""
    children = _children(proc.pid)
    proc.kill()
    proc.wait()
    leftovers = 0
    for pid in children:
        time.sleep(0.2)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                alive = b"ffmpeg" in handle.read()
        except OSError:
            continue
        if alive:
            leftovers += 1
            os.kill(pid, signal.SIGKILL)
    return leftovers


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def _watch(database, video: int, proc: subprocess.Popen, timeout: float = 1800) -> dict:
    """Poll until the video is playable (or the worker ended); times in time.time(). Also when
    every video rung, and the audio, first had a published segment (what playable waits for)."""
    db = sqlite3.connect(database, timeout=30)
    seen: dict[str, float] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.time()
            (playable,) = db.execute(
                "SELECT playable FROM transcoding_video WHERE id = ?", [video]
            ).fetchone()
            published = db.execute(
                "SELECT kind, MIN(COALESCE(LENGTH(segments), 0) > 2) FROM transcoding_rendition "
                "WHERE video_id = ? GROUP BY kind",
                [video],
            ).fetchall()
            for kind, done in published:
                if done:
                    seen.setdefault(f"{kind}_at", now)
            if playable:
                jobs = db.execute(
                    "SELECT started_at FROM transcoding_processingjob WHERE video_id = ? ORDER BY id", [video]
                ).fetchall()
                return {"playable_at": now, "claimed_at": _epoch(jobs[0][0]), "jobs": len(jobs), **seen}
            if proc.poll() is not None:
                raise RuntimeError(f"the worker ended ({proc.returncode}) before the video was playable")
            time.sleep(POLL)
        raise TimeoutError(f"video {video} not playable within {timeout:g} s")
    finally:
        db.close()


def _run(ctx: Context, source, to_ready: bool) -> dict:
    o, env = ctx.options, {}
    if o.b4_chunk_seconds:
        env["TRANSCODING_CHUNK_SECONDS"] = f"{o.b4_chunk_seconds:g}"
    if o.b4_threshold_seconds is not None:
        env["TRANSCODING_CHUNK_THRESHOLD_SECONDS"] = f"{o.b4_threshold_seconds:g}"
    load = machine.load()
    try:
        with ctx.scratch.fresh_database() as database, tempfile.TemporaryFile("w+") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(source), "--announce"],
                env={**ctx.scratch.env(database), **env},
                stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
            try:
                line = proc.stdout.readline()
                if not line:
                    proc.wait()
                    stderr.seek(0)
                    raise RuntimeError(f"B4 worker failed ({proc.returncode}): {stderr.read()[-1500:]}")
                announced = json.loads(line)
                seen = _watch(database, announced["video"], proc)
                result = {**seen, "playable": seen["playable_at"] - announced["requested"], "load": load}
                for key in ("claimed", "video", "audio"):
                    if seen.get(f"{key}_at") is not None:
                        result[key] = seen[f"{key}_at"] - announced["requested"]
                if to_ready:
                    out, _ = proc.communicate()
                    if proc.returncode != 0:
                        stderr.seek(0)
                        raise RuntimeError(f"B4 worker failed ({proc.returncode}): {stderr.read()[-1500:]}")
                    result["ready"] = json.loads(out.strip().splitlines()[-1])["wall"]
                else:
                    result["leftover_ffmpeg"] = _stop(proc)
            finally:
                if proc.poll() is None:
                    _stop(proc)
    finally:
        ctx.scratch.clean_outputs()
    return result


def _measure(ctx: Context) -> list[dict]:
    o = ctx.options
    rows = [
        {"length": length, "path": sources.generated(length, o.size, o.rate), "runs": []}
        for length in o.b4_lengths
    ]
    for round_ in range(o.runs):
        for row in rows if round_ % 2 == 0 else rows[::-1]:
            to_ready = row is rows[0]
            result = _run(ctx, row["path"], to_ready)
            row["runs"].append(result)
            ready = f", ready {result['ready']:.1f} s" if to_ready else ", worker stopped"
            ctx.log(
                f"B4 {row['length']:g} s round {round_ + 1}/{o.runs}: playable {result['playable']:.2f} s"
                f"{ready} ({result['jobs']} jobs, load {result['load']:.1f})"
            )
    return rows


def _verdict(value: float) -> str:
    if value <= TARGET:
        return f"**met** ({value:.1f} s ≤ {TARGET:g} s)"
    return f"**not met** ({value:.1f} s > {TARGET:g} s, {value - TARGET:.1f} s over)"


def _markdown(rows: list[dict], ctx: Context) -> str:
    o = ctx.options
    table_rows, lagging = [], []
    for row in rows:
        runs = row["runs"]
        s = {
            k: Summary.of(r.get(k) for r in runs) for k in ("playable", "claimed", "video", "audio", "ready")
        }
        if s["audio"].median - s["video"].median > 2:
            lagging.append(f"{row['length']:g} s")
        ready = f"{s['ready'].fmt()} ({s['ready'].range()})" if s["ready"].n else "– (stopped at playable)"
        table_rows.append(
            [f"{row['length']:g}", runs[0]["jobs"], s["playable"].fmt(2), s["playable"].range(2),
             s["claimed"].fmt(3), s["video"].fmt(2), s["audio"].fmt(2), ready, len(runs),
             Summary.of(r["load"] for r in runs).fmt(), _verdict(s["playable"].median)]
        )  # fmt: skip
    chunks = (
        f"{o.b4_chunk_seconds:g} s chunks from {o.b4_threshold_seconds:g} s"
        if o.b4_chunk_seconds
        else "the product's defaults (120 s chunks from 180 s)"
    )
    headers = ["length s", "jobs", "playable s (median)", "min–max", "claimed s", "video rungs s", "audio s"]
    leftovers = sum(r.get("leftover_ffmpeg", 0) for row in rows for r in row["runs"])
    lines = [
        f"Target (issue): playable at most {TARGET:g} s after the request, for both lengths. Sources: "
        f"generated testsrc2 {o.size} {o.rate} fps with a 440 Hz tone; chunk settings: {chunks}. "
        "*Jobs*: the encode jobs the video had when it became playable (1: not chunked). *Claimed*: "
        "the root job's `started_at` (the recording dispatcher delivers at once: this is our own "
        "request path). *Video rungs* / *audio*: when every video rung / the audio first had a "
        "published segment (medians; playable needs both).",
        "",
        table([*headers, "ready s (min–max)", "runs", "load (median)", "verdict"], table_rows),
        "",
        f"Stopped workers whose ffmpeg outlived them: {leftovers} (the kernel kills it with the worker).",
    ]
    if lagging:
        lines += [
            "",
            f"**The audio is what keeps the video from playing** ({', '.join(lagging)}): every video "
            "rung had published segments seconds before the audio had one (columns above). This "
            "happened while chunk 0 read the audio as a second input of its video ffmpeg (fixed in "
            "40e91a6: the audio now runs as its own process beside it).",
        ]
    return "\n".join(lines)


def _chart(rows: list[dict], path) -> None:
    plt, fig, axes = figure(1, 1, (7.5, 4.2))
    ax = axes[0][0]
    labels, x = [], 0
    for row in rows:
        for key, color in (("playable", "tab:blue"), ("ready", "tab:gray")):
            values = [r[key] for r in row["runs"] if r.get(key) is not None]
            if not values:
                continue
            s = Summary.of(values)
            ax.bar([x], [s.median], color=color, yerr=[[s.median - s.low], [s.high - s.median]], capsize=4)
            ax.scatter([x] * len(values), values, color="black", s=8, zorder=3)
            ax.annotate(f"{s.median:.1f} s", (x, s.high), ha="center", va="bottom", xytext=(0, 3),
                        textcoords="offset points", fontsize=8)  # fmt: skip
            video = Summary.of(r.get("video") for r in row["runs"])
            if key == "playable" and s.median - video.median > 2:
                label = "every video rung had a published segment (the audio came last)"
                ax.scatter([x], [video.median], marker="_", s=1200, linewidths=3, color="tab:orange",
                           zorder=4, label=label)  # fmt: skip
                ax.annotate(f"video rungs {video.median:.1f} s", (x, video.median), ha="center", va="bottom",
                            xytext=(0, 4), textcoords="offset points", fontsize=8, color="white")  # fmt: skip
            labels.append(
                f"{row['length'] / 60:g} min\n{key}" if row["length"] >= 60 else f"{row['length']:g} s\n{key}"
            )
            x += 1
    ax.axhline(TARGET, color="black", linestyle="--", linewidth=1, label=f"target: playable ≤ {TARGET:g} s")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("seconds from the request")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.margins(y=0.15)
    fig.suptitle(
        "B4: time to first playable (and to ready, short source); median, min–max, runs", fontsize=10
    )
    save(plt, fig, path)


def run(ctx: Context) -> Section:
    rows = _measure(ctx)
    _chart(rows, ctx.out / "b4.png")
    section = Section("b4", "B4: time to first playable", _markdown(rows, ctx), ["b4.png"], {"lengths": rows})
    verdicts = [
        f"{row['length']:g} s {_verdict(Summary.of(r['playable'] for r in row['runs']).median)}"
        for row in rows
    ]
    section.verdicts = [f"B4, playable ≤ {TARGET:g} s after the request: {'; '.join(verdicts)}."]
    return section
