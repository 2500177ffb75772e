"""Autobahn TestSuite conformance (the ``kosoku`` runner), servers and clients.

Every case, permessage-deflate (sections 12 and 13) included, must end OK,
NON-STRICT or INFORMATIONAL, both in behaviour and in closing behaviour; every 12.*
and 13.* case must be OK. The implementation under test is the one this pytest
process runs (compiled, or pure Python under ``BLAZEWS_NO_EXTENSIONS=1``): the
subprocesses inherit the environment.

Two case sets. ``full``: all 517 cases. ``quick``: 301 of them, every section but
the performance ones and most of the compression matrix (section 9, 12.2-12.5 and
13.2-13.6 left out; 12.1, 13.1 and 13.7 kept: every permessage-deflate parameter
combination 13.* negotiates goes through 13.1/13.7's offers, with small and large
messages). ``make test`` runs the full set with the compiled asyncio server and
client, the quick set with every other front end and build (``BLAZEWS_AUTOBAHN_FULL_FOR``
names the front ends that get the full set when compiled; ``asyncio`` by default);
``BLAZEWS_AUTOBAHN_FULL=1`` (``make autobahn``) runs every case everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import blazews

pytestmark = pytest.mark.autobahn

GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
FULL = os.environ.get("BLAZEWS_AUTOBAHN_FULL", "") not in ("", "0")
FULL_FOR = os.environ.get("BLAZEWS_AUTOBAHN_FULL_FOR", "asyncio").split(",")

# The case globs each set leaves out, and how many cases then run in all and how
# many of them in sections 12 and 13 (9: 54 cases; 12.x and 13.x: 18 each).
SETS = {
    "full": ([], 517, 216),
    "quick": (
        ["9.*", *(f"12.{n}.*" for n in range(2, 6)), *(f"13.{n}.*" for n in range(2, 7))],
        517 - 54 - 4 * 18 - 5 * 18,
        3 * 18,
    ),
}


def case_set(front_end: str) -> str:
    """The set a run of ``front_end`` in this build gets (see the module docstring)."""
    if FULL or (blazews.IMPLEMENTATION == "compiled" and front_end in FULL_FOR):
        return "full"
    return "quick"

ROOT = Path(__file__).resolve().parents[2]
KOSOKU = shutil.which("kosoku") or str(Path(sys.executable).parent / "kosoku")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def check_report(outdir: Path, cases_set: str) -> dict[str, dict[str, str]]:
    index = json.loads((outdir / "index.json").read_text())
    assert len(index) == 1, index.keys()
    (cases,) = index.values()
    _, total, compressed = SETS[cases_set]
    assert len(cases) == total, f"{len(cases)} cases ran, not {total}"
    bad = {
        case: f"{result['behavior']}/{result['behaviorClose']}"
        for case, result in cases.items()
        if result["behavior"] not in GOOD or result["behaviorClose"] not in GOOD
    }
    assert not bad, f"cases not passed: {bad}"
    deflate = [case for case in cases if case.startswith(("12.", "13."))]
    assert len(deflate) == compressed, f"{len(deflate)} permessage-deflate cases ran"
    not_ok = {case: cases[case]["behavior"] for case in deflate if cases[case]["behavior"] != "OK"}
    assert not not_ok, f"permessage-deflate cases not OK: {not_ok}"
    return cases


@pytest.mark.parametrize("front_end", ["asyncio", "sync", "listener"])
def test_server(front_end: str, tmp_path: Path) -> None:
    cases_set = case_set(front_end)
    port = free_port()
    cmd = [sys.executable, "-m", "blazews", "echo", "--port", str(port)]
    if front_end != "asyncio":
        cmd.append(f"--{front_end}")
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        args = [KOSOKU, "-m", "fuzzingclient", "-p", "2", "-o", str(tmp_path)]
        for pattern in SETS[cases_set][0]:
            args += ["-x", pattern]
        run = subprocess.run(
            [*args, f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=1200
        )
        assert server.poll() is None, "the echo server died during the run"
    finally:
        server.terminate()
        server.wait(10)
    check_report(tmp_path, cases_set)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("front_end", ["asyncio", "sync"])
def test_client(front_end: str, tmp_path: Path) -> None:
    cases_set = case_set(front_end)
    port = free_port()
    args = [KOSOKU, "-m", "fuzzingserver", "-o", str(tmp_path)]
    for pattern in SETS[cases_set][0]:
        args += ["-x", pattern]
    fuzzer = subprocess.Popen(
        [*args, f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, fuzzer)
        driver = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.compliance.autobahn_client",
                front_end,
                f"ws://127.0.0.1:{port}",
                f"blazews-{front_end}-{blazews.IMPLEMENTATION}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert driver.returncode == 0, driver.stderr
        output, _ = fuzzer.communicate(timeout=120)
    finally:
        if fuzzer.poll() is None:
            fuzzer.kill()
            fuzzer.wait()
    check_report(tmp_path, cases_set)
    assert fuzzer.returncode == 0, output
