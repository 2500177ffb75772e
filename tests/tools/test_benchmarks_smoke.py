"""Smoke test of the micro-benchmark harness: ``python -m benchmarks.micro --quick``
runs and its report has every row. It checks the harness, never a timing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MASK_SIZES = [16, 125, 1024, 16384, 1 << 20]
UTF8_KINDS = ["ascii", "latin-1", "cjk", "emoji"]
UTF8_SIZES = [1024, 1 << 20]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _run(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` from the repository; it must succeed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    proc = _run("benchmarks.micro", "--quick", "--output", str(tmp_path), timeout=300)
    for line in ("CPU:", "SIMD level:", "Python:"):
        assert line in proc.stdout

    report = (tmp_path / "micro.md").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "micro.json").read_text(encoding="utf-8"))
    levels = data["machine"]["available_levels"]

    mask = {(r["impl"], r["level"], r["size"]) for r in data["mask"]}
    impls = ["blazews.mask_bytes", "blazews.apply_mask"]
    for level in levels:
        for impl in impls:
            assert {(impl, level, size) for size in MASK_SIZES} <= mask
    for impl in ("blazews._kernels_py.mask_bytes", "blazews._kernels_py.apply_mask", "copy"):
        assert {(impl, None, size) for size in MASK_SIZES} <= mask
    labels = {r["label"] for r in data["mask"]}
    if _installed("websockets"):
        assert any(label.startswith("websockets") for label in labels)
    if _installed("aiohttp"):
        assert any(label.startswith("aiohttp") for label in labels)
    for label in labels:
        assert f"| {label} |" in report

    utf8 = {(r["impl"], r["level"], r["kind"], r["size"]) for r in data["utf8"]}
    columns = [(kind, size) for kind in UTF8_KINDS for size in UTF8_SIZES]
    for level in levels:
        assert {("blazews.validate_utf8", level, *col) for col in columns} <= utf8
    for impl in ("blazews._kernels_py.validate_utf8", "bytes.decode"):
        assert {(impl, None, *col) for col in columns} <= utf8
    for label in {r["label"] for r in data["utf8"]}:
        assert f"| {label} |" in report

    seed = {r["impl"] for r in data["seed"]}
    assert {
        "core.read_message",
        "core.read_message_into",
        "core.read_message (fragmented)",
        "FrameReader.read_frame_into",
    } <= seed
    for r in data["seed"]:
        assert r["median_ns"] > 0 and r["retained_blocks"] >= 0
        assert f"| {r['label']} |" in report
    for go in ("Go seed: ReadMessage", "Go seed: ReadMessageInto"):
        assert f"| {go} |" in report

    pool_rows = {r["label"]: r for r in data["pool"]}
    assert "bytearray(1024)" in pool_rows
    assert "DEFAULT_BUFFER_POOL.get(1024) + put" in pool_rows
    if _installed("blazews.buffers"):
        assert pool_rows["DEFAULT_BUFFER_POOL.get(1024) + put"]["available"]
    else:
        assert "not available yet" in report
    for label in pool_rows:
        assert f"| {label} |" in report

    send_rows = {(r["label"], r["size"]): r for r in data["send"]}
    labels = {label for label, _ in send_rows}
    blazews_clients = ("blazews.sync", "blazews asyncio")
    for client in blazews_clients:
        assert {f"{client} (masked in 1 MiB pieces)", f"{client}, whole masked copy"} <= labels
    if _installed("websockets"):
        assert {"websockets.sync", "websockets asyncio"} <= labels
    if _installed("aiohttp"):
        assert "aiohttp" in labels
    for (label, _), r in send_rows.items():
        assert r["gb_per_s"] > 0
        assert f"| {label} | {r['loop']} |" in report
        assert (r["loop"] == "-") == (".sync" in label)
    # The 4 MiB message: no masked copy of it with pieces, one without. (Pure Python,
    # mask_into itself makes a few piece-sized temporaries.)
    for client in blazews_clients:
        pieces = send_rows[(f"{client} (masked in 1 MiB pieces)", 4 << 20)]["peak_bytes"]
        whole = send_rows[(f"{client}, whole masked copy", 4 << 20)]["peak_bytes"]
        assert whole >= 4 << 20 and pieces < whole, client
        if data["machine"]["implementation"] == "compiled":
            assert pieces < 2 << 20, client


def test_instruction_count_runs_and_reports(tmp_path: Path) -> None:
    # The callgrind benchmark's harness: a neutral client's round trips through the
    # e2e echo server, counted twice, differenced. It checks the harness (a count in
    # a plausible range, the report's row), never a figure.
    args = ["--libs", "blazews-listener", "--messages", "50", "--output", str(tmp_path)]
    _run("benchmarks.instructions", *args, timeout=600)
    data = json.loads((tmp_path / "instructions.json").read_text(encoding="utf-8"))
    per = data["per_message"]["blazews-listener"]
    assert 1_000 < per < 1_000_000  # a read, a parse, a callback and a write
    by_code = data["by_code"]["blazews-listener"]
    assert abs(sum(by_code.values()) - per) <= 0.02 * per  # every function counted once
    assert by_code["CPython"] > 0 and by_code["uvloop"] > 0
    if data["machine"]["implementation"] == "compiled":
        assert by_code["blazews"] > 0  # its compiled modules
    report = (tmp_path / "instructions.md").read_text(encoding="utf-8")
    assert "| blazews-listener |" in report
    assert '"loop": "uvloop"' in report  # the run's set-up is in the report


def test_instruction_count_attributes_objects_by_package_directory() -> None:
    # A clone named blazews holds its .venv: an object file of uvloop or CPython
    # there is not blazews' (issue 19: a path fragment once claimed them all).
    from benchmarks.instructions import code_of, package_dirs

    clone = "/home/user/blazews/.venv/lib/python3.11/site-packages"
    assert code_of(f"{clone}/somelib/_speedups.cpython-311-x86_64-linux-gnu.so") == "other"
    assert code_of("/home/user/blazews/.venv/bin/python3.11") == "CPython"
    blazews_dir = package_dirs()["blazews"]
    assert code_of(os.path.join(blazews_dir, "_native", "_kernels.so")) == "blazews"
    if "uvloop" in package_dirs():
        assert code_of(os.path.join(package_dirs()["uvloop"], "loop.so")) == "uvloop"
        assert not package_dirs()["uvloop"].startswith(blazews_dir)


def test_machine_info_reports_the_build_that_runs() -> None:
    # Every report carries it; it once read a status name the package no longer has
    # and said "python" for a compiled core.
    import blazews
    from blazews._bench.common import machine_info

    info = machine_info()
    assert info["implementation"] == blazews.IMPLEMENTATION
    assert info["codec"] == blazews.implementation_report()["sansio._protocol"]


def test_wake_floor_counts_a_task_wake_up() -> None:
    # benchmarks.wake: asyncio's smallest wake-up under callgrind (the floor of a
    # coroutine API's per-message cost). Checks the harness: a count in a plausible
    # range per wake-up, and that more wake-ups cost more; never a figure.
    from benchmarks.wake import count_instructions, per_wake

    assert count_instructions(2_000, "uvloop") > count_instructions(200, "uvloop")
    assert 1_000 < per_wake("uvloop", 200, 1_200) < 1_000_000
