"""A peer that floods pings and never reads the pongs must not grow server memory.

Policy, every front end: pongs are answered in order, subject to the write side. A
Listener connection stops reading while its write buffer is above ``write_limit``, a
coroutine connection when a ping arrives while it is; a blocking connection's reader
thread writes its pongs itself, and when another thread's send is blocked, waits for
it once ``READER_BACKLOG`` chunks are queued behind it. Either way TCP pushes back on
the flooding peer: its sends stall, and what the server holds stays bounded.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import blazews
from blazews import Listener, sync
from blazews.sync.connection import READER_BACKLOG, RECV_BUFFER_SIZE
from tests.helpers import blocking_client, frame

FLOOD = 24 * 1024 * 1024  # bytes of pings offered: far more than any buffer on the way
PING = frame(0x9, b"p" * 125, mask=True)


def _flood(port: int) -> tuple[socket.socket, int]:
    """Send pings without reading, until the server stops taking them (or FLOOD)."""
    sock = blocking_client(port, rcvbuf=4096)
    sock.settimeout(0.5)
    batch = PING * 256
    sent = 0
    while sent < FLOOD:
        try:
            sock.sendall(batch)
        except TimeoutError:
            break
        sent += len(batch)
    return sock, sent


def _still_answers(port: int) -> None:
    with sync.connect(f"ws://127.0.0.1:{port}/") as conn:
        conn.send("still here")
        assert conn.recv() == "still here"


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


class _Echo(Listener):
    def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
        conn.send(payload, kind)


@asynccontextmanager
async def _asyncio_server(api: str) -> AsyncIterator[blazews.Server]:
    serving = (
        blazews.serve_listener(_Echo, "127.0.0.1", 0)
        if api == "listener"
        else blazews.serve(_echo, "127.0.0.1", 0)
    )
    async with serving as server:
        yield server


@pytest.mark.parametrize("api", ["coroutine", "listener"])
async def test_asyncio_ping_flood_is_bounded_by_the_write_limit(api: str) -> None:
    async with _asyncio_server(api) as server:
        sock, sent = await asyncio.to_thread(_flood, server.port)
        try:
            await asyncio.sleep(0.2)
            (conn,) = server.connections
            assert conn.transport is not None
            buffered = conn.transport.get_write_buffer_size()
            # write_limit (64 KiB) plus the pongs of one read: not the 24 MiB offered.
            assert buffered < 1024 * 1024, buffered
            assert sent < FLOOD
        finally:
            sock.close()
        await asyncio.to_thread(_still_answers, server.port)


@pytest.mark.parametrize("sending", [False, True], ids=["idle-handler", "handler-blocked"])
def test_blocking_ping_flood_is_bounded(sending: bool) -> None:
    started = threading.Event()

    def handler(conn: sync.ServerConnection) -> None:
        first = not started.is_set()
        started.set()
        if sending and first:
            try:
                # Blocks: the flooding peer reads nothing. The reader thread's pongs
                # queue behind this send, up to READER_BACKLOG.
                conn.send(b"x" * (16 << 20))
            except blazews.ConnectionClosed:
                return
        for message in conn:
            conn.send(message)

    with sync.serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            sock, sent = _flood(server.port)
            try:
                assert started.wait(10)
                time.sleep(0.2)
                conns = server.connections
                assert len(conns) == 1
                queued = len(next(iter(conns))._outbox)
                # The backlog, then the pongs of the one read that crossed it.
                assert queued <= READER_BACKLOG + RECV_BUFFER_SIZE // len(PING) + 1, queued
                assert sent < FLOOD
            finally:
                sock.close()
            _still_answers(server.port)
        finally:
            server.shutdown(timeout=5)
            thread.join(5)

