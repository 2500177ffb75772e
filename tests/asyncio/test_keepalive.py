"""Keepalive on one timer per event loop (blazews.asyncio._keepalive)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import blazews
from blazews import Listener, MessageType
from blazews.asyncio import ListenerConnection
from blazews.asyncio._keepalive import Keepalive, keepalive_for
from tests.helpers import PING, parse_frames, raw_client


class Due:
    """A stand-in for a connection: records when the schedule brings it up."""

    def __init__(self, log: list[tuple[str, float]], name: str) -> None:
        self._ka_token = 0
        self.log = log
        self.name = name

    def _keepalive_due(self, wheel: Keepalive) -> None:
        self.log.append((self.name, asyncio.get_running_loop().time()))


async def test_connections_come_up_in_order_of_their_delays() -> None:
    loop = asyncio.get_running_loop()
    wheel = Keepalive(loop)
    log: list[tuple[str, float]] = []
    start = loop.time()
    conns = [Due(log, name) for name in "abc"]
    wheel.schedule(conns[2], 0.06)
    wheel.schedule(conns[0], 0.02)
    wheel.schedule(conns[1], 0.04)
    assert len(wheel) == 3
    await asyncio.sleep(0.3)
    assert [name for name, _ in log] == ["a", "b", "c"]
    for (_, when), delay in zip(log, (0.02, 0.04, 0.06), strict=True):
        assert when >= start + delay - 0.006  # never more than the coalescing window early
    assert len(wheel) == 0


async def test_a_reschedule_replaces_the_entry_and_cancel_drops_it() -> None:
    wheel = Keepalive(asyncio.get_running_loop())
    log: list[tuple[str, float]] = []
    moved, cancelled = Due(log, "moved"), Due(log, "cancelled")
    wheel.schedule(moved, 0.01)
    wheel.schedule(moved, 0.05)  # in place of the first: comes up once
    wheel.schedule(cancelled, 0.02)
    wheel.cancel(cancelled)
    wheel.cancel(cancelled)  # twice is harmless
    assert len(wheel) == 1
    await asyncio.sleep(0.2)
    assert [name for name, _ in log] == ["moved"]
    assert len(wheel) == 0


async def test_reschedules_and_cancels_leave_nothing_behind() -> None:
    wheel = Keepalive(asyncio.get_running_loop())
    log: list[tuple[str, float]] = []
    conn = Due(log, "c")
    for n in range(10_000):  # a pong reschedules a connection on every ping
        wheel.schedule(conn, 60.0 + n / 100)
    assert len(wheel) == 1
    assert sum(len(bucket) for bucket in wheel._buckets.values()) == 1
    gone = Due(log, "gone")
    wheel.schedule(gone, 60.0)
    ref = weakref.ref(gone)
    wheel.cancel(gone)  # (connection_lost does it)
    del gone
    gc.collect()
    assert ref() is None  # the schedule let go of it
    assert len(wheel) == 1


async def test_connections_due_together_share_a_bucket() -> None:
    wheel = Keepalive(asyncio.get_running_loop())
    log: list[tuple[str, float]] = []
    conns = [Due(log, str(n)) for n in range(1000)]
    for conn in conns:
        wheel.schedule(conn, 20.0)
    assert len(wheel) == 1000
    assert len(wheel._buckets) <= 2  # (a grid line may fall between them)
    for conn in conns:
        wheel.cancel(conn)
    assert len(wheel) == 0


async def test_a_connection_due_again_at_once_waits_for_the_next_turn() -> None:
    """One that asks to come up at once while coming up (a tiny interval) comes up
    on a later timer, not again within the same call: the loop keeps turning."""
    loop = asyncio.get_running_loop()
    wheel = Keepalive(loop)
    ticks = 0  # loop turns so far, counted by a callback each turn
    seen: list[int] = []

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if len(seen) < 5:
            loop.call_soon(tick)

    class Eager(Due):
        def _keepalive_due(self, wheel: Keepalive) -> None:
            seen.append(ticks)
            if len(seen) < 5:
                wheel.schedule(self, 1e-9)

    loop.call_soon(tick)
    wheel.schedule(Eager([], "e"), 1e-9)
    for _ in range(200):
        await asyncio.sleep(0.005)
        if len(seen) == 5:
            break
    assert len(seen) == 5 and len(wheel) == 0
    assert len(set(seen)) == 5  # each on a turn of its own


async def test_one_connection_failing_stops_no_other() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        wheel = Keepalive(loop)
        log: list[tuple[str, float]] = []

        class Failing(Due):
            def _keepalive_due(self, wheel: Keepalive) -> None:
                raise RuntimeError("boom")

        conns = [Due(log, "a"), Failing(log, "f"), Due(log, "b")]
        for conn in conns:
            wheel.schedule(conn, 0.01)
        await asyncio.sleep(0.2)
        assert sorted(name for name, _ in log) == ["a", "b"]
        assert [type(e["exception"]) for e in errors] == [RuntimeError]
    finally:
        loop.set_exception_handler(None)


async def test_one_schedule_per_loop() -> None:
    loop = asyncio.get_running_loop()
    assert keepalive_for(loop) is keepalive_for(loop)


class Echo(Listener):
    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        conn.send(payload, kind)


async def test_keepalive_runs_no_task_per_connection() -> None:
    async with blazews.serve_listener(Echo, "127.0.0.1", 0, ping_interval=0.05) as server:
        before = len(asyncio.all_tasks())
        clients = [await raw_client(server.port) for _ in range(20)]
        for reader, _ in clients:  # every connection is pinged
            data = await asyncio.wait_for(reader.readexactly(6), 5)
            assert [f.opcode for f in parse_frames(data)] == [PING]
        assert len(asyncio.all_tasks()) == before
        assert len(keepalive_for(asyncio.get_running_loop())) >= 20
        for _, writer in clients:
            writer.close()


async def test_answered_pings_keep_a_connection_open_and_measure_latency() -> None:
    async with blazews.serve_listener(
        Echo, "127.0.0.1", 0, ping_interval=0.03, ping_timeout=0.06
    ) as server:
        async with blazews.connect(
            f"ws://127.0.0.1:{server.port}/", ping_interval=0.03, ping_timeout=0.06
        ) as client:
            await asyncio.sleep(0.5)  # many intervals and timeouts: pongs came in time
            await client.send("still here")
            assert await asyncio.wait_for(client.recv(), 5) == "still here"
            assert client.latency > 0  # the client's own keepalive pings were answered
            (conn,) = server.connections
            assert conn.latency > 0


class Pusher(Listener):
    """Buffers 8 MiB for a peer that reads nothing."""

    def on_connect(self, conn: ListenerConnection) -> None:
        for _ in range(128):
            conn.send(b"x" * 65536)

    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        pass


async def test_a_peer_that_neither_answers_nor_reads_is_dropped_within_close_timeout() -> None:
    # The keepalive fails the connection; closing it must not wait for a write
    # buffer that a peer reading nothing never drains.
    async with blazews.serve_listener(
        Pusher,
        "127.0.0.1",
        0,
        ping_interval=0.05,
        ping_timeout=0.1,
        close_timeout=0.3,
        max_write_buffer=None,
        compression=None,
    ) as server:
        _, writer = await raw_client(server.port)  # reads nothing from here on
        try:
            for _ in range(300):
                await asyncio.sleep(0.01)
                if server.connections:
                    break
            assert server.connections
            for _ in range(500):
                await asyncio.sleep(0.01)
                if not server.connections:
                    break
            assert not server.connections  # gone after ping_timeout + close_timeout
        finally:
            writer.transport.abort()  # (else a failure here leaves the server waiting)
