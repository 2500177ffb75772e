"""Graceful shutdown: a server stops accepting and closes every connection with the
code it is given (1001 by default, 1012 to ask clients to come back), every front end."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import blazews
from blazews import ConnectionClosedError, Listener, sync


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


@pytest.mark.parametrize("api", ["coroutine", "listener"])
async def test_close_with_a_code_reaches_every_client(api: str) -> None:
    serving = (
        blazews.serve_listener(Listener, "127.0.0.1", 0)
        if api == "listener"
        else blazews.serve(_echo, "127.0.0.1", 0)
    )
    server = await serving
    url = f"ws://127.0.0.1:{server.port}/"
    clients = [await blazews.connect(url) for _ in range(3)]
    server.close(code=1012, reason="restarting")
    await asyncio.wait_for(server.wait_closed(), 10)
    for client in clients:
        await asyncio.wait_for(client.wait_closed(), 10)
        assert (client.close_code, client.close_reason) == (1012, "restarting")
    with pytest.raises(OSError):
        await blazews.connect(url, open_timeout=2)  # no longer listening


async def test_close_refuses_a_code_that_may_not_be_sent_before_closing_anything() -> None:
    async with blazews.serve(_echo, "127.0.0.1", 0) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
            with pytest.raises(ValueError, match="close code 1006 may not be sent"):
                server.close(code=1006)
            await client.send("still open")
            assert await client.recv() == "still open"


def test_the_blocking_server_shuts_down_with_a_code() -> None:
    def echo(conn: Any) -> None:
        for message in conn:
            conn.send(message)

    with sync.serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        with sync.connect(f"ws://127.0.0.1:{server.port}/") as client:
            client.send("hi")
            assert client.recv() == "hi"
            with pytest.raises(ValueError):
                server.shutdown(code=1005)
            server.shutdown(code=1012, reason="restarting")
            with pytest.raises(ConnectionClosedError):  # (1012 is not a normal closure)
                client.recv()
            assert (client.close_code, client.close_reason) == (1012, "restarting")
        thread.join(5)
        assert not thread.is_alive()
