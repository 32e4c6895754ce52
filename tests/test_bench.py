"""Smoke run of the benchmark harness: tiny sources, one repetition, into a temporary directory."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    raw = out / "raw.json"
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--runs", "1", "--out", str(out), "--json", str(raw)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(raw.read_text())


def test_writes_results_table_and_charts(quick_run):
    out, _ = quick_run
    results = (out / "RESULTS.md").read_text()
    for heading in ("## Machine", "## B1", "## B5", "ours / usual way, sequential", "ours / bare"):
        assert heading in results
    assert "| nproc |" in results and "ffmpeg version" in results
    for chart in ("b1.png", "b5.png"):
        data = (out / chart).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
        assert f"({chart})" in results
    assert sorted(p.name for p in out.iterdir()) == ["RESULTS.md", "b1.png", "b5.png", "raw.json"]


def test_every_measurement_is_positive(quick_run):
    _, raw = quick_run
    (source,) = raw["b1"]["sources"]
    assert set(source["runs"]) == {"ours", "usual-seq", "usual-par", "bare"}
    for way, runs in source["runs"].items():
        assert len(runs) == 1
        assert runs[0]["wall"] > 0 and runs[0]["cpu"] > 0, way
    ours = source["runs"]["ours"][0]
    assert ours["ffmpeg_cpu"] > 0 and ours["python_cpu"] > 0
    # One process for ours and bare; the usual way: a process per rung, audio, storyboard, poster.
    assert source["runs"]["usual-seq"][0]["processes"] == len(ours["rungs"]) + 3
    lengths = raw["b5"]["lengths"]
    assert [row["length"] for row in lengths] == [3.0, 6.0]
    for row in lengths:
        (run,) = row["runs"]
        for key in ("ffmpeg_peak_rss", "ffmpeg_vmhwm", "peak_temp", "python_peak_rss", "output_bytes"):
            assert run[key] > 0, key


def test_usual_way_uses_the_same_settings_as_our_command(tmp_path):
    """Every option our single command gives a rung, the usual way gives it too."""
    from bench import commands
    from transcoding import ffmpeg
    from transcoding.ladder import PresetSpec, RungSpec, SourceInfo, plan_encode

    source = SourceInfo(
        container="mp4", duration=30.0, width=1920, height=1080, video_codec="h264", fps=30,
        audio_codec="aac", audio_channels=2, audio_sample_rate=48000,
    )  # fmt: skip
    plan = plan_encode(source, PresetSpec(rungs=(RungSpec(1080, 6_000_000), RungSpec(480, 1_500_000, 24))))
    ours = " ".join(ffmpeg.build_encode_args("ffmpeg", "in.mp4", plan, "w"))
    usual = commands.usual_way("ffmpeg", "in.mp4", plan, "w")
    assert [c.label for c in usual] == ["rung 1080p", "rung 480p", "audio", "storyboard", "poster"]
    for rung, command in zip(plan.rungs, usual):
        args = ffmpeg.rung_output_args(rung, plan, "w")
        assert " ".join(args) in " ".join(command.argv) and " ".join(args) in ours
        assert ffmpeg.rung_filter(rung) in " ".join(command.argv)
    bare = commands.bare_ladder("ffmpeg", "in.mp4", plan, "w").argv
    assert "[sb]" not in " ".join(bare) and "[poster]" not in " ".join(bare) and "0:a:0" in bare
