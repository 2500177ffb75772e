"""Starlette and FastAPI apps under a real uvicorn process with blazews' class
(``--ws blazews.uvicorn:WebSocketProtocol``, httptools, uvloop), driven by blazews'
client and by the websockets client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
import websockets.asyncio.client

import blazews

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(app: str, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", app, "--port", str(port), "--host", "127.0.0.1",
        "--ws", "blazews.uvicorn:WebSocketProtocol", "--http", "httptools", "--loop", "uvloop",
        "--lifespan", "off", "--log-level", "warning", *options,
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=dict(os.environ)), port


def _wait(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "uvicorn exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("uvicorn did not start")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """The apps' ports: Starlette with compression on and off, FastAPI."""
    started = {
        "deflate": _start("tests.asgi.apps:starlette_app"),
        "plain": _start("tests.asgi.apps:starlette_app", "--ws-per-message-deflate", "false"),
        "fastapi": _start("tests.asgi.apps:fastapi_app"),
    }
    try:
        for process, port in started.values():
            _wait(process, port)
        yield {name: port for name, (_, port) in started.items()}
    finally:
        for process, _ in started.values():
            process.terminate()
        for process, _ in started.values():
            process.wait(timeout=30)


class Client:
    """One API over both clients: what these tests need of them."""

    def __init__(self, conn: Any, library: str) -> None:
        self.conn, self.library = conn, library

    async def send(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def recv(self) -> str | bytes:
        return await self.conn.recv()  # type: ignore[no-any-return]

    @property
    def subprotocol(self) -> str | None:
        return self.conn.subprotocol  # type: ignore[no-any-return]

    @property
    def extensions(self) -> list[str]:
        return [e.name for e in self.conn.protocol.extensions]

    def closed_with(self, exc: BaseException) -> tuple[int, str]:
        rcvd = exc.rcvd  # type: ignore[attr-defined]
        return rcvd.code, rcvd.reason


@asynccontextmanager
async def blazews_client(uri: str, **kw: Any) -> AsyncIterator[Client]:
    async with blazews.connect(uri, max_message_size=16 * MIB, **kw) as conn:
        yield Client(conn, "blazews")


@asynccontextmanager
async def websockets_client(uri: str, **kw: Any) -> AsyncIterator[Client]:
    async with websockets.asyncio.client.connect(uri, max_size=None, **kw) as conn:
        yield Client(conn, "websockets")


CLIENTS = [
    pytest.param(blazews_client, id="blazews"),
    pytest.param(websockets_client, id="websockets"),
]
Connect = Callable[..., Any]
CLOSED = (blazews.ConnectionClosed, websockets.ConnectionClosed)


@pytest.mark.parametrize("connect", CLIENTS)
@pytest.mark.parametrize("server", ["deflate", "plain"])
async def test_echo_with_and_without_compression(
    servers: dict[str, int], server: str, connect: Connect
) -> None:
    async with connect(f"ws://127.0.0.1:{servers[server]}/echo") as ws:
        assert ws.extensions == (["permessage-deflate"] if server == "deflate" else [])
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff" * 3)
        assert await ws.recv() == b"\x00\xff" * 3
        big = bytes(range(256)) * (8 * MIB // 256)  # 8 MiB
        await ws.send(big)
        assert await ws.recv() == big


@pytest.mark.parametrize("connect", CLIENTS)
async def test_path_query_headers_subprotocol_and_close(
    servers: dict[str, int], connect: Connect
) -> None:
    uri = f"ws://127.0.0.1:{servers['plain']}/greet/b%C3%A9a?lang=fr"
    headers = [("X-Agent", "tester")]
    key = "additional_headers"
    async with connect(uri, subprotocols=["chat.v1", "chat.v2"], **{key: headers}) as ws:
        assert ws.subprotocol == "chat.v2"
        assert json.loads(await ws.recv()) == {
            "name": "béa",
            "lang": "fr",
            "agent": "tester",
            "path": "/greet/béa",
            "offered": ["chat.v1", "chat.v2"],
        }
        await ws.send("4001 see you later")
        with pytest.raises(CLOSED) as info:
            await ws.recv()
        assert ws.closed_with(info.value) == (4001, "see you later")


async def test_denial_response(servers: dict[str, int]) -> None:
    with pytest.raises(blazews.InvalidStatus) as info:
        async with blazews.connect(f"ws://127.0.0.1:{servers['plain']}/denied"):
            pass  # pragma: no cover
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"no entry"
    with pytest.raises(websockets.InvalidStatus) as other:
        async with websockets.asyncio.client.connect(f"ws://127.0.0.1:{servers['plain']}/denied"):
            pass  # pragma: no cover
    assert other.value.response.status_code == 403


@pytest.mark.parametrize("connect", CLIENTS)
async def test_fastapi_route_and_dependency(servers: dict[str, int], connect: Connect) -> None:
    async with connect(f"ws://127.0.0.1:{servers['fastapi']}/items/7?token=secret") as ws:
        await ws.send("one")
        assert json.loads(await ws.recv()) == {"item": 7, "user": "alice", "got": "one"}
    # The dependency refuses a bad token before the handshake completes: HTTP 403.
    refused = (blazews.InvalidStatus, websockets.InvalidStatus)
    with pytest.raises(refused) as info:
        async with connect(f"ws://127.0.0.1:{servers['fastapi']}/items/7?token=nope"):
            pass  # pragma: no cover
    assert info.value.response.status_code == 403
