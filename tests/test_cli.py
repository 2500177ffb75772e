"""The command line: ``python -m blazews echo`` and ``python -m blazews connect``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blazews import sync
from tests.compliance.test_autobahn import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("extra", [[], ["--sync"]])
def test_echo_server_and_interactive_client(extra: list[str]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "blazews", "echo", "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, server)
        with sync.connect(f"ws://127.0.0.1:{port}/") as conn:
            conn.send("text")
            assert conn.recv() == "text"
            conn.send(b"\x00bin")
            assert conn.recv() == b"\x00bin"
        client = subprocess.Popen(
            [sys.executable, "-m", "blazews", "connect", f"ws://127.0.0.1:{port}/"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None and client.stdout is not None
        try:
            assert "connected to" in client.stdout.readline()
            for line in ["first line", "second line"]:
                client.stdin.write(line + "\n")
                client.stdin.flush()
                assert client.stdout.readline() == f"< {line}\n"
            client.stdin.close()  # end of input closes the connection cleanly
            assert client.wait(30) == 0
            assert "connection closed" not in client.stdout.read()
        finally:
            if client.poll() is None:
                client.kill()
    finally:
        server.terminate()
        server.wait(10)
    assert f"ws://127.0.0.1:{port}/" in (server.stdout.read() if server.stdout else "")


def test_help_lists_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blazews", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "echo" in result.stdout and "connect" in result.stdout


def test_bench_runs_the_e2e_harness_from_a_checkout(tmp_path: Path) -> None:
    inside = subprocess.run(
        [sys.executable, "-m", "blazews", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert inside.returncode == 0, inside.stderr
    assert "--scenario" in inside.stdout
    assert inside.stdout.startswith("usage: python -m blazews bench ")
    wrong = subprocess.run(
        [sys.executable, "-m", "blazews", "bench", "--repeats", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2
    assert "python -m blazews bench: error: --repeats" in wrong.stderr
    outside = subprocess.run(
        [sys.executable, "-m", "blazews", "bench"], cwd=tmp_path, capture_output=True, text=True
    )
    assert outside.returncode == 2
    assert "source tree" in outside.stderr
