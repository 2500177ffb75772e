"""Every program in examples/ runs: each server started, its clients run against it.

The one change made to an example is its port (8765, the demo's), swapped for a free
one in a copy. A client must exit 0 and print what the test expects; a server must
log no traceback while its clients talk to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from blazews import sync
from tests.compliance.test_autobahn import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEMO_PORT = "8765"
TIMEOUT = 60.0


def _copy(name: str, port: int, tmp_path: Path) -> Path:
    """The example ``name`` with its port swapped for ``port``, written in ``tmp_path``."""
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    assert DEMO_PORT in source, name
    path = tmp_path / name
    path.write_text(source.replace(DEMO_PORT, str(port)), encoding="utf-8")
    return path


@contextmanager
def running(name: str, tmp_path: Path) -> Iterator[int]:
    """Run the server example ``name`` on a free port; yield the port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(_copy(name, port, tmp_path))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        yield port
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "Traceback" not in err, err


def run_client(name: str, port: int, tmp_path: Path, *args: str) -> list[str]:
    """Run the client example ``name`` against ``port``; return its output lines."""
    result = subprocess.run(
        [sys.executable, str(_copy(name, port, tmp_path)), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_every_example_is_tested() -> None:
    tested = {
        "echo_server.py",
        "echo_client.py",
        "sync_echo_server.py",
        "sync_echo_client.py",
        "chat_server.py",
        "market_data_feed.py",
        "market_data_client.py",
        "numpy_into.py",
        "fastapi_app.py",
    }
    assert {path.name for path in EXAMPLES.glob("*.py")} <= tested


def test_asyncio_echo(tmp_path: Path) -> None:
    with running("echo_server.py", tmp_path) as port:
        out = run_client("echo_client.py", port, tmp_path)
        assert out[:2] == ["hello", r"b'\x00\x01\x02'"]
        assert out[2].startswith("round trip: ") and out[2].endswith(" ms")
        # The blocking client talks to the asyncio server just as well.
        assert run_client("sync_echo_client.py", port, tmp_path) == ["one", "two", "three"]


def test_blocking_echo(tmp_path: Path) -> None:
    with running("sync_echo_server.py", tmp_path) as port:
        assert run_client("sync_echo_client.py", port, tmp_path) == ["one", "two", "three"]
        assert run_client("echo_client.py", port, tmp_path)[0] == "hello"


def test_chat_broadcasts_to_everyone(tmp_path: Path) -> None:
    url_of = "ws://127.0.0.1:{}/".format
    with running("chat_server.py", tmp_path) as port:
        with sync.connect(url_of(port)) as alice:
            assert alice.recv(timeout=10).endswith("joined (1 here)")
            with sync.connect(url_of(port)) as bob:
                assert bob.recv(timeout=10).endswith("joined (2 here)")
                assert alice.recv(timeout=10).endswith("joined (2 here)")
                alice.send("hello bob")
                said = alice.recv(timeout=10)
                assert said.endswith(": hello bob")
                assert bob.recv(timeout=10) == said  # the same line reaches everyone, sender too
            assert alice.recv(timeout=10).endswith(" left")


def test_market_data_listener(tmp_path: Path) -> None:
    with running("market_data_feed.py", tmp_path) as port:
        out = run_client("market_data_client.py", port, tmp_path, "20000")
    assert out[0] == "ticks: 20000"
    vwap = float(out[1].removeprefix("vwap: "))
    assert 95.0 < vwap < 105.0  # prices swing around 100 by at most 5
    assert out[2].startswith("rate: ") and out[2].endswith(" ticks/s")


def test_numpy_read_message_into(tmp_path: Path) -> None:
    with running("echo_server.py", tmp_path) as port:
        out = run_client("numpy_into.py", port, tmp_path)
    assert out == ["100 arrays of 8192 bytes received in place", "last sum: 50688.0"]


def test_fastapi_app_on_blazews(tmp_path: Path) -> None:
    with running("fastapi_app.py", tmp_path) as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert json.loads(response.read()) == {"echo": "/echo", "room": "/room"}
        with sync.connect(f"ws://127.0.0.1:{port}/echo") as conn:
            conn.send("hello")
            assert conn.recv(timeout=10) == "echo: hello"
            # blazews' class answered: its deflate policy (12-bit windows) says so.
            extensions = (conn.response_headers or {}).get("Sec-WebSocket-Extensions", "")
            assert "server_max_window_bits=12" in extensions, extensions
        with sync.connect(f"ws://127.0.0.1:{port}/room") as a:
            with sync.connect(f"ws://127.0.0.1:{port}/room") as b:
                b.send("hi room")
                assert a.recv(timeout=10) == b.recv(timeout=10) == "hi room"
