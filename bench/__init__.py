"""Benchmarks: our pipeline against the usual way, side by side, in one run.

`python bench/run.py` is the entry point; README.md beside it explains the method. Each
benchmark is a module (`b1.py`, `b5.py`) with a `run(ctx)` that returns a `report.Section`;
`run.py` lists them in BENCHMARKS, so B2-B4 (chunking) are one module each.
"""
