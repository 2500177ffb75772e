"""The demo server of ``python -m blazews serve``, without a browser.

tests/release/test_demo_browser.py drives the page in a real Chromium; these check
the server's side of it in process, fast: the page over plain HTTP, the 404s and the
cross-origin 403, and each message of the page's protocol over a WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

import blazews
from blazews import _demo
from tests.compliance.test_autobahn import free_port, wait_for_port


@pytest.fixture
async def demo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[_demo.Demo, int]]:
    monkeypatch.setattr(_demo, "STATS_INTERVAL", 0.05)
    state = _demo.Demo()
    async with _demo.serve(state, "127.0.0.1", 0) as server:
        state.start()
        try:
            yield state, server.port
        finally:
            state.stop()


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


async def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, Any]:
    return await asyncio.to_thread(_get, port, path, headers)


async def next_of(conn: blazews.ClientConnection, kind: str) -> dict[str, Any]:
    """The next JSON message of type ``kind``, skipping the others (stats, system)."""
    while True:
        message = json.loads(await asyncio.wait_for(conn.recv(), 10))
        if message["type"] == kind:
            return message  # type: ignore[no-any-return]


async def test_the_page_is_served_over_plain_http(demo: tuple[_demo.Demo, int]) -> None:
    _, port = demo
    status, body, headers = await get(port, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert body == _demo.page() and b"<title>blazews demo</title>" in body
    assert b"http://" not in body.replace(b"http://127", b"")  # no CDN, nothing fetched
    assert (await get(port, "/index.html"))[0] == 200
    assert (await get(port, "/favicon.ico"))[0] == 404


async def test_other_origins_are_refused(demo: tuple[_demo.Demo, int]) -> None:
    _, port = demo
    status, _, _ = await get(port, "/", {"Origin": "http://evil.example"})
    assert status == 403
    with pytest.raises(blazews.InvalidStatus) as caught:
        await blazews.connect(f"ws://127.0.0.1:{port}/ws", origin="http://evil.example")
    assert caught.value.response.status_code == 403
    same = f"http://127.0.0.1:{port}"
    async with blazews.connect(f"ws://127.0.0.1:{port}/ws", origin=same) as conn:
        assert (await next_of(conn, "hello"))["name"].startswith("guest-")


async def test_websocket_elsewhere_is_a_plain_echo(demo: tuple[_demo.Demo, int]) -> None:
    state, port = demo
    async with blazews.connect(f"ws://127.0.0.1:{port}/") as conn:
        await conn.send("hello")
        assert await conn.recv() == "hello"
        await conn.send(b"\x00\x01")
        assert await conn.read_message() == (blazews.MessageType.BINARY, b"\x00\x01")
        assert not state.clients and state.received == 0  # no chat, no stats, no count


async def test_echo_ping_binary_and_errors(demo: tuple[_demo.Demo, int]) -> None:
    _, port = demo
    async with blazews.connect(f"ws://127.0.0.1:{port}/ws") as conn:
        await conn.send(json.dumps({"type": "echo", "text": "héllo"}))
        assert (await next_of(conn, "echo"))["text"] == "héllo"
        await conn.send(json.dumps({"type": "ping", "t": 12.5}))
        assert (await next_of(conn, "pong"))["t"] == 12.5
        await conn.send(b"\x00" * 64)
        while isinstance(message := await asyncio.wait_for(conn.recv(), 10), str):
            pass  # stats on their way
        assert message == b"\x00" * 64
        await conn.send("not json")
        assert "JSON" in (await next_of(conn, "error"))["text"]
        await conn.send(json.dumps({"type": "dance"}))
        assert "dance" in (await next_of(conn, "error"))["text"]


async def test_chat_reaches_everyone_and_stats_count(demo: tuple[_demo.Demo, int]) -> None:
    state, port = demo
    url = f"ws://127.0.0.1:{port}/ws"
    async with blazews.connect(url) as alice, blazews.connect(url) as bob:
        alice_name = (await next_of(alice, "hello"))["name"]
        bob_name = (await next_of(bob, "hello"))["name"]
        assert (await next_of(alice, "system"))["text"] == f"{alice_name} joined"
        assert (await next_of(alice, "system"))["text"] == f"{bob_name} joined"
        await alice.send(json.dumps({"type": "chat", "name": "alice", "text": "hi " * 400}))
        for conn in (alice, bob):
            said = await next_of(conn, "chat")
            assert said["name"] == "alice" and len(said["text"]) == _demo.MAX_TEXT
        await bob.send(json.dumps({"type": "chat", "text": ""}))  # nothing to say: dropped
        await bob.send(json.dumps({"type": "chat", "text": "yo"}))
        assert await next_of(alice, "chat") == {"type": "chat", "name": bob_name, "text": "yo"}
        for _ in range(200):  # the three messages, counted by the next tick
            stats = await next_of(alice, "stats")
            if stats["messages"] >= 3:
                break
        assert stats["connections"] == 2 and stats["messages"] == state.received == 3
        await bob.close()
        assert (await next_of(alice, "system"))["text"] == f"{bob_name} left"
        assert (await next_of(alice, "stats"))["connections"] == 1


async def test_a_client_that_does_not_read_is_skipped(demo: tuple[_demo.Demo, int]) -> None:
    state, port = demo
    async with blazews.connect(f"ws://127.0.0.1:{port}/ws") as conn:
        await next_of(conn, "hello")
        (server_side,) = state.clients
        server_side._conn._rx._writing_paused = True  # as when its buffer is over write_limit
        sent = state.received
        state.broadcast({"type": "chat", "name": "x", "text": "lost"})
        server_side._conn._rx._writing_paused = False
        state.broadcast({"type": "chat", "name": "x", "text": "kept"})
        assert (await next_of(conn, "chat"))["text"] == "kept"
        assert state.received == sent


def test_serve_command_prints_the_url() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "blazews", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        assert _get(port, "/")[0] == 200
        proc.terminate()  # SIGTERM: closes every connection, exits 0
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == f"blazews demo: open http://127.0.0.1:{port}/ in a browser"


def test_serve_command_reports_a_taken_port() -> None:
    with subprocess.Popen(  # the demo on a port, then a second one on the same port
        [sys.executable, "-m", "blazews", "serve", "--port", str(port := free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as first:
        try:
            wait_for_port(port, first)  # type: ignore[arg-type]
            second = subprocess.run(
                [sys.executable, "-m", "blazews", "serve", "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            first.terminate()
    assert second.returncode == 1
    assert second.stderr.startswith(f"blazews: error: cannot listen on 127.0.0.1:{port}")
