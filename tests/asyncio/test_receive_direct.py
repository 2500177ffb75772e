"""Large payloads read by the loop straight into a waiting read_message_into buffer.

When a ``read_message_into`` call waits and the next message is one frame whose
payload still misses 64 KiB or more, the receive path copies what it has of it into
the caller's buffer and the loop reads the rest there; it is unmasked in place. The
tests check the bytes, that the direct path was taken (by counting), and what must
hold around it: a text payload is validated, a reader cancelled halfway loses
nothing, a buffer too small is left alone, EOF halfway closes with 1006.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import pytest

import blazews
from blazews import BufferTooSmall, MessageType
from blazews.asyncio import _receive as receive_module
from blazews.sansio.protocol import Protocol, Side
from tests.helpers import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    KiB,
    MiB,
    frame,
    raw_client,
    read_frame,
    run_on,
)

LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


@pytest.fixture
def directs(monkeypatch: Any) -> list[int]:
    """The payload lengths of the frames that took the direct path."""
    seen: list[int] = []
    original = receive_module.ReceiveBuffer._begin_direct

    def counting(self: Any, buf: Any, start: int, end: int) -> bool:
        taken = original(self, buf, start, end)
        if taken:
            seen.append(self._direct.length)
        return taken

    monkeypatch.setattr(receive_module.ReceiveBuffer, "_begin_direct", counting)
    return seen


class Server:
    """A blazews server whose handler waits while the test drives its connection:
    ``async with Server() as (reader, writer, conn)`` gives a raw client's stream and
    the server side's connection."""

    def __init__(self) -> None:
        self.server: Any = None

    async def __aenter__(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
        connected: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done = asyncio.Event()
        self._done = done

        async def handler(conn: Any) -> None:
            connected.set_result(conn)
            await done.wait()

        self.server = await blazews.serve(handler, "127.0.0.1", 0, max_message_size=8 * MiB)
        reader, writer = await raw_client(self.server.port)
        return reader, writer, await connected

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        self.server.close()
        await self.server.wait_closed()


async def waiting_read(conn: Any, buf: Any, settle: float = 0.02) -> asyncio.Future[Any]:
    """Start ``conn.read_message_into(buf)`` and let it wait for a message."""
    read = asyncio.ensure_future(conn.read_message_into(buf))
    await asyncio.sleep(settle)
    return read


async def pieces(writer: asyncio.StreamWriter, data: bytes, cuts: list[int]) -> None:
    """Write ``data`` cut at ``cuts``, pausing between the pieces."""
    last = 0
    for cut in [*cuts, len(data)]:
        writer.write(data[last:cut])
        await writer.drain()
        await asyncio.sleep(0.02)
        last = cut


@LOOPS
@pytest.mark.parametrize(
    ("size", "cuts"),
    [
        (MiB, [14]),
        (MiB, [14 + 10 * KiB, 14 + 500 * KiB]),
        (MiB, [2, 9, 14 + 1]),  # the header itself in pieces
        (70 * KiB, [8 + 3 * KiB]),
        (5 * MiB, [14 + 100 * KiB]),
    ],
)
def test_a_waiting_reader_gets_a_large_payload_read_into_its_buffer(
    loop: str, size: int, cuts: list[int], directs: list[int]
) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            buf = bytearray(size + 7)
            read = await waiting_read(conn, buf)
            payload = os.urandom(size)
            await pieces(writer, frame(BINARY, payload, mask=True), cuts)
            assert await read == (MessageType.BINARY, size)
            assert buf[:size] == payload
            assert directs == [size]
            # What follows takes the usual path.
            writer.write(frame(TEXT, b"small", mask=True))
            assert await conn.recv() == "small"
            assert conn._rx._direct is None
            writer.close()

    run_on(loop, main)


@LOOPS
def test_a_reader_coming_while_the_frame_arrives_gets_the_rest_directly(
    loop: str, directs: list[int]
) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            payload = os.urandom(2 * MiB)
            data = frame(BINARY, payload, mask=True)
            writer.write(data[: 400 * KiB])
            await asyncio.sleep(0.1)  # in a grown receive buffer by now
            buf = bytearray(2 * MiB)
            read = await waiting_read(conn, buf, 0.05)
            writer.write(data[400 * KiB :])
            assert await read == (MessageType.BINARY, 2 * MiB)
            assert buf == payload
            assert directs == [2 * MiB]
            writer.close()

    run_on(loop, main)


@LOOPS
def test_a_reader_that_keeps_reading_gets_every_frame_of_a_stream_directly(
    loop: str, directs: list[int]
) -> None:
    # Written in one go, the frames arrive back to back. Reading pauses for a turn of
    # the loop after each direct payload, so the next one is not read (uvloop would
    # read on) into a receive buffer before the reader comes back for it. (Each frame
    # is large enough to miss 64 KiB still after a first read of up to 80 KiB.)
    sizes = [MiB, 200 * KiB, MiB, 300 * KiB, 3 * MiB, MiB]

    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            payloads = [os.urandom(size) for size in sizes]

            async def read_all() -> list[bytes]:  # as a handler reads: one await each
                buf = bytearray(4 * MiB)
                got = []
                for _ in sizes:
                    _kind, n = await conn.read_message_into(buf)
                    got.append(bytes(buf[:n]))
                return got

            reading = asyncio.ensure_future(read_all())
            await asyncio.sleep(0.02)
            writer.write(b"".join(frame(BINARY, p, mask=True) for p in payloads))
            assert await reading == payloads
            assert directs == sizes
            writer.close()

    run_on(loop, main)


@LOOPS
def test_reading_resumes_after_a_direct_payload_if_the_reader_does_not_come_back(
    loop: str, directs: list[int]
) -> None:
    async def main() -> None:
        async with Server() as (reader, writer, conn):
            payload = os.urandom(MiB)
            buf = bytearray(MiB)
            read = await waiting_read(conn, buf)
            ping = frame(PING, b"still there?", mask=True)
            writer.write(frame(BINARY, payload, mask=True) + ping)
            assert await read == (MessageType.BINARY, MiB)
            assert directs == [MiB]
            # Nobody reads now; the ping after the payload is answered all the same.
            assert await asyncio.wait_for(read_frame(reader), 5) == (PONG, b"still there?")
            writer.write(frame(BINARY, b"later", mask=True))
            assert await conn.read_message() == (MessageType.BINARY, b"later")
            writer.close()

    run_on(loop, main)


@LOOPS
@pytest.mark.parametrize("into", [True, False], ids=["read_message_into", "recv"])
def test_text_is_validated_and_invalid_utf8_closes_1007(
    loop: str, into: bool, directs: list[int]
) -> None:
    # Into a waiting read_message_into buffer, or into the bytes object recv returns.
    async def main() -> None:
        async with Server() as (reader, writer, conn):
            text = "é" * (100 * KiB)
            buf = bytearray(MiB)
            read = await waiting_read(conn, buf) if into else None
            await pieces(writer, frame(TEXT, text.encode(), mask=True), [14])
            if read is not None:
                assert await read == (MessageType.TEXT, len(text.encode()))
                assert buf[: len(text.encode())].decode() == text
            else:
                assert await conn.recv() == text
            bad = b"a" * (100 * KiB) + b"\xff"
            read = await waiting_read(conn, buf) if into else None
            await pieces(writer, frame(TEXT, bad, mask=True), [14])
            with pytest.raises(blazews.ConnectionClosedError):
                await (read if read is not None else conn.recv())
            error = conn.protocol.protocol_error
            assert error is not None and error.close_code == 1007
            opcode, close = await read_frame(reader)
            assert (opcode, close[:2]) == (CLOSE, struct.pack("!H", 1007))
            assert directs == [len(text.encode()), len(bad)]
            writer.close()

    run_on(loop, main)


@LOOPS
def test_a_reader_cancelled_halfway_loses_nothing(loop: str, directs: list[int]) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            payload = os.urandom(MiB)
            data = frame(BINARY, payload, mask=True)
            buf = bytearray(MiB)
            read = await waiting_read(conn, buf)
            writer.write(data[: 300 * KiB])
            await asyncio.sleep(0.1)
            assert conn._rx._direct is not None
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            assert conn._rx._direct is None
            writer.write(data[300 * KiB :] + frame(BINARY, b"after", mask=True))
            assert await conn.read_message() == (MessageType.BINARY, payload)
            assert await conn.read_message() == (MessageType.BINARY, b"after")
            assert directs == [MiB]
            writer.close()

    run_on(loop, main)


@LOOPS
def test_a_buffer_too_small_is_left_alone(loop: str, directs: list[int]) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            payload = os.urandom(MiB)
            small = bytearray(MiB - 1)
            read = await waiting_read(conn, small)
            await pieces(writer, frame(BINARY, payload, mask=True), [14])
            with pytest.raises(BufferTooSmall):
                await read
            big = bytearray(MiB)
            assert await conn.read_message_into(big) == (MessageType.BINARY, MiB)
            assert big == payload
            assert directs == []
            writer.close()

    run_on(loop, main)


@LOOPS
def test_eof_halfway_closes_with_1006(loop: str, directs: list[int]) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            buf = bytearray(MiB)
            read = await waiting_read(conn, buf)
            writer.write(frame(BINARY, os.urandom(MiB), mask=True)[: 200 * KiB])
            await asyncio.sleep(0.1)
            writer.close()
            with pytest.raises(blazews.ConnectionClosedError):
                await read
            assert conn.close_code == 1006
            assert directs == [MiB]

    run_on(loop, main)


@LOOPS
@pytest.mark.parametrize("into", [True, False], ids=["read_message_into", "read_message"])
def test_a_client_reads_an_unmasked_payload_directly(
    loop: str, into: bool, directs: list[int]
) -> None:
    # Into a waiting read_message_into buffer, or (with no such call waiting) into
    # the bytes object read_message returns (see test_receive_direct_queue).
    async def main() -> None:
        payload = os.urandom(3 * MiB)

        async def handler(conn: Any) -> None:
            await conn.recv()
            await conn.send(payload)
            await conn.wait_closed()

        async with blazews.serve(handler, "127.0.0.1", 0, compression=None) as server:
            url = f"ws://127.0.0.1:{server.port}"
            async with blazews.connect(url, max_message_size=4 * MiB, compression=None) as conn:
                if into:
                    buf = bytearray(4 * MiB)
                    read = await waiting_read(conn, buf)
                    await conn.send(b"go")
                    assert await read == (MessageType.BINARY, 3 * MiB)
                    assert buf[: 3 * MiB] == payload
                else:
                    await conn.send(b"go")
                    assert await conn.read_message() == (MessageType.BINARY, payload)
        assert directs and directs[-1] == 3 * MiB

    run_on(loop, main)


def test_direct_frame_finds_only_whole_messages_still_arriving() -> None:
    server = Protocol(Side.SERVER, max_message_size=MiB)
    big = frame(BINARY, bytes(200_000), mask=True)
    assert server.direct_frame(big, 0, 1000) == (BINARY, 14, 200_000)
    assert server.direct_frame(big, 0, 13) is None  # header incomplete
    assert server.direct_frame(big, 0, len(big)) is None  # all there
    assert server.direct_frame(frame(BINARY, bytes(2 * MiB), mask=True), 0, 100) is None
    unmasked = frame(BINARY, bytes(200_000))
    assert server.direct_frame(unmasked, 0, 100) is None  # the core fails it instead
    fragment = frame(BINARY, bytes(200_000), fin=False, mask=True)
    assert server.direct_frame(fragment, 0, 100) is None
    rsv = frame(BINARY, bytes(200_000), rsv=0x40, mask=True)
    assert server.direct_frame(rsv, 0, 100) is None
    client = Protocol(Side.CLIENT)
    assert client.direct_frame(unmasked, 0, 100) == (BINARY, 10, 200_000)
    assert client.direct_frame(big, 0, 100) is None
    medium = frame(TEXT, bytes(60_000), mask=True)
    assert server.direct_frame(medium, 0, 100) == (TEXT, 8, 60_000)
    assert struct.unpack("!H", medium[2:4])[0] == 60_000
    unlimited = Protocol(Side.CLIENT, max_message_size=None)
    huge = bytes([0x82, 127]) + (1 << 63).to_bytes(8, "big")
    assert unlimited.direct_frame(huge + bytes(100), 0, 110) is None  # refused by the core
    server.fail(1011)
    assert server.direct_frame(big, 0, 1000) is None
