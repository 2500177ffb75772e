"""Large messages compressed off the event loop (asyncio ``compress_in_thread``)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

import blazews
from blazews.sansio.extensions.permessage_deflate import PerMessageDeflate

BIG = 200_000  # above the 128 KiB default


def json_text(size: int, seed: int = 0) -> str:
    rows = []
    i = seed
    while sum(len(r) for r in rows) < size:
        rows.append(json.dumps({"id": i, "name": f"user-{i}", "tags": ["a", "b", str(i % 7)]}))
        i += 1
    return ("[" + ",".join(rows) + "]")[:size]


@pytest.fixture
def compress_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the thread every PerMessageDeflate.compress call runs in."""
    seen: list[str] = []
    original = PerMessageDeflate.compress

    def spy(self: PerMessageDeflate, payload: Any) -> Any:
        seen.append(threading.current_thread().name)
        return original(self, payload)

    monkeypatch.setattr(PerMessageDeflate, "compress", spy)
    return seen


async def collect(conn: Any, into: list[Any]) -> None:
    async for message in conn:
        into.append(message)


@pytest.fixture
async def sink_server() -> AsyncIterator[tuple[blazews.Server, list[Any]]]:
    got: list[Any] = []

    async def handler(conn: Any) -> None:
        await collect(conn, got)

    async with blazews.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        yield server, got


async def wait_for(got: list[Any], n: int) -> None:
    for _ in range(500):
        if len(got) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(got)} messages of {n}")


async def test_a_large_message_is_compressed_in_a_worker_thread(
    sink_server: tuple[blazews.Server, list[Any]], compress_threads: list[str]
) -> None:
    server, got = sink_server
    text = json_text(BIG)
    async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
        await client.send(text)
        await client.send(text.encode())
        await client.send(b"small")  # on the loop, as usual
        await wait_for(got, 3)
    assert got == [text, text.encode(), b"small"]
    assert len(compress_threads) == 2
    assert all(name != threading.main_thread().name for name in compress_threads)


async def test_messages_keep_the_order_of_the_calls(
    sink_server: tuple[blazews.Server, list[Any]], compress_threads: list[str]
) -> None:
    server, got = sink_server
    big = [json_text(BIG, seed=i).encode() for i in range(3)]
    async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
        # Started together: small ones must not overtake the large ones before them,
        # nor use the compressor while a worker holds it (context takeover).
        await asyncio.gather(
            client.send(big[0]),
            client.send(b"one"),
            client.send(big[1]),
            client.send("two"),
            client.send(big[2]),
        )
        await wait_for(got, 5)
    assert got == [big[0], b"one", big[1], "two", big[2]]
    assert len(compress_threads) == 3


async def test_a_cancelled_send_still_goes_and_the_stream_stays_valid(
    sink_server: tuple[blazews.Server, list[Any]], compress_threads: list[str]
) -> None:
    server, got = sink_server
    big = json_text(BIG).encode()
    async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
        task = asyncio.ensure_future(client.send(big))
        await asyncio.sleep(0)  # compression under way in a worker
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.send(b"after")
        await wait_for(got, 2)
    assert got == [big, b"after"]  # the peer inflated both: the stream is intact


async def test_a_send_cancelled_before_its_turn_keeps_a_copy_of_its_buffer(
    sink_server: tuple[blazews.Server, list[Any]], compress_threads: list[str]
) -> None:
    server, got = sink_server
    big = json_text(BIG).encode()
    mutable = bytearray(b"m" * 1000)
    async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
        first = asyncio.ensure_future(client.send(big))
        await asyncio.sleep(0)  # compression under way in a worker
        second = asyncio.ensure_future(client.send(mutable, compress=False))
        await asyncio.sleep(0)  # it waits its turn behind the first
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        mutable[:] = b"x" * 1000  # the caller is free to reuse its buffer
        await first
        await wait_for(got, 2)
    assert got == [big, b"m" * 1000]


async def test_incompressible_large_data_goes_uncompressed(
    sink_server: tuple[blazews.Server, list[Any]], compress_threads: list[str]
) -> None:
    server, got = sink_server
    noise = os.urandom(BIG)
    async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
        await client.send(noise)
        await client.send(json_text(1000))
        await wait_for(got, 2)
    assert got == [noise, json_text(1000)]
    assert len(compress_threads) == 1


async def test_compress_in_thread_none_keeps_compression_on_the_loop(
    sink_server: tuple[blazews.Server, list[Any]], compress_threads: list[str]
) -> None:
    server, got = sink_server
    text = json_text(BIG)
    url = f"ws://127.0.0.1:{server.port}/"
    async with blazews.connect(url, compress_in_thread=None) as client:
        await client.send(text)
        await wait_for(got, 1)
    assert got == [text]
    assert compress_threads == []


async def test_server_side_sends_are_offloaded_too(compress_threads: list[str]) -> None:
    text = json_text(BIG)

    async def handler(conn: Any) -> None:
        await conn.send(text)
        await conn.send("tail")
        await conn.wait_closed()

    async with blazews.serve(handler, "127.0.0.1", 0, compress_in_thread=100_000) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
            assert await client.recv() == text
            assert await client.recv() == "tail"
    assert len(compress_threads) == 1


async def test_without_compression_nothing_is_offloaded(compress_threads: list[str]) -> None:
    got: list[Any] = []

    async def handler(conn: Any) -> None:
        await collect(conn, got)

    async with blazews.serve(handler, "127.0.0.1", 0, compression=None) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as client:
            await client.send(json_text(BIG))
            await wait_for(got, 1)
    assert compress_threads == []
