"""Graceful shutdown: a server stops accepting and closes every connection with the
code it is given (1001 by default, 1012 to ask clients to come back), every front end."""

from __future__ import annotations

import asyncio
import os
import signal
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


def _sync_echo(conn: Any) -> None:
    for message in conn:
        conn.send(message)


def test_blocking_serve_forever_returns_after_its_timeout_and_serves_again() -> None:
    with sync.serve(_sync_echo, "127.0.0.1", 0) as server:
        server.serve_forever(timeout=0.05)  # nothing calls: returns, still listening
        url = f"ws://127.0.0.1:{server.port}/"
        done = threading.Event()

        def client() -> None:
            with sync.connect(url, open_timeout=20) as conn:  # waits in the backlog
                conn.send("later")
                assert conn.recv() == "later"
            done.set()

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        while not done.is_set():  # serving in slices, as a loop that does other work
            server.serve_forever(timeout=0.05)
        thread.join(5)
        server.shutdown()
        server.serve_forever(timeout=5)  # shut down: returns at once
    with pytest.raises(OSError):
        sync.connect(url, open_timeout=2)


def test_blocking_shutdown_from_a_signal_handler_in_serve_forever_s_thread() -> None:
    # The pattern of a blocking server's main(): SIGTERM shuts down, serve_forever
    # returns; no thread of one's own.
    signum = signal.SIGUSR1
    with sync.serve(_sync_echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        closed: list[tuple[int | None, str | None]] = []

        def client() -> None:
            with sync.connect(url) as conn:
                conn.send("hi")
                assert conn.recv() == "hi"
                os.kill(os.getpid(), signum)  # to the main thread, in serve_forever
                with pytest.raises(ConnectionClosedError):
                    conn.recv()
                closed.append((conn.close_code, conn.close_reason))

        previous = signal.signal(signum, lambda *_: server.shutdown(code=1012, reason="bye"))
        try:
            thread = threading.Thread(target=client, daemon=True)
            thread.start()
            server.serve_forever(timeout=30)
        finally:
            signal.signal(signum, previous)
        thread.join(10)
    assert closed == [(1012, "bye")]
    with pytest.raises(OSError):
        sync.connect(url, open_timeout=2)
