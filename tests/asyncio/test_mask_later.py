"""The asyncio client sends large messages masked a piece at a time (``MaskLater``).

Its outbox (``blazews.asyncio._send``) masks a frame the core handed over unmasked
through a pooled 1 MiB buffer, a piece per write as the transport drains. The tests
check what the outbox must keep: no frame between the bytes of another, a cancelled
send that still goes out whole and lets go of the caller's buffer, an error when the
peer goes first, and no masked copy of a large message. (The pieces themselves:
tests/sansio/test_mask_later.py.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tracemalloc

import pytest

import blazews
from blazews import IMPLEMENTATION, ConnectionClosed
from tests.helpers import BINARY, PING, TEXT, HeldSink, MiB, RawServer, run_on

# -- the asyncio client: an outbox pumped as the transport drains ---------------------


async def stuck_send(conn: blazews.ClientConnection, payload: object) -> asyncio.Task[None]:
    """Start sending ``payload`` to a sink that does not read; check that it waits."""
    task = asyncio.ensure_future(conn.send(payload))
    await asyncio.sleep(0.1)
    assert not task.done()  # more than the kernel's buffers hold: the pump waits
    return task


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_asyncio_client_holds_other_frames_behind_a_large_one(loop: str) -> None:
    sink = HeldSink()
    payload = os.urandom(24 * MiB + 5)
    mutable = bytearray(os.urandom(3 * MiB))

    async def main() -> None:
        url = f"ws://127.0.0.1:{sink.server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        big = await stuck_send(conn, payload)
        # Sent meanwhile: they wait in order behind the large frame, none comes between.
        small = asyncio.ensure_future(conn.send("after"))
        await asyncio.sleep(0)  # (the task's first step: its frame is held)
        pong = await conn.ping(b"p")
        await asyncio.sleep(0.05)
        assert not small.done()
        sink.release()
        await asyncio.gather(big, small)
        await conn.send(mutable)
        mutable.extend(b"!")  # the send is over: nothing holds the buffer
        assert not pong.done()  # (the sink never answers)
        conn.transport.write_eof()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    frames = sink.frames()
    assert [(f.opcode, f.masked, f.fin) for f in frames] == [
        (BINARY, True, True),
        (TEXT, True, True),
        (PING, True, True),
        (BINARY, True, True),
    ]
    assert frames[0].payload == payload
    assert (frames[1].payload, frames[2].payload) == (b"after", b"p")
    assert frames[3].payload == mutable[:-1]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_cancelled_large_send_still_goes_out_whole_and_lets_go_of_the_buffer(
    loop: str,
) -> None:
    sink = HeldSink()
    mutable = bytearray(os.urandom(24 * MiB))
    original = bytes(mutable)

    async def main() -> None:
        url = f"ws://127.0.0.1:{sink.server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        task = await stuck_send(conn, mutable)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # What was still to go was copied: the caller's buffer is free to change.
        mutable[:] = bytes(len(mutable))
        mutable.extend(b"resized")
        sink.release()
        await conn.send(b"after")
        conn.transport.write_eof()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    frames = sink.frames()
    assert [f.payload for f in frames] == [original, b"after"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_large_send_cut_short_by_the_peer_raises(loop: str) -> None:
    def reset_after_a_while(sock: socket.socket) -> None:
        sock.recv(1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = RawServer(reset_after_a_while)  # closes with a reset, unread data behind

    async def main() -> None:
        url = f"ws://127.0.0.1:{server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        with pytest.raises(ConnectionClosed):
            await conn.send(os.urandom(24 * MiB))
        with pytest.raises(ConnectionClosed):
            await conn.send(b"later")
        await conn.wait_closed()

    run_on(loop, main)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_asyncio_client_sends_a_large_message_without_a_copy_of_it(loop: str) -> None:
    buf = bytearray(MiB)
    count = [0]

    def sink(sock: socket.socket) -> None:
        while n := sock.recv_into(buf):
            count[0] += n

    server = RawServer(sink)
    payload = os.urandom(16 * MiB)
    peaks: list[int] = []

    async def main() -> None:
        url = f"ws://127.0.0.1:{server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        tracemalloc.start()
        try:
            await conn.send(payload)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        conn.transport.write_eof()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    server.thread.join(10)
    assert count[0] == 14 + 16 * MiB
    # A piece or a few (those a transport holds on to), not a 16 MiB masked copy.
    assert peaks[0] < (4 * MiB if IMPLEMENTATION == "compiled" else 8 * MiB), peaks
