"""permessage-deflate on asyncio connections: the ``compression`` option, the websockets
package as client and as server with its offers and policies, and large messages
compressed off the event loop (``compress_in_thread``).

The extension itself is tested in tests/sansio/test_permessage_deflate*.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
from websockets.extensions import permessage_deflate as wspmd

import blazews
from blazews.sansio.extensions.permessage_deflate import PerMessageDeflate
from tests.helpers import echo_handler
from tests.sansio.deflate_support import JSON

# -- the compression option, against the websockets package both ways ----------------


MESSAGES: list[str | bytes] = ["hello", "", JSON.decode() * 30, os.urandom(70000), b"z" * 300000]


def negotiated(conn: Any) -> PerMessageDeflate | None:
    found = [e for e in conn.protocol.extensions if isinstance(e, PerMessageDeflate)]
    return found[0] if found else None


async def test_asyncio_compression_option() -> None:
    async with blazews.serve(echo_handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with blazews.connect(url) as conn:
            assert conn.response_headers["Sec-WebSocket-Extensions"] == (
                "permessage-deflate; server_no_context_takeover; "
                "server_max_window_bits=12; client_max_window_bits=12"
            )
            for message in MESSAGES:
                await conn.send(message)
                assert await conn.recv() == message
        async with blazews.connect(url, compression=None) as conn:
            assert "Sec-WebSocket-Extensions" not in conn.response_headers
            assert "Sec-WebSocket-Extensions" not in conn.request_headers
    async with blazews.serve(echo_handler, "127.0.0.1", 0, compression=None) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as conn:
            assert negotiated(conn) is None
            await conn.send("plain")
            assert await conn.recv() == "plain"
    with pytest.raises(ValueError):
        blazews.connect("ws://127.0.0.1:1/", compression="gzip")


WS_CLIENT_OFFERS = [  # None: websockets' default offer
    None,
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9, "client_max_window_bits": 10},
    {"client_max_window_bits": None, "compress_settings": {"memLevel": 9}},
]


@pytest.mark.parametrize("offers", WS_CLIENT_OFFERS)
async def test_websockets_client_against_blazews_server(offers: Any) -> None:
    kwargs: dict[str, Any] = {}
    if offers is not None:
        kwargs = {
            "extensions": [wspmd.ClientPerMessageDeflateFactory(**offers)],
            "compression": None,
        }
    async with blazews.serve(echo_handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with websockets.asyncio.client.connect(url, max_size=None, **kwargs) as client:
            header = client.response.headers["Sec-WebSocket-Extensions"]
            assert "permessage-deflate" in header
            if offers is None:  # websockets' default offer is the browsers'
                assert header == (
                    "permessage-deflate; server_no_context_takeover; "
                    "server_max_window_bits=12; client_max_window_bits=12"
                )
                (theirs,) = client.protocol.extensions
                assert isinstance(theirs, wspmd.PerMessageDeflate)
                assert theirs.remote_no_context_takeover
                assert not theirs.local_no_context_takeover
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
            await client.send(["frag", "mented ", JSON.decode()])
            assert await client.recv() == "fragmented " + JSON.decode()
            (conn,) = server.connections
            ours = negotiated(conn)
            assert ours is not None
            if offers is None:
                # Idle: no compressor (pooled), the client's last 4 KiB, no inflater.
                assert not ours.holds_compressor and not ours.holds_decompressor
                assert ours.idle_bytes == 4096


WS_SERVER_POLICIES = [  # None: websockets' default policy
    None,
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9, "client_max_window_bits": 9},
    {"client_max_window_bits": 11, "require_client_max_window_bits": True},
]


@pytest.mark.parametrize("policy", WS_SERVER_POLICIES)
async def test_blazews_client_against_websockets_server(policy: Any) -> None:
    kwargs: dict[str, Any] = {}
    if policy is not None:
        kwargs = {
            "extensions": [wspmd.ServerPerMessageDeflateFactory(**policy)],
            "compression": None,
        }
    async with websockets.asyncio.server.serve(
        echo_handler, "127.0.0.1", 0, max_size=None, **kwargs
    ) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        async with blazews.connect(f"ws://127.0.0.1:{port}/", max_message_size=None) as conn:
            extension = negotiated(conn)
            assert extension is not None
            for message in MESSAGES:
                await conn.send(message)
                assert await conn.recv() == message


# -- large messages compressed off the event loop ------------------------------------

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
