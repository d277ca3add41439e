"""The phrase-search benchmark still runs (tiny size; timing is not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runs_and_writes_json(tmp_path):
    """`python -m bench.phrase_search --n 400 --rounds 1 --json PATH` writes its figures."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.phrase_search",
            "--n",
            "400",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "all keystrokes" in proc.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["phrases"] == 400
    assert figures["keystroke"]["count"] > 100
    assert {"p50_ms", "p99_ms", "max_ms"} <= set(figures["keystroke"])
    assert {"build_s", "rss_delta_mb", "traced_mb"} <= set(figures)


def test_synthetic_library_is_deterministic():
    """The generated library is the same on every run (fixed seed)."""
    code = (
        "from bench.phrase_search import build_library;"
        "a = build_library(600); b = build_library(600);"
        "assert a == b and len(a) == 600 and len({p.id for p in a}) == 600;"
        "print(sum(p.lang == 'en' for p in a))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert int(proc.stdout) > 100  # mixed Chinese and English
