"""The command line: ``python -m blazews echo``, ``connect`` and ``--version``."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import blazews
from blazews import ConnectionClosedOK, serve, sync
from tests.compliance.test_autobahn import free_port, wait_for_port
from tests.helpers import echo_handler

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


def test_bench_runs_the_e2e_harness(tmp_path: Path) -> None:
    # (tests/release runs it for real from an installed package, outside a checkout)
    for cwd in (ROOT, tmp_path):  # the harness is part of the package: from anywhere
        shown = subprocess.run(
            [sys.executable, "-m", "blazews", "bench", "--help"],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        assert shown.returncode == 0, shown.stderr
        assert "--scenario" in shown.stdout
        assert shown.stdout.startswith("usage: python -m blazews bench ")
    wrong = subprocess.run(
        [sys.executable, "-m", "blazews", "bench", "--repeats", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2
    assert "python -m blazews bench: error: --repeats" in wrong.stderr


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blazews", *args],
        cwd=ROOT,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.fixture
def echo_server() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "blazews", "echo", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(10)


def test_connect_with_piped_input_prints_every_echo(echo_server: str) -> None:
    lines = ["first", "x" * 200_000, "last"]
    result = run_cli("connect", echo_server, input="".join(line + "\n" for line in lines))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [f"< {line}" for line in lines]


def test_connect_gives_up_waiting_for_echoes_a_server_does_not_send() -> None:
    async def silent(conn: Any) -> None:
        async for _ in conn:
            pass

    async def run() -> tuple[subprocess.CompletedProcess[str], float]:
        async with serve(silent, "127.0.0.1", 0) as server:
            start = time.monotonic()
            result = await asyncio.to_thread(
                run_cli, "connect", f"ws://127.0.0.1:{server.port}/", input="unanswered\n"
            )
            return result, time.monotonic() - start

    result, elapsed = asyncio.run(run())
    assert result.returncode == 0, result.stderr
    assert "< " not in result.stdout
    assert elapsed < 15


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("blazews: error: ")
    for word in words:
        assert word in result.stderr


def test_connect_to_a_closed_port_fails_in_one_line() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    assert_one_line_error(run_cli("connect", url), url, "connection refused")


def test_connect_to_an_http_url_fails_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    assert_one_line_error(run_cli("connect", url), url, "ws://")


def test_connect_to_a_server_refusing_the_handshake_fails_in_one_line() -> None:
    def reject(conn: Any, request: Any) -> Any:
        return conn.reject(403, "go away")

    async def run() -> tuple[str, subprocess.CompletedProcess[str]]:
        async with serve(echo_handler, "127.0.0.1", 0, process_request=reject) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            return url, await asyncio.to_thread(run_cli, "connect", url)

    url, result = asyncio.run(run())
    assert_one_line_error(result, url, "handshake", "403")


def summary() -> str:
    """What the command line says about the implementation running this process."""
    if blazews.IMPLEMENTATION == "python":
        return "pure Python"
    return f"{blazews.IMPLEMENTATION}, SIMD {blazews.simd_level()}"


def test_version_says_which_implementation_runs() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"blazews {blazews.__version__} (")
    assert summary() in result.stdout
    if blazews.IMPLEMENTATION != "python":
        assert platform.python_version() in result.stdout


def test_version_says_pure_python_when_extensions_are_off() -> None:
    result = run_cli("--version", env={"BLAZEWS_NO_EXTENSIONS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"blazews {blazews.__version__} (pure Python")
    assert result.stdout.count("\n") == 1  # one line, not rewrapped by argparse
    assert "BLAZEWS_NO_EXTENSIONS" in result.stdout
    assert "compiled, SIMD" not in result.stdout


@pytest.mark.parametrize("extra", [[], ["--sync"], ["--listener"], ["--no-compression"]])
def test_echo_banner_states_implementation_and_settings(extra: list[str]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "blazews", "echo", "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        wait_for_port(port, server)
        with sync.connect(f"ws://127.0.0.1:{port}/") as conn:  # served after the banner
            conn.send("ping")
            assert conn.recv() == "ping"
    finally:
        server.terminate()
        banner = server.communicate(timeout=10)[0].decode()
    assert banner.startswith(f"blazews echo server on ws://127.0.0.1:{port}/")
    assert summary() in banner
    assert "max message size 16 MiB (library default 1 MiB)" in banner
    assert ("compression off" if extra == ["--no-compression"] else "compression on") in banner


def test_connect_banner_states_implementation(echo_server: str) -> None:
    result = run_cli("connect", echo_server, input="")
    assert result.returncode == 0, result.stderr
    banner = result.stdout.splitlines()[0]
    assert banner.startswith(f"connected to {echo_server}")
    assert summary() in banner


def test_echo_on_a_port_in_use_fails_in_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "blazews", "echo", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"blazews: error: cannot listen on 127.0.0.1:{port}"
    )


@pytest.mark.parametrize(
    "extra",
    [[], ["--listener"], ["--sync"], ["--workers", "2"], ["--listener", "--workers", "2"]],
)
def test_sigterm_closes_every_connection_with_1001_and_exits_0(extra: list[str]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "blazews", "echo", "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, server)  # type: ignore[arg-type]
        with sync.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as conn:
            conn.send("before")
            assert conn.recv() == "before"
            server.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosedOK):
                conn.recv()
            assert conn.close_code == 1001
        assert server.wait(15) == 0
        assert server.stderr is not None and "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)


def test_workers_are_refused_with_the_blocking_front_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blazews", "echo", "--sync", "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers must be at least 1, and 1 with --sync" in result.stderr
