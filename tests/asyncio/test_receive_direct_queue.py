"""Large payloads read by the loop straight into the bytes object they become.

With no ``read_message_into`` call waiting, a coroutine-API connection has the loop
read a payload that still misses 64 KiB or more into a new ``bytes`` object, unmasks
it there and queues it: ``recv()`` and ``async for`` hand out that object, the
payload copied once (not read into a grown receive buffer, unmasked, then copied
out). The tests check the bytes and their order, that the direct path was taken (by
counting), and what must hold around it: the size limit (1009), EOF halfway (1006).
(Text validated, 1007, and a client's unmasked payloads: in test_receive_direct, for
both ways of reading.)
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import pytest

import blazews
from tests.asyncio.test_receive_direct import LOOPS, Server, directs, pieces
from tests.helpers import BINARY, CLOSE, TEXT, KiB, MiB, frame, read_frame, run_on

__all__ = ["directs"]  # (the fixture, shared with test_receive_direct)


@LOOPS
@pytest.mark.parametrize(
    ("size", "cuts"),
    [
        (MiB, [14]),
        (MiB, [2, 9, 14 + 1]),  # the header itself in pieces
        (70 * KiB, [8 + 3 * KiB]),
        (5 * MiB, [14 + 100 * KiB, 14 + 3 * MiB]),
    ],
)
def test_a_large_payload_becomes_its_bytes_object_and_is_queued(
    loop: str, size: int, cuts: list[int], directs: list[int]
) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            payload = os.urandom(size)
            await pieces(writer, frame(BINARY, payload, mask=True), cuts)
            got = await conn.recv()
            assert type(got) is bytes
            assert got == payload
            assert directs == [size]
            assert conn._rx._direct is None
            writer.write(frame(TEXT, b"small", mask=True))  # the usual path after it
            assert await conn.recv() == "small"
            assert directs == [size]
            writer.close()

    run_on(loop, main)


@LOOPS
def test_async_for_gets_a_stream_of_large_and_small_messages_in_order(
    loop: str, directs: list[int]
) -> None:
    sizes = [MiB, 10, 200 * KiB, 3 * MiB, 0, 300 * KiB, 64 * KiB + 100]

    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            payloads = [os.urandom(size) for size in sizes]

            async def read_all() -> list[Any]:
                got = []
                async for message in conn:
                    got.append(message)
                    if len(got) == len(sizes):
                        return got
                return got

            reading = asyncio.ensure_future(read_all())
            await asyncio.sleep(0.02)
            writer.write(b"".join(frame(BINARY, p, mask=True) for p in payloads))
            assert await asyncio.wait_for(reading, 10) == payloads
            # Those still missing 64 KiB after the read that brought their header.
            assert set(directs) <= {MiB, 200 * KiB, 3 * MiB, 300 * KiB}
            assert MiB in directs and 3 * MiB in directs
            writer.close()

    run_on(loop, main)


@LOOPS
def test_a_payload_over_the_limit_is_refused_with_1009_not_read(
    loop: str, directs: list[int]
) -> None:
    async def main() -> None:
        async with Server() as (reader, writer, conn):  # max_message_size 8 MiB
            writer.write(frame(BINARY, bytes(9 * MiB), mask=True)[: 200 * KiB])
            with pytest.raises(blazews.ConnectionClosedError):
                await conn.recv()
            opcode, close = await read_frame(reader)
            assert (opcode, close[:2]) == (CLOSE, struct.pack("!H", 1009))
            assert directs == []
            writer.close()

    run_on(loop, main)


@LOOPS
def test_eof_halfway_closes_with_1006_and_queues_nothing(loop: str, directs: list[int]) -> None:
    async def main() -> None:
        async with Server() as (_reader, writer, conn):
            writer.write(frame(BINARY, os.urandom(MiB), mask=True)[: 200 * KiB])
            await asyncio.sleep(0.1)
            assert conn._rx._direct is not None
            writer.close()
            with pytest.raises(blazews.ConnectionClosedError):
                await conn.recv()
            assert conn.close_code == 1006
            assert directs == [MiB]

    run_on(loop, main)
