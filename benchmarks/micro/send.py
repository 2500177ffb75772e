"""Blocking clients sending large messages: throughput and the memory one send takes.

A client frame must be masked, so a client copies what it sends. ``blazews.sync``
masks a payload over 1 MiB on its way out, a piece at a time through a pooled 1 MiB
buffer (``MaskLater``); ``websockets.sync`` masks a whole copy first. One row runs
blazews with that turned off (``Protocol.mask_later = 0``: a whole masked copy, as
before), so the two ways are also compared within one library.

Each client connects to a sink in a child process (pinned to the last CPU; the client
to the first where there are two) that answers the handshake by hand and discards
what it reads (so a client's close waits out a 0.1 s close timeout). Rows: GB/s of
payload sent (median of ``repeat`` runs of ``target`` seconds at least, one message at
a time) and the peak memory traced by :mod:`tracemalloc` during one send, above what
was allocated before it.
"""

from __future__ import annotations

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


def _clients() -> list[tuple[str, Callable[[str], Any], Callable[[Any, bytes], None]]]:
    """(label, connect(url), send(conn, payload)) per client that is installed."""
    from blazews import sync

    def blazews_connect(url: str) -> Any:
        return sync.connect(url, compression=None, ping_interval=None, close_timeout=0.1)

    def blazews_whole(url: str) -> Any:
        conn = blazews_connect(url)
        conn.protocol.mask_later = 0  # a whole masked copy per frame, as before
        return conn

    def send(conn: Any, payload: bytes) -> None:
        conn.send(payload)

    clients = [
        ("blazews.sync (masked in 1 MiB pieces)", blazews_connect, send),
        ("blazews.sync, whole masked copy", blazews_whole, send),
    ]
    try:
        from websockets.sync.client import connect as ws_connect
    except ImportError:  # (an extra of the bench)
        return clients

    def websockets_connect(url: str) -> Any:
        return ws_connect(
            url, compression=None, max_size=None, ping_interval=None, close_timeout=0.1
        )

    clients.append(("websockets.sync", websockets_connect, send))
    return clients


def _peak(send: Callable[[Any, bytes], None], conn: Any, payload: bytes) -> int:
    """Peak traced memory of one send, above what was traced before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        send(conn, payload)
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
    try:
        for size in sizes:
            payload = os.urandom(size)
            for label, connect, send in _clients():
                conn = connect(url)
                try:
                    send(conn, payload)  # warm-up
                    rates = []
                    for _ in range(repeat):
                        n = 0
                        t0 = time.perf_counter()
                        while True:
                            send(conn, payload)
                            n += 1
                            elapsed = time.perf_counter() - t0
                            if elapsed >= target:
                                break
                        rates.append(n * size / elapsed / 1e9)
                    peak = _peak(send, conn, payload)
                finally:
                    conn.close()
                results.append(
                    {
                        "label": label,
                        "size": size,
                        "gb_per_s": statistics.median(rates),
                        "peak_bytes": peak,
                    }
                )
    finally:
        if cpus:
            os.sched_setaffinity(0, set(cpus))
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return results
