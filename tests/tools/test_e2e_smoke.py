"""Smoke test of the end-to-end benchmark harness (``python -m blazews._bench.e2e``).

Runs a cut-down quick run (every scenario but deflate, every library and event loop,
one ingest size, few connections) in a subprocess, then ``--quick --scenario deflate``
in another, and checks that the reports have every row, with a number where a number
is due. Never a timing assertion: the figures of a run this short on a shared machine
mean nothing.

The bench extra (websockets, aiohttp, picows, uvloop, matplotlib) must be installed:
a missing peer fails the test rather than skipping it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from blazews._bench.e2e.rows import (  # noqa: E402
    DEFLATE_INFLIGHTS,
    DEFLATE_ROWS,
    ECHO_ROWS,
    INFLIGHTS,
    INGEST_ROWS,
    MEMORY_ROWS,
    PEERS,
    SCENARIOS,
    UVICORN_ROWS,
    Row,
    size_label,
)
from blazews._bench.e2e.runner import parse_args  # noqa: E402

SIZE = 1024
CONNECTIONS = 50
LOOPS = ("uvloop", "asyncio")
NUMBER = re.compile(r"^[\d,]+(\.\d+)?( \(\d+ failed\))?$")


def test_bench_extra_is_installed() -> None:
    missing = [m for m in (*PEERS, "uvloop", "matplotlib") if importlib.util.find_spec(m) is None]
    assert not missing, f"install the bench extra (pip install -e '.[bench]'): missing {missing}"


def quick_run(out: Path, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "blazews._bench.e2e", "--quick", "--output", str(out), *args]
    cmd += ["--connections", str(CONNECTIONS)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert (out / "e2e.md").exists(), f"no report: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return {
        "proc": proc,
        "out": out,
        "markdown": (out / "e2e.md").read_text(encoding="utf-8"),
        "json": json.loads((out / "e2e.json").read_text(encoding="utf-8")),
    }


def native(rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """The rows of the libraries' own servers: the uvicorn rows have a test of their own."""
    return tuple(row for row in rows if not row.lib.startswith("uvicorn-"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scenarios = [arg for name in SCENARIOS if name != "deflate" for arg in ("--scenario", name)]
    keys = {row.key for row in native((*INGEST_ROWS, *ECHO_ROWS, *MEMORY_ROWS))}
    libs = ("--libs", ",".join(sorted(keys)))
    return quick_run(tmp_path_factory.mktemp("e2e"), "--sizes", str(SIZE), *scenarios, *libs)


@pytest.fixture(scope="module")
def deflate_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return quick_run(tmp_path_factory.mktemp("e2e-deflate"), "--scenario", "deflate")


TableCells = dict[tuple[str, str], list[str]]
LOOP_HEADING = re.compile(r"^#{3,4} (?:(.*), )?[Ee]vent loop: (\S+)$")


def sections(markdown: str) -> dict[tuple[str, str], TableCells]:
    """Parse the report: (section, loop) -> (row label, param) -> cells.

    The section is the scenario heading's first word (``### Event loop: X`` under
    ``## Ingest: ...``), or the words before ``, event loop: X``; tables under any
    other ``###`` heading are filed under that heading with loop ``-``.
    """
    tables: dict[tuple[str, str], TableCells] = {}
    scenario = ""
    current: TableCells | None = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            scenario = line[3:].split(":")[0].lower()
            current = None
        elif (match := LOOP_HEADING.match(line)) is not None:
            name = (match.group(1) or scenario).lower()
            current = tables[(name, match.group(2))] = {}
        elif line.startswith("###"):
            current = tables[(line.lstrip("#").strip().lower(), "-")] = {}
        elif line.startswith("| ") and not line.startswith("| ---") and current is not None:
            cells = [c.strip() for c in line.strip("|").split("|")]
            current[(cells[0], cells[1])] = cells[2:]
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


def test_deflate_runs_by_default() -> None:
    assert "deflate" in SCENARIOS
    assert parse_args([]).scenarios == list(SCENARIOS)
    assert parse_args(["--scenario", "deflate"]).scenarios == ["deflate"]


def test_echo_runs_more_repeats_unless_told() -> None:
    assert (parse_args([]).repeats, parse_args([]).echo_repeats) == (3, 9)
    assert parse_args(["--repeats", "5"]).echo_repeats == 5
    assert parse_args(["--repeats", "5", "--echo-repeats", "2"]).echo_repeats == 2
    assert parse_args(["--quick"]).echo_repeats == 1
    with pytest.raises(SystemExit):
        parse_args(["--echo-repeats", "0"])


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
        problems += check_rows(tables[("ingest", loop)], native(INGEST_ROWS), [size_label(SIZE)])
    assert not problems, "\n".join(problems)


def test_every_echo_row(run: dict[str, Any]) -> None:
    tables = sections(run["markdown"])
    problems = []
    for loop in LOOPS:
        inflights = [str(n) for n in INFLIGHTS]
        problems += check_rows(tables[("echo", loop)], native(ECHO_ROWS), inflights)
    assert not problems, "\n".join(problems)


def test_every_memory_row(run: dict[str, Any]) -> None:
    tables = sections(run["markdown"])
    problems = []
    for loop in LOOPS:
        problems += check_rows(tables[("memory", loop)], native(MEMORY_ROWS), [str(CONNECTIONS)])
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
    assert "## Compression" not in run["markdown"]


def test_no_measurement_failed(run: dict[str, Any]) -> None:
    errors = [
        f"{r['scenario']} {r['loop']} {r['row']} {r['param']}: {r['error']}"
        for r in run["json"]["records"]
        if "error" in r
    ]
    assert not errors, "\n".join(errors)
    assert run["proc"].returncode == 0, run["proc"].stderr[-2000:]


@pytest.mark.skipif(
    os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0"),
    reason="a harness check: the compiled run has made it",
)
def test_uvicorn_rows(tmp_path: Path) -> None:
    """A Starlette endpoint under uvicorn with blazews' class, websockets-sansio and
    wsproto: echo and idle memory, uvloop only, as make bench runs them (ingest is left
    out for time: its server differs from echo's by its handler alone)."""
    libs = ",".join(row.key for row in UVICORN_ROWS)
    scenarios = ("--scenario", "echo", "--scenario", "memory")
    result = quick_run(tmp_path, "--loop", "uvloop", "--libs", libs, *scenarios)
    tables = sections(result["markdown"])
    problems = check_rows(tables[("echo", "uvloop")], UVICORN_ROWS, [str(n) for n in INFLIGHTS])
    uvicorn_memory = tuple(row for row in MEMORY_ROWS if row.lib.startswith("uvicorn-"))
    assert len(uvicorn_memory) == 2 * len(UVICORN_ROWS)  # keepalive off, and uvicorn's default
    problems += check_rows(tables[("memory", "uvloop")], uvicorn_memory, [str(CONNECTIONS)])
    errors = [r for r in result["json"]["records"] if "error" in r]
    assert not problems and not errors, "\n".join(problems) + str(errors)


# ---- deflate -------------------------------------------------------------------------


def test_deflate_no_error(deflate_run: dict[str, Any]) -> None:
    errors = [
        f"{r['scenario']} {r['loop']} {r['row']} {r['param']}: {r['error']}"
        for r in deflate_run["json"]["records"]
        if "error" in r
    ]
    skipped = deflate_run["json"]["skipped"]
    assert not errors, "\n".join(errors)
    assert not skipped, skipped
    assert deflate_run["proc"].returncode == 0, deflate_run["proc"].stderr[-2000:]


def strict_rows(table: TableCells, params: list[str]) -> list[str]:
    """Every deflate row, with a number: an error or a status is a failure too."""
    problems = []
    for row in DEFLATE_ROWS:
        for param in params:
            cells = table.get((row.label, param))
            if cells is None:
                problems.append(f"missing row {row.label!r} {param}")
            elif not NUMBER.match(cells[0]):
                problems.append(f"{row.label!r} {param}: not a number: {cells[0]!r}")
    return problems


def test_every_deflate_row(deflate_run: dict[str, Any]) -> None:
    md = deflate_run["markdown"]
    assert "## Compression" in md
    tables = sections(md)
    problems = []
    for loop in LOOPS:
        echo = tables[("compressed echo", loop)]
        problems += strict_rows(echo, [str(n) for n in DEFLATE_INFLIGHTS])
        memory = tables[("idle compressed connections", loop)]
        problems += strict_rows(memory, [str(CONNECTIONS)])
    assert not problems, "\n".join(problems)


def test_deflate_negotiation_reported(deflate_run: dict[str, Any]) -> None:
    table = sections(deflate_run["markdown"])[("negotiated settings", "-")]
    by_label = {label: [param, *cells] for (label, param), cells in table.items()}
    wire = re.compile(r"^[\d,]+ \([\d.]+\u00d7\)$")  # "1,234 (1.5" times sign ")"
    for row in DEFLATE_ROWS:
        own, offer, small, large = by_label[row.label]
        assert "permessage-deflate" in own and "permessage-deflate" in offer, row.label
        assert wire.match(small) and wire.match(large), (row.label, small, large)
    records = [r for r in deflate_run["json"]["records"] if r["scenario"] == "deflate-memory"]
    assert all(r["reply_bytes"] > 0 and r["probe_reply_bytes"] > 0 for r in records)


def test_deflate_plot_and_json(deflate_run: dict[str, Any]) -> None:
    out: Path = deflate_run["out"]
    assert (out / "e2e_deflate.png").read_bytes().startswith(b"\x89PNG")
    assert "](e2e_deflate.png)" in deflate_run["markdown"]
    records = deflate_run["json"]["records"]
    assert {r["scenario"] for r in records} == {"deflate-echo", "deflate-memory"}
    for r in records:
        assert isinstance(r["value"], float), r
        assert "permessage-deflate" in r["extensions"], r
        if r["scenario"] == "deflate-echo":
            assert isinstance(r["bytes_per_s"], float), r


def test_echo_window_refuses_a_negotiated_extension_in_an_uncompressed_run() -> None:
    # Since the options refactor, the harness's old check for a `compression`
    # parameter found none and left blazews' echo rows compressing (both ends offer
    # and accept permessage-deflate by default): the rows measured deflate. The
    # echo client now refuses that run, and passes compression=None itself.
    from blazews._bench.e2e.loadgen import Window

    plain = Window(1, 0.0, 0.1, [b"x"], deflate=False)
    plain.negotiated(None)
    with pytest.raises(ConnectionError, match="an extension was negotiated"):
        plain.negotiated("permessage-deflate; server_no_context_takeover")
    compressed = Window(1, 0.0, 0.1, [b"x"], deflate=True)
    with pytest.raises(ConnectionError, match="not negotiated"):
        compressed.negotiated("")
