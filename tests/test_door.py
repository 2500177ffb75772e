"""At the server's door: what is refused before a connection opens, and how fast.

Bytes that cannot start an HTTP request get a 400 at once, not after the open
timeout; ``origins=`` refuses a browser page of another origin with 403. Every server
front end: asyncio, Listener and blocking.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

import blazews
from blazews import InvalidStatus, Listener, ServerOptions, sync

FRONT_ENDS = ["asyncio", "listener", "sync"]


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


def _sync_echo(conn: Any) -> None:
    for message in conn:
        conn.send(message)


@contextmanager
def _sync_server(**options: Any) -> Iterator[int]:
    with sync.serve(_sync_echo, "127.0.0.1", 0, **options) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.port
        finally:
            server.shutdown()
            thread.join(5)


@asynccontextmanager
async def _server(front_end: str, **options: Any) -> AsyncIterator[int]:
    if front_end == "sync":
        with _sync_server(**options) as port:
            yield port
        return
    if front_end == "listener":
        serving = blazews.serve_listener(Listener, "127.0.0.1", 0, **options)
    else:
        serving = blazews.serve(_echo, "127.0.0.1", 0, **options)
    async with serving as server:
        yield server.port


def _answer(port: int, data: bytes) -> tuple[bytes, float]:
    """Send ``data`` and read the server's answer to the end, timed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer, time.monotonic() - started


GARBAGE = {
    "tls-client-hello": bytes.fromhex("160301020001000001fc0303") + bytes(32),
    "binary": b"\x00\xff\xfe garbage",
    "leading-space": b" GET / HTTP/1.1\r\n",
}


@pytest.mark.parametrize("front_end", FRONT_ENDS)
@pytest.mark.parametrize("name", list(GARBAGE))
async def test_bytes_that_cannot_start_a_request_get_400_at_once(front_end: str, name: str) -> None:
    async with _server(front_end, open_timeout=10) as port:
        answer, took = await asyncio.to_thread(_answer, port, GARBAGE[name])
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:60]
    assert took < 2  # not the 10 s open timeout


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_a_request_arriving_byte_by_byte_is_not_refused(front_end: str) -> None:
    # The early check looks at a method still arriving: it must accept any prefix.
    async with _server(front_end) as port:

        def slow_client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                request = (
                    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n"
                )
                for i in range(len(request)):
                    sock.send(request[i : i + 1])
                    if i < 6:
                        time.sleep(0.01)  # the method's bytes, each its own read
                return sock.recv(12)

        assert await asyncio.to_thread(slow_client) == b"HTTP/1.1 101"


ALLOWED = ["https://app.example", None]


async def _open(front_end: str, port: int, origin: str | None) -> str:
    """Connect with that Origin (or none); return the echo, or raise InvalidStatus."""
    url = f"ws://127.0.0.1:{port}/"
    if front_end == "listener":  # the server echoes nothing: the handshake says it all
        conn = await blazews.connect(url, origin=origin)
        await conn.close()
        return "opened"
    async with blazews.connect(url, origin=origin) as conn:
        await conn.send("hi")
        return str(await conn.recv())


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_origins_allow_listed_origins_and_refuse_others_with_403(front_end: str) -> None:
    async with _server(front_end, origins=ALLOWED) as port:
        assert await _open(front_end, port, "https://app.example") in ("hi", "opened")
        assert await _open(front_end, port, None) in ("hi", "opened")  # None: no header
        for origin in ["https://evil.example", "https://app.example.evil", "http://app.example"]:
            with pytest.raises(InvalidStatus) as info:
                await _open(front_end, port, origin)
            assert info.value.response.status_code == 403
            assert b"is not allowed" in info.value.response.body


async def test_without_none_a_request_with_no_origin_is_refused() -> None:
    async with _server("asyncio", origins=["https://app.example"]) as port:
        with pytest.raises(InvalidStatus) as info:
            await _open("asyncio", port, None)
        assert info.value.response.status_code == 403
        assert b"no Origin header" in info.value.response.body


def test_origins_must_be_strings_or_none() -> None:
    with pytest.raises(TypeError, match="origins must be a collection of str or None"):
        ServerOptions(origins="https://app.example")
    with pytest.raises(TypeError, match="origins must be a collection of str or None"):
        ServerOptions(origins=[b"https://app.example"])  # type: ignore[list-item]
    assert ServerOptions(origins=ALLOWED).protocol_options()["origins"] == frozenset(ALLOWED)
