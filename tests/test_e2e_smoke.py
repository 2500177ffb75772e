"""Smoke test of the end-to-end benchmark harness (``python -m benchmarks.e2e``).

Runs a cut-down quick run (every scenario, library and event loop, one ingest size,
few connections) in a subprocess and checks that the report has every row, with a
number where a number is due. Never a timing assertion: the figures of a run this
short on a shared machine mean nothing.

The bench extra (websockets, aiohttp, picows, uvloop, matplotlib) must be installed:
a missing peer fails the test rather than skipping it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.e2e.rows import (  # noqa: E402
    ECHO_ROWS,
    INFLIGHTS,
    INGEST_ROWS,
    MEMORY_ROWS,
    PEERS,
    Row,
    size_label,
)

SIZE = 1024
CONNECTIONS = 50
LOOPS = ("uvloop", "asyncio")
NUMBER = re.compile(r"^[\d,]+(\.\d+)?( \(\d+ failed\))?$")


def test_bench_extra_is_installed() -> None:
    missing = [m for m in (*PEERS, "uvloop", "matplotlib") if importlib.util.find_spec(m) is None]
    assert not missing, f"install the bench extra (pip install -e '.[bench]'): missing {missing}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("e2e")
    cmd = [sys.executable, "-m", "benchmarks.e2e", "--quick", "--output", str(out)]
    cmd += ["--sizes", str(SIZE), "--connections", str(CONNECTIONS)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert (out / "e2e.md").exists(), f"no report: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return {
        "proc": proc,
        "out": out,
        "markdown": (out / "e2e.md").read_text(encoding="utf-8"),
        "json": json.loads((out / "e2e.json").read_text(encoding="utf-8")),
    }


def sections(markdown: str) -> dict[tuple[str, str], dict[tuple[str, str], list[str]]]:
    """Parse the report: (scenario heading word, loop) -> (row label, param) -> cells."""
    tables: dict[tuple[str, str], dict[tuple[str, str], list[str]]] = {}
    scenario = loop = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            scenario = line[3:].split(":")[0].lower()
        elif line.startswith("### Event loop: "):
            loop = line.removeprefix("### Event loop: ").strip()
            tables[(scenario, loop)] = {}
        elif line.startswith("| ") and not line.startswith("| ---") and loop:
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables[(scenario, loop)][(cells[0], cells[1])] = cells[2:]
    return tables


def expected_status(row: Row) -> str | None:
    """What a row says instead of a number, when it cannot run yet."""
    if row.lib != "blazews-listener":
        return None
    import blazews

    return None if hasattr(blazews, "serve_listener") else "not available yet"


def check_rows(
    table: dict[tuple[str, str], list[str]], rows: tuple[Row, ...], params: list[str]
) -> list[str]:
    problems = []
    for row in rows:
        for param in params:
            cells = table.get((row.label, param))
            if cells is None:
                problems.append(f"missing row {row.label!r} {param}")
                continue
            status = expected_status(row)
            if status is not None:
                if cells[0] != status:
                    problems.append(f"{row.label!r} {param}: {cells[0]!r}, expected {status!r}")
            elif not (NUMBER.match(cells[0]) or cells[0].startswith("error: ")):
                # A failed measurement is reported (test_no_measurement_failed checks
                # there is none); anything else is a harness bug.
                problems.append(f"{row.label!r} {param}: neither number nor error: {cells[0]!r}")
    return problems


def test_machine_header(run: dict[str, Any]) -> None:
    md = run["markdown"]
    for needle in (
        "machine: ",
        "python: ",
        "event loops: uvloop",
        "IMPLEMENTATION=",
        "simd_level()=",
    ):
        assert needle in md
    for peer in PEERS:
        assert f"{peer} not installed" not in md
    assert "not installed" not in md


def test_every_ingest_row(run: dict[str, Any]) -> None:
    tables = sections(run["markdown"])
    problems = []
    for loop in LOOPS:
        problems += check_rows(tables[("ingest", loop)], INGEST_ROWS, [size_label(SIZE)])
    assert not problems, "\n".join(problems)


def test_every_echo_row(run: dict[str, Any]) -> None:
    tables = sections(run["markdown"])
    problems = []
    for loop in LOOPS:
        problems += check_rows(tables[("echo", loop)], ECHO_ROWS, [str(n) for n in INFLIGHTS])
    assert not problems, "\n".join(problems)


def test_every_memory_row(run: dict[str, Any]) -> None:
    tables = sections(run["markdown"])
    problems = []
    for loop in LOOPS:
        problems += check_rows(tables[("memory", loop)], MEMORY_ROWS, [str(CONNECTIONS)])
    assert not problems, "\n".join(problems)


def test_plots_and_json(run: dict[str, Any]) -> None:
    out: Path = run["out"]
    for name in ("e2e_ingest.png", "e2e_echo.png", "e2e_memory.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG"), name
        assert f"]({name})" in run["markdown"]
    doc = run["json"]
    assert doc["machine"]["simd_level"] and doc["machine"]["implementation"]
    scenarios = {r["scenario"] for r in doc["records"]}
    assert scenarios == {"ingest", "echo", "memory"}


def test_no_measurement_failed(run: dict[str, Any]) -> None:
    errors = [
        f"{r['scenario']} {r['loop']} {r['row']} {r['param']}: {r['error']}"
        for r in run["json"]["records"]
        if "error" in r
    ]
    assert not errors, "\n".join(errors)
    assert run["proc"].returncode == 0, run["proc"].stderr[-2000:]
