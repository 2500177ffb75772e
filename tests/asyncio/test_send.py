"""A buffer refilled as soon as ``send`` returns does not change what was sent.

uvloop keeps a reference to what it could not write at once (while the socket is
full) instead of a copy. The core sends a server's payload over 16 KiB as itself
beside its header, and a client's payload over 1 MiB is masked from the caller's
buffer as it goes out; so the asyncio front end copies such a payload first unless
it is ``bytes`` or the call waits until it is written (see ``_send.stable``). Each
test fills the socket first (the reader waits), refills one buffer between sends,
and checks every message on the other side. On uvloop they fail without the copy.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import blazews
from blazews import Listener, MessageType
from blazews.asyncio import ListenerConnection
from tests.helpers import BINARY, HeldSink, MiB, frame, raw_client, read_frame, run_on

LOOPS = ["asyncio", "uvloop"]
SIZE = 40_000  # over 16 KiB: a server sends it beside its header
COUNT = 300  # 12 MB: more than the kernel's buffers hold while nobody reads


def content(i: int, size: int = SIZE) -> bytes:
    return bytes([97 + i % 26]) * size


async def read_all_later(port: int, count: int) -> list[bytes]:
    """Connect, read nothing for a while (the server's socket fills), then read all."""
    reader, writer = await raw_client(port)
    await asyncio.sleep(0.3)
    got = [(await read_frame(reader))[1] for _ in range(count)]
    writer.close()
    return got


@pytest.mark.parametrize("loop", LOOPS)
def test_a_coroutine_server_refilling_one_buffer(loop: str) -> None:
    got: list[bytes] = []

    async def handler(conn: Any) -> None:
        buf = bytearray(SIZE)
        for i in range(COUNT):
            buf[:] = content(i)
            await conn.send(buf)
        await conn.send(memoryview(buf)[:1000])  # small: in the frame, as ever
        await conn.wait_closed()

    async def main() -> None:
        async with blazews.serve(handler, "127.0.0.1", 0, compression=None) as server:
            got.extend(await read_all_later(server.port, COUNT + 1))

    run_on(loop, main)
    assert got[:COUNT] == [content(i) for i in range(COUNT)]
    assert got[COUNT] == content(COUNT - 1, 1000)


class Burst(Listener):
    """Sends COUNT messages from one buffer, refilled between sends, on connect."""

    def on_connect(self, conn: ListenerConnection) -> None:
        buf = bytearray(SIZE)
        for i in range(COUNT):
            buf[:] = content(i)
            conn.send(buf)


class Echo(Listener):
    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        conn.send(payload, kind)  # borrowed: the receive buffer is read into again


@pytest.mark.parametrize("loop", LOOPS)
def test_a_listener_server_refilling_one_buffer(loop: str) -> None:
    got: list[bytes] = []

    async def main() -> None:
        async with blazews.serve_listener(Burst, "127.0.0.1", 0, compression=None) as server:
            got.extend(await read_all_later(server.port, COUNT))

    run_on(loop, main)
    assert got == [content(i) for i in range(COUNT)]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_listener_server_echoing_large_borrowed_payloads(loop: str) -> None:
    got: list[bytes] = []

    async def main() -> None:
        async with blazews.serve_listener(Echo, "127.0.0.1", 0, compression=None) as server:
            reader, writer = await raw_client(server.port)
            for i in range(COUNT):
                writer.write(frame(BINARY, content(i), mask=True))
            await asyncio.sleep(0.3)  # the echoes fill the server's socket
            got.extend([(await read_frame(reader))[1] for _ in range(COUNT)])
            writer.close()

    run_on(loop, main)
    assert got == [content(i) for i in range(COUNT)]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_listener_client_refilling_a_large_buffer(loop: str) -> None:
    sink = HeldSink()
    size = 8 * MiB + 3  # masked later, and more than the socket takes at once

    async def main() -> None:
        url = f"ws://127.0.0.1:{sink.server.port}/"
        conn, _ = await blazews.connect_listener(Listener, url, compression=None)
        buf = bytearray(size)
        for i in range(3):
            buf[:] = content(i, size)
            conn.send(buf)  # returns at once, long before the frame is written
        sink.release()
        while conn.transport.get_write_buffer_size() or conn.protocol.data_to_send():  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    frames = sink.frames()
    assert [(f.opcode, f.masked) for f in frames] == [(BINARY, True)] * 3
    assert [f.payload == content(i, size) for i, f in enumerate(frames)] == [True] * 3


def test_bytes_are_never_copied() -> None:
    from blazews.asyncio._send import stable

    data = os.urandom(SIZE)
    assert stable(data, 1) is data
    assert stable(memoryview(data), 1) is data
    view = memoryview(data)[5:]
    kept = stable(view, 1)  # bytes underneath cannot change: a view, of its own
    view.release()
    assert kept == data[5:] and kept.obj is data
    small = bytearray(100)
    assert stable(small, 101) is small  # the core copies it into the frame
    big = bytearray(b"x" * 200)
    copy = stable(big, 101)
    assert type(copy) is bytes and copy == big
    strided = memoryview(bytearray(range(200)))[::2]
    assert stable(strided, 50) == bytes(range(0, 200, 2))
