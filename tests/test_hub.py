"""Hub in one process: topics, publish through broadcast, unsubscribe on close;
RedisHub without its extra."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

import blazews
from blazews import Hub, Listener, ListenerConnection


async def _hold(conn: blazews.ServerConnection) -> None:
    await conn.wait_closed()


async def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_publish_reaches_the_topic_s_subscribers_only() -> None:
    hub = Hub()
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        clients = [await blazews.connect(url) for _ in range(3)]
        await _wait_for(lambda: len(server.connections) == 3)
        a, b, c = sorted(server.connections, key=lambda s: s.remote_address[1])
        clients.sort(key=lambda cl: cl.local_address[1])
        hub.subscribe(a, "news")
        hub.subscribe(b, "news")
        hub.subscribe(b, "news")  # twice: once
        hub.subscribe(c, "sport")
        assert hub.subscribers("news") == [a, b]
        assert hub.topics() == {"news", "sport"} and hub.topics(b) == {"news"}
        result = await hub.publish("news", "hello")
        assert result == blazews.BroadcastResult(delivered=2)
        assert await hub.publish("nobody", "x") == blazews.BroadcastResult()
        await hub.publish("sport", b"goal")
        assert await asyncio.wait_for(clients[0].recv(), 10) == "hello"
        assert await asyncio.wait_for(clients[1].recv(), 10) == "hello"
        assert await asyncio.wait_for(clients[2].recv(), 10) == b"goal"
        hub.unsubscribe(a, "news")
        hub.unsubscribe(a, "news")  # not subscribed: nothing
        assert hub.subscribers("news") == [b]
        # A connection that closes leaves every topic by itself.
        hub.subscribe(c, "news")
        await clients[2].close()
        await _wait_for(lambda: hub.topics(c) == set())
        assert hub.subscribers("news") == [b] and "sport" not in hub.topics()
        hub.unsubscribe(b)
        assert hub.topics() == set()
        for cl in clients[:2]:
            await cl.close()


class _Keep(Listener):
    conns: list[ListenerConnection] = []  # noqa: RUF012 (the test's registry)

    def on_connect(self, conn: ListenerConnection) -> None:
        self.conns.append(conn)


async def test_listener_handles_subscribe_and_leave_on_close() -> None:
    _Keep.conns = []
    async with Hub(slow="queue", max_queued=1 << 16) as hub:
        async with blazews.serve_listener(_Keep, "127.0.0.1", 0, ping_interval=None) as server:
            client = await blazews.connect(f"ws://127.0.0.1:{server.port}/")
            await _wait_for(lambda: len(_Keep.conns) == 1)
            hub.subscribe(_Keep.conns[0], "t")
            assert (await hub.publish("t", "hi")).delivered == 1
            assert await asyncio.wait_for(client.recv(), 10) == "hi"
            await client.close()
            await _wait_for(lambda: hub.topics() == set())


def test_hub_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="slow must be"):
        Hub(slow="never")
    hub = Hub()
    with pytest.raises(TypeError, match="topic must be str"):
        hub.subscribe(object(), b"t")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="asyncio connections"):
        hub.subscribe(object(), "t")  # a blocking connection, say
    assert hub.topics() == set()


def test_redis_hub_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"blazews\[redis\]"):
        blazews.RedisHub()
