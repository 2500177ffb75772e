"""blazews.sync.broadcast: thread-safe, never blocks, and each slow-consumer policy
against a real slow reader (a raw socket that never reads, small buffers)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from blazews import BroadcastResult, State, sync
from tests.helpers import CLOSE, blocking_client, parse_frames
from tests.sync.support import Running

KiB = 1024


def _hold(conn: sync.ServerConnection) -> None:
    for _ in conn:
        pass


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _complete_frames(data: bytes) -> list[Any]:
    """The complete frames of ``data``: a connection closed at once may cut the frame
    its socket held part of (the peer then sees the TCP connection end: 1006)."""
    for end in range(len(data), -1, -1):
        try:
            return parse_frames(data[:end])
        except (AssertionError, IndexError, struct.error):
            continue
    return []


def test_every_connection_gets_it_from_any_thread(run_server: Callable[..., Running]) -> None:
    running = run_server(_hold)
    clients = [sync.connect(running.url) for _ in range(4)]
    _wait_for(lambda: len(running.server.connections) == 4)
    results: list[BroadcastResult] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(
                sync.broadcast(running.server.connections, f"from {i}")
            )
        )
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [BroadcastResult(delivered=4)] * 3
    for c in clients:
        got = sorted(str(c.recv(timeout=10)) for _ in range(3))
        assert got == ["from 0", "from 1", "from 2"]
        c.close()


def _slow(running: Running) -> tuple[socket.socket, sync.ServerConnection, Any, list[Any]]:
    sock = blocking_client(running.server.port, 4096)
    _wait_for(lambda: len(running.server.connections) == 1)
    slow = next(iter(running.server.connections))
    slow.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    fast = sync.connect(running.url, max_queue=1024)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.extend(fast), daemon=True)
    reader.start()
    _wait_for(lambda: len(running.server.connections) == 2)
    return sock, slow, fast, got


def _blast(running: Running, n: int, **kwargs: Any) -> list[BroadcastResult]:
    return [
        sync.broadcast(running.server.connections, i.to_bytes(4, "big") * 4096, **kwargs)
        for i in range(n)
    ]


def test_skip_never_blocks_on_a_reader_that_never_reads(
    run_server: Callable[..., Running],
) -> None:
    running = run_server(_hold)
    sock, slow, fast, got = _slow(running)
    with sock:
        results = _blast(running, 100, write_limit=16 * KiB)  # would block if it waited
        assert sum(r.skipped for r in results) > 50
        assert all(r.delivered + r.skipped == 2 for r in results)
        assert slow.protocol.state is State.OPEN
        _wait_for(lambda: len(got) == 100)
        assert [m[:4] for m in got] == [i.to_bytes(4, "big") for i in range(100)]
        fast.close()


@pytest.mark.parametrize("slow_policy", ["close", "queue"])
def test_close_and_queue_end_the_slow_reader(
    run_server: Callable[..., Running], slow_policy: str
) -> None:
    running = run_server(_hold)
    sock, slow, fast, got = _slow(running)
    with sock:
        results = _blast(
            running,
            60,
            slow=slow_policy,
            max_queued=128 * KiB,
            close_code=1013,
            write_limit=16 * KiB,
        )
        assert sum(r.closed for r in results) == 1
        assert all(r.skipped == 0 for r in results)
        frames = _complete_frames(_read_all(sock))
        payloads = [f.payload[:4] for f in frames if f.opcode != CLOSE]
        assert payloads == [i.to_bytes(4, "big") for i in range(len(payloads))]
        closes = [f for f in frames if f.opcode == CLOSE]
        if closes:  # the close frame, if the socket had room for it
            assert struct.unpack("!H", closes[0].payload[:2])[0] == 1013
        _wait_for(lambda: slow.protocol.state is State.CLOSED or slow._finished)
        _wait_for(lambda: len(got) == 60)
        fast.close()
