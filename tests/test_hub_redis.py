"""RedisHub on a real redis-server: two real processes publish to one topic, every
subscriber in both gets every message once and in each publisher's order; Redis
stopped mid-test: publish raises, local delivery goes on, the hubs come back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import blazews
from blazews import HubUnavailable, RedisHub
from tests.hub_support import RedisServer, start_node


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _recv_n(conn: blazews.ClientConnection, n: int) -> list[Any]:
    return [await asyncio.wait_for(conn.recv(), 30) for _ in range(n)]


async def test_two_processes_every_message_once_in_order(redis_server: RedisServer) -> None:
    nodes = [start_node(redis_server.url) for _ in range(2)]
    try:
        urls = [f"ws://127.0.0.1:{port}/" for _, port in nodes]
        subscribers = [await blazews.connect(url) for url in (urls[0], urls[0], urls[1])]
        for conn in subscribers:
            await conn.send("sub room")
            assert await asyncio.wait_for(conn.recv(), 10) == "subscribed"
        publishers = [await blazews.connect(url) for url in urls]
        count = 300
        for pub, tag in zip(publishers, "AB", strict=True):
            await pub.send(f"pub room {count} {tag}")
        got = await asyncio.gather(*(_recv_n(conn, 2 * count) for conn in subscribers))
        for pub in publishers:
            assert await asyncio.wait_for(pub.recv(), 30) == "published"
        for messages in got:
            assert len(set(messages)) == len(messages) == 2 * count  # no duplicates
            for tag in "AB":  # each publisher's order, whatever the interleaving
                assert [m for m in messages if m[0] == tag] == [f"{tag}:{i}" for i in range(count)]
        for conn in subscribers:  # nothing more comes: exactly once
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.recv(), 0.3)
        for conn in [*subscribers, *publishers]:
            await conn.close()
    finally:
        for proc, _ in nodes:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
            assert "Traceback" not in err, err


async def _hold(conn: blazews.ServerConnection) -> None:
    await conn.wait_closed()


async def test_an_outage_raises_on_publish_keeps_local_delivery_and_heals(
    redis_server: RedisServer,
) -> None:
    fast = {"timeout": 2.0, "initial_delay": 0.05, "max_delay": 0.5}
    async with (
        RedisHub(redis_server.url, **fast) as hub1,  # type: ignore[arg-type]
        RedisHub(redis_server.url, **fast) as hub2,  # type: ignore[arg-type]
        blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server,
    ):
        url = f"ws://127.0.0.1:{server.port}/"
        c1 = await blazews.connect(url)
        for _ in range(500):
            if len(server.connections) == 1:
                break
            await asyncio.sleep(0.01)
        s1 = next(iter(server.connections))
        c2 = await blazews.connect(url)
        for _ in range(500):
            if len(server.connections) == 2:
                break
            await asyncio.sleep(0.01)
        (s2,) = server.connections - {s1}
        hub1.subscribe(s1, "t")  # in "process" 1
        hub2.subscribe(s2, "t")  # in "process" 2
        await hub1.publish("t", "before")
        assert await asyncio.wait_for(c1.recv(), 10) == "before"
        assert await asyncio.wait_for(c2.recv(), 10) == "before"

        redis_server.stop()
        with pytest.raises(HubUnavailable, match="unreachable"):
            await hub1.publish("t", "during")
        assert await asyncio.wait_for(c1.recv(), 10) == "during"  # local delivery
        for _ in range(1000):
            if not hub2.connected:
                break
            await asyncio.sleep(0.01)
        assert not hub2.connected

        redis_server.start()  # same port: the hubs reconnect on their own
        await hub1.wait_connected(30)
        await hub2.wait_connected(30)
        await hub1.publish("t", "after")
        assert await asyncio.wait_for(c1.recv(), 10) == "after"
        assert await asyncio.wait_for(c2.recv(), 10) == "after"  # "during" never came
        assert hub2.lost == 1  # and it knows it missed one
        await c1.close()
        await c2.close()
