"""asyncio ``recv(timeout=)`` and ``read_message(timeout=)``, as the blocking API has."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import blazews
from blazews import MessageType
from blazews.exceptions import ConnectionClosedOK


async def test_recv_and_read_message_time_out_and_lose_nothing() -> None:
    release = asyncio.Event()

    async def late(conn: Any) -> None:
        await release.wait()
        await conn.send("late")
        await conn.send(b"later")
        await conn.wait_closed()

    async with blazews.serve(late, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with blazews.connect(url, proxy=None) as conn:
            with pytest.raises(TimeoutError):
                await conn.recv(timeout=0.05)
            with pytest.raises(TimeoutError):
                await conn.read_message(timeout=0)
            release.set()
            # The messages that come after a timeout are kept for the next calls.
            assert await conn.recv(timeout=20) == "late"
            assert await conn.read_message(timeout=20) == (MessageType.BINARY, b"later")
            # A second waiter is still refused while one waits with a timeout.
            waiting = asyncio.ensure_future(conn.recv(timeout=20))
            await asyncio.sleep(0)
            with pytest.raises(blazews.ConcurrencyError):
                await conn.recv(timeout=1)
            await conn.close()
            with pytest.raises(ConnectionClosedOK):
                await waiting
            with pytest.raises(ConnectionClosedOK):  # closed beats the timeout
                await conn.recv(timeout=0)


async def test_a_queued_message_returns_even_with_a_zero_timeout() -> None:
    async def hello(conn: Any) -> None:
        await conn.send("one")
        await conn.send("two")
        await conn.wait_closed()

    async with blazews.serve(hello, "127.0.0.1", 0) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as conn:
            assert await conn.recv(timeout=20) == "one"
            while True:  # "two" is queued once it has arrived: no wait then
                try:
                    assert await conn.recv(timeout=0) == "two"
                    break
                except TimeoutError:
                    await asyncio.sleep(0.01)
            with pytest.raises(TimeoutError):
                await conn.recv(timeout=0.01)
