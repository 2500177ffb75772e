"""Smoke test of the fan-out benchmarks (``python -m benchmarks.fanout --quick``): every
row of every scenario is there, with a number. Never a timing assertion.

It runs with the compiled build only: the harness is the same Python either way, and
its ~10 s of processes would count twice in ``make test``'s budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import blazews

pytestmark = pytest.mark.skipif(
    blazews.IMPLEMENTATION == "python", reason="the harness runs once, with the compiled build"
)

ROOT = Path(__file__).resolve().parents[2]
ROWS = {
    "blazews.broadcast",
    "blazews send loop",
    "transport.write loop",
    "floor (socket.send)",
    "websockets.broadcast",
}


def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.fanout", "--quick", "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "fanout.json").read_text(encoding="utf-8"))
    for compression in (False, True):
        rows = {r["row"] for r in data["fanout"] if r["compression"] is compression}
        assert rows == ROWS
    assert all(r["deliveries_per_s"] > 0 for r in data["fanout"])
    assert data["redis"]["deliveries_per_s"] > 0
    assert data["redis"]["latency_p99_ms"] >= data["redis"]["latency_p50_ms"] > 0
    assert [r["workers"] for r in data["workers"]] == [1, 2]
    assert all(r["echoes_per_s"] > 0 for r in data["workers"])
    report = (tmp_path / "fanout.md").read_text(encoding="utf-8")
    assert "vs floor" in report and "server CPU" in report
    assert data["machine"]["simd_level"] and data["machine"]["python"].startswith("CPython")
    assert "Machine: " in report and "SIMD level" in report
