"""``await conn.send(...)``: a message written at once comes back as a completed
awaitable (no coroutine, no turn of the loop); one that must wait (backpressure, a
client's payload masked piece by piece, compression in a thread) as a coroutine; an
error is raised by the ``await``. On both builds (compiled: the C ``Done`` type;
pure: its Python twin)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import blazews
from tests.helpers import wait_queued


def _completed_type() -> str:
    return "Done" if blazews.IMPLEMENTATION == "compiled" else "_Done"


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


async def test_a_send_written_at_once_is_already_complete() -> None:
    async with (
        blazews.serve(_echo, "127.0.0.1", 0) as server,
        blazews.connect(f"ws://127.0.0.1:{server.port}/") as conn,
    ):
        sent = conn.send("hello")
        assert type(sent).__name__ == _completed_type()
        assert not inspect.iscoroutine(sent)
        # Sent by the call (written at the end of the turn): the echo comes back
        # although the send itself is awaited only after.
        assert await asyncio.wait_for(conn.recv(), 5) == "hello"
        assert await sent is None
        with pytest.raises(RuntimeError, match="already awaited"):
            await sent
        # As a coroutine would be: a task, gather.
        await asyncio.create_task(conn.send(b"a"))  # type: ignore[arg-type]
        await asyncio.gather(conn.send(b"b"), conn.send(b"c"))
        assert [await conn.recv() for _ in range(3)] == [b"a", b"b", b"c"]


async def test_an_error_is_raised_by_the_await() -> None:
    async with (
        blazews.serve(_echo, "127.0.0.1", 0) as server,
        blazews.connect(f"ws://127.0.0.1:{server.port}/") as conn,
    ):
        await conn.close()
        sending = conn.send("too late")  # no exception yet
        with pytest.raises(blazews.ConnectionClosedOK):
            await sending
        bad = conn.send(42)  # type: ignore[arg-type]
        with pytest.raises((TypeError, blazews.ConnectionClosed)):
            await bad


async def test_a_send_that_must_wait_for_the_write_buffer_is_a_coroutine() -> None:
    gate = asyncio.Event()

    async def slow(conn: Any) -> None:  # reads nothing until told
        await gate.wait()
        async for _ in conn:
            pass

    async with blazews.serve(slow, "127.0.0.1", 0, max_queue=1) as server:
        try:
            async with blazews.connect(
                f"ws://127.0.0.1:{server.port}/", write_limit=65536, compression=None
            ) as conn:
                waiting: list[Any] = []
                assert conn.transport is not None
                for _ in range(10_000):  # until the kernel's buffers and 8 MiB more fill
                    sending = conn.send(b"x" * 65536)
                    if not inspect.iscoroutine(sending):
                        assert not waiting  # (complete only while writing is not paused)
                        await sending
                        continue
                    waiting.append(sending)
                    if conn.transport.get_write_buffer_size() > 8 << 20:
                        break
                assert waiting
                tasks = [asyncio.ensure_future(w) for w in waiting]
                await asyncio.sleep(0.05)
                assert not any(t.done() for t in tasks)  # they wait for the buffer to drain
                gate.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            gate.set()


async def test_the_sends_of_one_turn_are_written_together_at_its_end() -> None:
    async with (
        blazews.serve(_echo, "127.0.0.1", 0) as server,
        blazews.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as conn,
    ):
        for n in range(3):
            await conn.send(f"q{n}")  # nothing queued to answer: written at once
            assert not conn.protocol.holds_output()
        await wait_queued(conn, 3)  # the echoes, not read yet
        for n in range(3):
            await conn.send(f"m{n}")  # complete at once: no turn of the loop passes
        assert conn.protocol.holds_output()  # the three frames wait in the core
        await asyncio.sleep(0)
        assert not conn.protocol.holds_output()  # written at the end of the turn
        assert [await conn.recv() for _ in range(6)] == ["q0", "q1", "q2", "m0", "m1", "m2"]
        await conn.send("r")
        await wait_queued(conn, 1)
        await conn.send("s")  # one left to answer: it waits
        assert conn.protocol.holds_output()
        assert await conn.recv() == "r"
        await conn.send("t")  # none left: this one and the one waiting go now
        assert not conn.protocol.holds_output()
        assert [await conn.recv() for _ in range(2)] == ["s", "t"]


async def test_a_turn_s_sends_past_the_batch_are_written_at_once() -> None:
    async with (
        blazews.serve(_echo, "127.0.0.1", 0) as server,
        blazews.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as conn,
    ):
        await conn.send("queued")
        await wait_queued(conn, 1)  # (one to answer: sends wait for the end of the turn)
        await conn.send(b"a" * 40_000)
        assert conn.protocol.holds_output()
        await conn.send(b"b" * 40_000)  # 80 KB in one turn: past the 64 KiB batch
        assert not conn.protocol.holds_output()  # both written at once
        await conn.send(b"c" * 40_000)
        assert conn.protocol.holds_output()  # (a batch of its own, waiting)
        await conn.send(b"d" * 100_000)  # one message over the batch: written at once
        assert not conn.protocol.holds_output()
        await asyncio.sleep(0)  # (the call scheduled for "c" finds nothing left)
        got = [await conn.recv() for _ in range(5)]
        assert [m[:1] for m in got] == ["q", b"a", b"b", b"c", b"d"]


async def test_a_close_right_after_sends_goes_after_them() -> None:
    received: list[Any] = []

    async def sink(conn: Any) -> None:
        async for message in conn:
            received.append(message)

    async with blazews.serve(sink, "127.0.0.1", 0) as server:
        conn = await blazews.connect(f"ws://127.0.0.1:{server.port}/", compression=None)
        for n in range(5):
            await conn.send(n.to_bytes(1, "big"))
        await conn.close(1000, "done")  # (no turn of the loop passed since the sends)
        for _ in range(200):
            if len(received) == 5:
                break
            await asyncio.sleep(0.01)
    assert received == [bytes([n]) for n in range(5)]
