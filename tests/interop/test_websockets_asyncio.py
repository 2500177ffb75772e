"""Interoperability with the `websockets` package (test-only dependency), asyncio side.

blazews as server with a websockets client, and blazews as client of a websockets
server: messages of every kind and size, pings, and the closing handshake.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import websockets
import websockets.asyncio.client
import websockets.asyncio.server

import blazews

MESSAGES: list[str | bytes] = [
    "hello",
    "",
    "ünïcødé ✓",
    b"",
    b"\x00\x01\x02",
    os.urandom(70000),
    "x" * 200000,
]


async def blazews_echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


async def websockets_echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


async def test_websockets_client_against_blazews_server() -> None:
    async with blazews.serve(blazews_echo, "127.0.0.1", 0, subprotocols=["chat"]) as server:
        async with websockets.asyncio.client.connect(
            f"ws://127.0.0.1:{server.port}/path?q=1", subprotocols=["chat"], compression=None
        ) as client:
            assert client.subprotocol == "chat"
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
            pong = await client.ping(b"are you there")
            await pong
            # a fragmented message from websockets
            await client.send(["frag", "mented", " text"])
            assert await client.recv() == "fragmented text"
            await client.close(1000, "done")
        assert client.close_code == 1000


async def test_blazews_client_against_websockets_server() -> None:
    async with websockets.asyncio.server.serve(
        websockets_echo, "127.0.0.1", 0, subprotocols=["chat"], compression=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with blazews.connect(f"ws://127.0.0.1:{port}/", subprotocols=["chat"]) as conn:
            assert conn.subprotocol == "chat"
            for message in MESSAGES:
                await conn.send(message)
                assert await conn.recv() == message
            rtt = await (await conn.ping())
            assert rtt >= 0
            await conn.close(1000, "done")
        assert conn.close_code == 1000


async def test_websockets_client_sees_blazews_close_codes() -> None:
    async def handler(conn: Any) -> None:
        await conn.close(4321, "custom")

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        async with websockets.asyncio.client.connect(f"ws://127.0.0.1:{server.port}/") as client:
            with pytest.raises(websockets.ConnectionClosedError):
                await client.recv()
        assert client.close_code == 4321 and client.close_reason == "custom"


async def test_blazews_server_refuses_websockets_oversized_message() -> None:
    async with blazews.serve(blazews_echo, "127.0.0.1", 0, max_message_size=1024) as server:
        async with websockets.asyncio.client.connect(
            f"ws://127.0.0.1:{server.port}/", compression=None
        ) as client:
            await client.send(b"y" * 2048)
            with pytest.raises(websockets.ConnectionClosedError):
                await client.recv()
        assert client.close_code == 1009
