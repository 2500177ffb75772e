"""``async for message in conn``: the completed awaitable of a queued message, the
waiting path, and how iteration ends; on both builds (the compiled one returns the C
``Done`` type, the pure one its Python twin, with the same behaviour)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

import blazews
from blazews import ConnectionClosedError, ConnectionClosedOK
from tests.helpers import wait_queued


def _url(server: blazews.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


@contextlib.asynccontextmanager
async def _with_queued(*messages: str | bytes) -> AsyncIterator[blazews.ClientConnection]:
    """A client connection with ``messages`` from its server queued already."""

    async def handler(conn: Any) -> None:
        for message in messages:
            await conn.send(message)
        await conn.wait_closed()

    async with (
        blazews.serve(handler, "127.0.0.1", 0) as server,
        blazews.connect(_url(server)) as conn,
    ):
        await wait_queued(conn, len(messages))
        yield conn


def _completed_type() -> str:
    return "Done" if blazews.IMPLEMENTATION == "compiled" else "_Done"


async def test_a_queued_message_comes_through_a_completed_awaitable() -> None:
    async with _with_queued("text", b"binary", b"") as conn:
        it = aiter(conn)
        first = it.__anext__()
        assert type(first).__name__ == _completed_type()
        assert not inspect.iscoroutine(first)  # no coroutine object, no frame
        assert conn._queue.pending() == 2  # taken at the call: async for awaits at once
        assert await first == "text"
        with pytest.raises(RuntimeError, match="already awaited"):
            await first
        assert await it.__anext__() == b"binary"
        assert await anext(it) == b""  # an empty payload is a message, not the end
        waiting = it.__anext__()  # nothing queued: a coroutine that waits
        assert asyncio.iscoroutine(waiting)
        waiting.close()


async def test_the_awaitable_acts_as_a_coroutine_when_driven_by_hand() -> None:
    async with _with_queued("m0", "m1", "m2") as conn:
        it = aiter(conn)
        aw = it.__anext__()
        with pytest.raises(StopIteration) as stop:
            aw.send(None)
        assert stop.value.value == "m0"
        aw = it.__anext__()
        with pytest.raises(ValueError, match="thrown"):
            aw.throw(ValueError("thrown"))
        with pytest.raises(RuntimeError, match="already awaited"):
            aw.send(None)  # a throw drops the value, as it ends a coroutine
        aw = it.__anext__()
        aw.close()
        with pytest.raises(RuntimeError, match="already awaited"):
            await aw
        assert conn._queue.pending() == 0  # three taken: nothing comes back


async def test_a_task_can_be_made_of_it() -> None:
    # asyncio.create_task wants a coroutine: the completed awaitable has a
    # coroutine's methods (send, throw, close), so collections.abc.Coroutine
    # recognises it and a task runs it to its value.
    async with _with_queued("for a task") as conn:
        aw = aiter(conn).__anext__()
        assert asyncio.iscoroutine(aw)
        assert await asyncio.create_task(aw) == "for a task"


async def test_messages_arrive_in_order_across_queued_and_waiting_reads() -> None:
    async def handler(conn: Any) -> None:
        for i in range(200):
            await conn.send(i.to_bytes(2, "big") if i % 3 else str(i))
            if i % 50 == 0:
                await asyncio.sleep(0.01)  # the client waits in between
        await conn.close()

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        async with blazews.connect(_url(server)) as conn:
            got = [m async for m in conn]  # ends at the normal close
    assert got == [i.to_bytes(2, "big") if i % 3 else str(i) for i in range(200)]


async def test_large_lent_payloads_come_through_the_waiting_path() -> None:
    # Payloads of 1 MiB are lent by a grown receive buffer (views, not bytes): the
    # iterator leaves them to recv(), which copies each out and lets the buffer go.
    big = [bytes([i]) * (1 << 20) for i in range(4)]

    async def handler(conn: Any) -> None:
        for payload in big:
            await conn.send(payload)
        await conn.close()

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        async with blazews.connect(_url(server), max_message_size=None) as conn:
            await asyncio.sleep(0.2)
            got = [m async for m in conn]
    assert got == big


async def test_iteration_raises_on_a_close_with_an_error_after_the_queued_messages() -> None:
    async def handler(conn: Any) -> None:
        await conn.send("before")
        await conn.close(1011, "broken")

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        conn = await blazews.connect(_url(server))
        await asyncio.sleep(0.1)
        got = []
        with pytest.raises(ConnectionClosedError) as raised:
            async for message in conn:
                got.append(message)
        assert got == ["before"]
        assert raised.value.rcvd is not None and raised.value.rcvd.code == 1011


async def test_two_iterators_waiting_at_once_is_a_concurrency_error() -> None:
    async def handler(conn: Any) -> None:
        await conn.wait_closed()

    async with (
        blazews.serve(handler, "127.0.0.1", 0) as server,
        blazews.connect(_url(server)) as conn,
    ):
        first = asyncio.ensure_future(anext(aiter(conn)))
        await asyncio.sleep(0.05)
        with pytest.raises(blazews.ConcurrencyError):
            await anext(aiter(conn))
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first


async def test_a_normal_close_ends_the_iteration_once_the_queue_is_read() -> None:
    async def handler(conn: Any) -> None:
        await conn.send(b"last")
        await conn.close()

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        conn = await blazews.connect(_url(server))
        await conn.wait_closed()
        it = aiter(conn)
        assert await anext(it) == b"last"  # queued before the close: still read
        with pytest.raises(StopAsyncIteration):
            await anext(it)
        with pytest.raises(ConnectionClosedOK):
            await conn.recv()
