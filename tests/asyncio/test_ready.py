"""``recv()``, ``read_message()`` and ``read_message_into()`` with a message queued at
the call: the compiled build returns a ready read (the C type ``Ready``), the pure one
the waiting coroutine. Both must behave as a coroutine does: the message is taken at
the first step, never at the call, so a read dropped, or cancelled before it ran,
loses nothing; a read whose message another reader took waits for the next one."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

import blazews
from blazews import BufferTooSmall, MessageType
from tests.helpers import wait_queued

COMPILED = blazews.IMPLEMENTATION == "compiled"


@contextlib.asynccontextmanager
async def _echo() -> AsyncIterator[blazews.ClientConnection]:
    """A client connection to an echo server."""

    async def handler(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async with (
        blazews.serve(handler, "127.0.0.1", 0) as server,
        blazews.connect(f"ws://127.0.0.1:{server.port}/") as conn,
    ):
        yield conn


async def _with(conn: blazews.ClientConnection, *messages: str | bytes) -> None:
    """Have the echo server queue ``messages`` on ``conn``."""
    n = conn._queue.pending() + len(messages)
    for message in messages:
        await conn.send(message)
    await wait_queued(conn, n)


async def _step(read: Awaitable[Any]) -> Any:
    return await read


def _kind(read: Any) -> str:
    return type(read).__name__


async def test_a_queued_message_is_read_without_a_coroutine() -> None:
    async with _echo() as conn:
        await _with(conn, "text", b"binary", b"into")
        read = conn.recv()
        assert _kind(read) == ("Ready" if COMPILED else "coroutine")
        assert conn._queue.pending() == 3  # nothing taken at the call
        assert await read == "text"
        assert await conn.read_message() == (MessageType.BINARY, b"binary")
        buf = bytearray(8)
        assert await conn.read_message_into(buf) == (MessageType.BINARY, 4)
        assert buf[:4] == b"into"
        waiting = conn.recv()  # nothing queued: the coroutine that waits
        assert asyncio.iscoroutine(waiting)
        waiting.close()


@pytest.mark.parametrize("how", ["dropped", "closed", "thrown"])
async def test_a_read_never_run_takes_nothing(how: str) -> None:
    async with _echo() as conn:
        await _with(conn, "m0", "m1")
        for call in (conn.recv, conn.read_message, lambda: conn.read_message_into(bytearray(4))):
            read: Any = call()
            if how == "closed":
                read.close()
            elif how == "thrown":
                with pytest.raises(KeyError):
                    read.throw(KeyError("stop"))
            else:
                with pytest.warns(RuntimeWarning) if not COMPILED else contextlib.nullcontext():
                    del read
                    gc.collect()
        assert conn._queue.pending() == 2
        assert [await conn.recv(), await conn.recv()] == ["m0", "m1"]


async def test_a_read_cancelled_before_its_task_ran_takes_nothing() -> None:
    async with _echo() as conn:
        await _with(conn, "m0", "m1", "m2")
        task = asyncio.ensure_future(conn.recv())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        got = []
        with contextlib.suppress(TimeoutError):
            # 3.11 cancels the read's task before its first step; 3.12 reads at once
            got.append(await asyncio.wait_for(conn.recv(), 0))
        got += [await conn.recv() for _ in range(3 - len(got))]
        assert got == ["m0", "m1", "m2"]
        assert conn._queue.pending() == 0


async def test_reads_in_tasks_take_messages_in_the_order_they_run() -> None:
    async with _echo() as conn:
        await _with(conn, "m0", "m1", "m2")
        got = await asyncio.gather(conn.recv(), conn.read_message(), conn.recv())
        assert got == ["m0", (MessageType.TEXT, b"m1"), "m2"]


async def test_a_read_whose_message_another_took_waits_for_the_next() -> None:
    async with _echo() as conn:
        await _with(conn, "first")
        late = conn.recv()
        assert await conn.recv() == "first"  # taken by a later call, which ran first
        task = asyncio.ensure_future(_step(late))
        await asyncio.sleep(0.05)
        assert not task.done()  # waiting, as the coroutine would
        if COMPILED:
            assert gc.is_tracked(late)  # it holds a suspended coroutine now
        await conn.send("second")
        assert await asyncio.wait_for(task, 5) == "second"


async def test_a_waiting_read_that_is_cancelled_lets_the_next_read_wait() -> None:
    async with _echo() as conn:
        await _with(conn, "first")
        late = conn.read_message()
        assert await conn.recv() == "first"
        task = asyncio.ensure_future(_step(late))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await conn.send("second")
        assert await asyncio.wait_for(conn.read_message(), 5) == (MessageType.TEXT, b"second")


async def test_a_ready_read_gives_its_result_once_and_is_a_coroutine_by_hand() -> None:
    async with _echo() as conn:
        await _with(conn, "m0", "m1", "m2")
        read = conn.read_message()
        with pytest.raises(StopIteration) as stop:
            read.send(None)  # type: ignore[attr-defined]
        assert stop.value.value == (MessageType.TEXT, b"m0")  # a tuple stays one
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await read
        read = conn.recv()
        with pytest.raises(TypeError, match="non-None"):
            read.send("x")  # type: ignore[attr-defined]
        assert conn._queue.pending() == 2  # the refused first step took nothing
        assert await read == "m1"
        assert await asyncio.create_task(conn.recv()) == "m2"


async def test_a_buffer_too_small_raises_at_the_await_and_keeps_the_message() -> None:
    async with _echo() as conn:
        await _with(conn, b"0123456789")
        read = conn.read_message_into(bytearray(4))
        with pytest.raises(BufferTooSmall):
            await read
        view = memoryview(bytearray(16))  # not a bytearray: the coroutine's copy
        assert await conn.read_message_into(view) == (MessageType.BINARY, 10)
        assert bytes(view[:10]) == b"0123456789"


async def test_queued_messages_are_read_after_the_close_then_it_raises() -> None:
    async with _echo() as conn:
        await _with(conn, "m0", "m1")
        await conn.close()
        assert await conn.recv() == "m0"
        assert await conn.read_message() == (MessageType.TEXT, b"m1")
        with pytest.raises(blazews.ConnectionClosedOK):
            await conn.recv()


@pytest.mark.parametrize("api", ["recv", "read_message", "async for"])
async def test_a_read_with_nothing_queued_waits_on_the_next_message(api: str) -> None:
    async with _echo() as conn:
        if api == "async for":
            read: Any = aiter(conn).__anext__()
        else:
            read = getattr(conn, api)()
        assert _kind(read) == ("Ready" if COMPILED else "coroutine")
        task = asyncio.ensure_future(_step(read))
        await asyncio.sleep(0.05)
        assert not task.done()
        if COMPILED:
            assert gc.is_tracked(read)  # waiting: it may sit in a cycle now
        with pytest.raises(blazews.ConcurrencyError):
            await conn.recv()  # one reader waits already
        await conn.send("hello")
        got = await asyncio.wait_for(task, 5)
        assert got == ((MessageType.TEXT, b"hello") if api == "read_message" else "hello")


async def test_a_waiting_read_cancelled_leaves_no_waiter_behind() -> None:
    async with _echo() as conn:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.recv(), 0.05)
        task = asyncio.ensure_future(_step(conn.read_message()))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        reader = asyncio.ensure_future(_step(conn.recv()))  # no ConcurrencyError
        await asyncio.sleep(0.02)
        await conn.send("after")
        assert await asyncio.wait_for(reader, 5) == "after"


@pytest.mark.parametrize("api", ["recv", "async for"])
async def test_a_waiting_read_ends_when_the_connection_closes(api: str) -> None:
    async with _echo() as conn:
        read: Any = aiter(conn).__anext__() if api == "async for" else conn.recv()
        reader = asyncio.ensure_future(_step(read))
        await asyncio.sleep(0.02)
        assert not reader.done()
        await conn.close()
        # a normal close: recv raises ConnectionClosedOK, async for ends
        with pytest.raises(
            StopAsyncIteration if api == "async for" else blazews.ConnectionClosedOK
        ):
            await asyncio.wait_for(reader, 5)
        with pytest.raises(blazews.ConnectionClosedOK):
            await conn.read_message()  # closed, nothing queued: at the first step
