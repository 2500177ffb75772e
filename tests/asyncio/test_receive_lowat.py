"""SO_RCVLOWAT while a large frame arrives (asyncio front ends, plain TCP on Linux).

The receive path asks the kernel to wake the loop only once the rest of a large
frame is there. The mark must never ask for more than the peer owes: the tests split
large messages at awkward places, pause between the pieces and wait for the echo,
on the default loop and on uvloop, with a coroutine handler and with a Listener. A
stall would show as a timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Any

import pytest

import blazews
from blazews.asyncio import _receive as receive_module
from blazews.sansio.protocol import Protocol, Side
from tests.helpers import (
    BINARY,
    CLOSE,
    TEXT,
    KiB,
    MiB,
    close_payload,
    frame,
    raw_client,
    read_frame,
    run_on,
)
from tests.helpers import echo_handler as echo

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_RCVLOWAT is used on Linux only")

LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def lowat(conn: Any) -> int:
    sock = conn.transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))


class EchoListener(blazews.Listener):
    def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
        conn.send(bytes(payload), kind)


async def serve(api: str) -> Any:
    if api == "listener":
        return await blazews.serve_listener(EchoListener, "127.0.0.1", 0, max_message_size=4 * MiB)
    return await blazews.serve(echo, "127.0.0.1", 0, max_message_size=4 * MiB)


SPLITS = [
    # (payload size, where the first write ends, counted in frame bytes)
    (MiB, 2),  # inside the header
    (MiB, 14),  # the header alone
    (MiB, 14 + 70 * KiB),
    (MiB, 14 + MiB - 1),  # all but the last byte
    (200 * KiB, 14 + 100 * KiB),
    (3 * MiB, 14 + 5),  # beyond the mark's cap
]


@LOOPS
@pytest.mark.parametrize("api", ["coroutine", "listener"])
@pytest.mark.parametrize(("size", "split"), SPLITS, ids=[f"{s}@{p}" for s, p in SPLITS])
def test_a_large_frame_written_in_two_pieces_is_echoed(
    loop: str, api: str, size: int, split: int
) -> None:
    async def main() -> None:
        server = await serve(api)
        try:
            reader, writer = await raw_client(server.port)
            payload = os.urandom(size)
            data = frame(BINARY, payload, mask=True)
            writer.write(data[:split])
            await asyncio.sleep(0.1)  # read and parsed: the mark is set
            writer.write(data[split:])  # exactly what the frame still owes
            assert await read_frame(reader) == (BINARY, payload)
            # A small message right after: the mark went back down.
            writer.write(frame(TEXT, b"next", mask=True))
            assert await read_frame(reader) == (TEXT, b"next")
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    run_on(loop, main)


@LOOPS
def test_the_mark_follows_the_frame_then_goes_back_to_one(loop: str) -> None:
    async def main() -> None:
        conns: list[Any] = []
        got: list[bytes] = []

        async def handler(conn: Any) -> None:
            conns.append(conn)
            async for message in conn:
                got.append(message)
                await conn.send(b"ok")

        async with blazews.serve(handler, "127.0.0.1", 0, max_message_size=4 * MiB) as server:
            reader, writer = await raw_client(server.port)
            payload = os.urandom(2 * MiB)
            data = frame(BINARY, payload, mask=True)
            writer.write(data[: 14 + 100 * KiB])
            marks = []
            for _ in range(200):
                await asyncio.sleep(0.01)
                if conns and lowat(conns[0]) > 1:
                    break
            (conn,) = conns
            marks.append(lowat(conn))
            assert receive_module._LOWAT_MIN <= marks[0] <= receive_module._LOWAT_MAX
            writer.write(data[14 + 100 * KiB :])
            assert await read_frame(reader) == (BINARY, b"ok")
            assert got == [payload]
            assert lowat(conn) == 1
            # Small messages never touch it.
            for i in range(3):
                writer.write(frame(BINARY, b"%d" % i, mask=True))
                assert await read_frame(reader) == (BINARY, b"ok")
                assert lowat(conn) == 1
            writer.close()

    run_on(loop, main)


@LOOPS
def test_eof_in_the_middle_of_a_large_frame_still_closes(loop: str) -> None:
    async def main() -> None:
        conns: list[Any] = []
        closed = asyncio.Event()

        async def handler(conn: Any) -> None:
            conns.append(conn)
            try:
                await conn.read_message()
            except blazews.ConnectionClosed:
                closed.set()

        async with blazews.serve(handler, "127.0.0.1", 0, max_message_size=4 * MiB) as server:
            _reader, writer = await raw_client(server.port)
            data = frame(BINARY, os.urandom(MiB), mask=True)
            writer.write(data[: 14 + 200 * KiB])
            for _ in range(200):
                await asyncio.sleep(0.01)
                if conns and lowat(conns[0]) > 1:
                    break
            assert lowat(conns[0]) > 1
            writer.close()  # FIN while the mark waits for 800 KiB more
            await asyncio.wait_for(closed.wait(), 5)
            assert conns[0].close_code == 1006

    run_on(loop, main)


@LOOPS
def test_a_close_frame_after_a_large_frame_is_answered(loop: str) -> None:
    async def main() -> None:
        got: list[bytes] = []

        async def handler(conn: Any) -> None:
            async for message in conn:
                got.append(message)

        async with blazews.serve(handler, "127.0.0.1", 0, max_message_size=4 * MiB) as server:
            reader, writer = await raw_client(server.port)
            payload = os.urandom(MiB)
            data = frame(BINARY, payload, mask=True)
            writer.write(data[:300_000])
            await asyncio.sleep(0.05)
            writer.write(data[300_000:] + frame(CLOSE, close_payload(1000), mask=True))
            assert await read_frame(reader) == (CLOSE, close_payload(1000))
            writer.close()
        assert got == [payload]

    run_on(loop, main)


def test_bytes_missing_counts_what_the_caller_and_the_core_hold() -> None:
    proto = Protocol(Side.SERVER)
    data = frame(BINARY, bytes(100_000), mask=True)  # 8-byte header: 2 + 2 + 4
    assert proto.bytes_missing(0) == 0
    buf = bytearray(data[:30_000])
    used = proto.receive_into_buffer(buf, 0, len(buf))
    assert used == 0 and proto.incomplete_frame_size == len(data)
    assert proto.bytes_missing(len(buf) - used) == len(data) - 30_000
    # Bytes the core holds itself (received through receive_data) count too.
    held = Protocol(Side.SERVER)
    held.receive_data(data[:30_000])
    more = bytearray(data[30_000:50_000])
    assert held.receive_into_buffer(more, 0, len(more)) == len(more)
    assert held.bytes_missing(0) == len(data) - 50_000
    # Nothing incomplete, or nothing more parsed: nothing missing.
    rest = bytearray(data[50_000:])
    held.receive_into_buffer(rest, 0, len(rest))
    assert held.events_received() and held.bytes_missing(0) == 0
    proto.fail(1011)
    assert proto.bytes_missing(0) == 0


class _Transport(asyncio.Transport):
    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__(extra)


def test_only_plain_tcp_sockets_get_the_mark() -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        cases = [
            ({"socket": tcp}, True),
            ({"socket": tcp, "sslcontext": object()}, False),
            ({"socket": tcp, "ssl_object": object()}, False),
            ({"socket": unix}, False),
            ({}, False),
        ]
        for extra, expected in cases:
            buffer = receive_module.ReceiveBuffer(None, None, None, 0)
            buffer._watch_socket(_Transport(extra))
            assert (buffer._lowat_sock is not None) is expected, extra
    finally:
        tcp.close()
        unix.close()
