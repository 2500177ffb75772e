"""Clients sending large messages: throughput and the memory one send takes.

A client frame must be masked, so a client copies what it sends. blazews (its
blocking client and its asyncio client) masks a payload over 1 MiB on its way out, a
piece at a time through a pooled 1 MiB buffer (``MaskLater``); websockets (both of
its clients) and aiohttp mask a whole copy first. A row per blazews client runs it
with that turned off (``Protocol.mask_later = 0``: a whole masked copy, as before),
so the two ways are also compared within one library. The asyncio clients share one
event loop, uvloop if installed; each ``send`` is awaited before the next.

Each client connects to a sink in a child process (pinned to the last CPU; the client
to the first where there are two) that answers the handshake by hand and discards
what it reads (so a client's close waits out a 0.1 s close timeout). Rows: GB/s of
payload sent (median of ``repeat`` runs of ``target`` seconds at least, one message at
a time) and the peak memory traced by :mod:`tracemalloc` during one send, above what
was allocated before it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

SIZES = (1 << 20, 16 << 20, 64 << 20)


def _sink(listener: socket.socket) -> None:
    """Accept connections one after another, answer the handshake, discard the rest."""
    from blazews.sansio.handshake import accept_key

    buf = bytearray(1 << 20)
    while True:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            else:
                key = next(
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + accept_key(key).encode()
                    + b"\r\n\r\n"
                )
                while conn.recv_into(buf):
                    pass


Burst = Callable[[Any, bytes, float], tuple[int, float]]
Client = tuple[str, Callable[[str], Any], Burst, Callable[[Any], None]]
"""(label, connect(url), burst(conn, payload, seconds) -> (sent, elapsed), close(conn))"""


def _burst(send: Callable[[Any, bytes], None]) -> Burst:
    """Send one message after another for ``seconds`` at least (once with 0)."""

    def burst(conn: Any, payload: bytes, seconds: float) -> tuple[int, float]:
        n = 0
        t0 = time.perf_counter()
        while True:
            send(conn, payload)
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return n, elapsed

    return burst


def _async_burst(loop: asyncio.AbstractEventLoop, send: Callable[[Any, bytes], Any]) -> Burst:
    """The same inside one coroutine on ``loop``: each ``send`` awaited in turn, as an
    application does (not one ``run_until_complete`` per message)."""

    async def burst(conn: Any, payload: bytes, seconds: float) -> tuple[int, float]:
        n = 0
        t0 = time.perf_counter()
        while True:
            await send(conn, payload)
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return n, elapsed

    return lambda conn, payload, seconds: loop.run_until_complete(burst(conn, payload, seconds))


def _whole(conn: Any) -> Any:
    conn.protocol.mask_later = 0  # a whole masked copy per frame, as before
    return conn


def _blocking_clients() -> list[Client]:
    from blazews import sync

    def blazews_connect(url: str) -> Any:
        return sync.connect(url, compression=None, ping_interval=None, close_timeout=0.1)

    def close(conn: Any) -> None:
        conn.close()

    burst = _burst(lambda conn, payload: conn.send(payload))
    clients: list[Client] = [
        ("blazews.sync (masked in 1 MiB pieces)", blazews_connect, burst, close),
        ("blazews.sync, whole masked copy", lambda url: _whole(blazews_connect(url)), burst, close),
    ]
    try:
        from websockets.sync.client import connect as ws_connect
    except ImportError:  # (an extra of the bench)
        return clients

    def websockets_connect(url: str) -> Any:
        return ws_connect(
            url, compression=None, max_size=None, ping_interval=None, close_timeout=0.1
        )

    clients.append(("websockets.sync", websockets_connect, burst, close))
    return clients


def _asyncio_clients(loop: asyncio.AbstractEventLoop) -> list[Client]:
    import blazews

    def run(coroutine: Any) -> Any:
        return loop.run_until_complete(coroutine)

    def blazews_connect(url: str) -> Any:
        return run(blazews.connect(url, compression=None, ping_interval=None, close_timeout=0.1))

    def close(conn: Any) -> None:
        run(conn.close())

    burst = _async_burst(loop, lambda conn, payload: conn.send(payload))
    clients: list[Client] = [
        ("blazews asyncio (masked in 1 MiB pieces)", blazews_connect, burst, close),
        ("blazews asyncio, whole masked copy", lambda u: _whole(blazews_connect(u)), burst, close),
    ]
    try:
        from websockets.asyncio.client import connect as ws_connect
    except ImportError:
        pass
    else:

        def websockets_connect(url: str) -> Any:
            return run(
                ws_connect(
                    url, compression=None, max_size=None, ping_interval=None, close_timeout=0.1
                )
            )

        clients.append(("websockets asyncio", websockets_connect, burst, close))
    try:
        import aiohttp
    except ImportError:
        return clients

    async def aiohttp_open(url: str) -> Any:
        session = aiohttp.ClientSession()
        timeout = aiohttp.ClientWSTimeout(ws_close=0.1)
        ws = await session.ws_connect(url, compress=0, max_msg_size=0, timeout=timeout)
        return session, ws

    async def aiohttp_close(conn: Any) -> None:
        await conn[1].close()
        await conn[0].close()

    clients.append(
        (
            "aiohttp",
            lambda url: run(aiohttp_open(url)),
            _async_burst(loop, lambda conn, payload: conn[1].send_bytes(payload)),
            lambda conn: run(aiohttp_close(conn)),
        )
    )
    return clients


def _new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop"


def _peak(burst: Burst, conn: Any, payload: bytes) -> int:
    """Peak traced memory of one send, above what was traced before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        burst(conn, payload, 0)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def bench_send(
    *, target: float, repeat: int, sizes: tuple[int, ...] = SIZES
) -> list[dict[str, Any]]:
    """Time each client sending messages of each size to the sink; see the module."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pid = os.fork()
    if pid == 0:  # the sink
        try:
            if len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[-1]})
            _sink(listener)
        finally:
            os._exit(0)
    listener.close()
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[0]})
    results: list[dict[str, Any]] = []
    loop, loop_name = _new_loop()
    asyncio.set_event_loop(loop)  # (aiohttp's session looks for it)
    clients = [(c, "-") for c in _blocking_clients()]
    clients += [(c, loop_name) for c in _asyncio_clients(loop)]
    try:
        for size in sizes:
            payload = os.urandom(size)
            for (label, connect, burst, close), loop_used in clients:
                conn = connect(url)
                try:
                    burst(conn, payload, 0)  # warm-up
                    rates = []
                    for _ in range(repeat):
                        n, elapsed = burst(conn, payload, target)
                        rates.append(n * size / elapsed / 1e9)
                    peak = _peak(burst, conn, payload)
                finally:
                    close(conn)
                results.append(
                    {
                        "label": label,
                        "loop": loop_used,
                        "size": size,
                        "gb_per_s": statistics.median(rates),
                        "peak_bytes": peak,
                    }
                )
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        if cpus:
            os.sched_setaffinity(0, set(cpus))
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return results
