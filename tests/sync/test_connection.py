"""Tests of the blocking front end, :mod:`blazews.sync`, over real sockets: messages,
closing, pings and keepalive, backpressure and timeouts.

Peers: the sync front end itself, and raw sockets that speak bytes written by hand
(``tests.sync.support``). The handshake and the other peers: ``test_client_server.py``.
"""

from __future__ import annotations

import array
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from blazews import sync
from blazews.exceptions import (
    BufferTooSmall,
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    MessageTooBig,
    ProtocolError,
)
from blazews.sansio.frames import MessageType
from blazews.sansio.protocol import State
from tests.helpers import RawServer
from tests.sync.support import (
    FAST,
    Running,
    echo,
    raw_client,
    raw_frame,
    read_raw_frame,
    read_raw_frame_masked,
)

# -- echo between sync peers -----------------------------------------------------------


def test_echo_text_binary_empty_large(run_server: Callable[..., Running]) -> None:
    running = run_server(echo)
    big = os.urandom(1 << 20)
    with sync.connect(running.url, **FAST) as conn:
        for message in ["hello", "é🙂", b"\x00\xff", b"", "", big]:
            conn.send(message)
            assert conn.recv() == message
        conn.send(bytearray(b"ba"))
        assert conn.read_message() == (MessageType.BINARY, b"ba")
        conn.send(memoryview(b"mv"))
        assert conn.read_message() == (MessageType.BINARY, b"mv")
        numbers = array.array("i", [1, 2, 3])
        conn.send(numbers)
        assert conn.recv() == numbers.tobytes()
        conn.send("t")
        assert conn.read_message() == (MessageType.TEXT, b"t")
        with pytest.raises(TypeError):
            conn.send(42)
        assert conn.state is State.OPEN
        assert conn.close_code is None
        assert conn.request is not None and conn.response is not None
        assert conn.response_headers is not None and "Sec-WebSocket-Accept" in conn.response_headers
        assert conn.request_headers is not None and "Sec-WebSocket-Key" in conn.request_headers
        assert conn.remote_address[1] == running.server.port
        assert conn.local_address[0] == "127.0.0.1"
    assert conn.state is State.CLOSED  # type: ignore[comparison-overlap]
    assert conn.close_code == 1000
    with pytest.raises(ConnectionClosedOK):
        conn.send("late")
    with pytest.raises(ConnectionClosedOK):
        conn.recv()


def test_many_messages_both_ways_concurrently(run_server: Callable[..., Running]) -> None:
    running = run_server(echo, max_queue=4)
    count = 300
    with sync.connect(running.url, **FAST, max_queue=4) as conn:
        received: list[str | bytes] = []

        def reader() -> None:
            for _ in range(count):
                received.append(conn.recv(timeout=10))

        thread = threading.Thread(target=reader)
        thread.start()
        for i in range(count):
            conn.send(f"message {i}" * 100)
        thread.join(10)
    assert received == [f"message {i}" * 100 for i in range(count)]


def test_read_message_into(run_server: Callable[..., Running]) -> None:
    running = run_server(echo)
    with sync.connect(running.url, **FAST) as conn:
        conn.send(b"0123456789")
        conn.send("après")
        small = bytearray(4)
        with pytest.raises(BufferTooSmall) as info:
            conn.read_message_into(small)
        assert info.value.needed == 10
        assert small == bytearray(4)
        buf = bytearray(16)
        assert conn.read_message_into(buf) == (MessageType.BINARY, 10)
        assert buf[:10] == b"0123456789"
        view = memoryview(bytearray(32))[8:]
        assert conn.read_message_into(view) == (MessageType.TEXT, 6)
        assert bytes(view[:6]) == "après".encode()
        words = array.array("I", [0] * 4)
        conn.send(b"abcdefgh")
        assert conn.read_message_into(words) == (MessageType.BINARY, 8)
        assert words.tobytes()[:8] == b"abcdefgh"
        with pytest.raises(TypeError):
            conn.read_message_into(b"read-only")


def test_iteration_ends_on_normal_close(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        for i in range(3):
            conn.send(f"m{i}")
        conn.close()

    running = run_server(handler)
    with sync.connect(running.url, **FAST) as conn:
        assert list(conn) == ["m0", "m1", "m2"]
    assert conn.close_code == 1000


def test_iteration_raises_on_abnormal_close(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        conn.send("one")
        conn.close(4000, "app error")

    running = run_server(handler)
    with sync.connect(running.url, **FAST) as conn:
        seen = []
        with pytest.raises(ConnectionClosedError) as info:
            for message in conn:  # (the iteration itself raises, after one message)
                seen.append(message)  # noqa: PERF402
        assert seen == ["one"]
        assert info.value.code == 4000
        assert info.value.reason == "app error"
    assert conn.close_code == 4000
    assert conn.close_reason == "app error"


def test_close_codes_seen_on_both_sides(run_server: Callable[..., Running]) -> None:
    results: dict[str, Any] = {}
    done = threading.Event()

    def handler(conn: sync.ServerConnection) -> None:
        try:
            conn.recv()
        except ConnectionClosed as exc:
            results["exc"] = exc
        conn.close()
        results["code"] = conn.close_code
        results["reason"] = conn.close_reason
        done.set()

    running = run_server(handler)
    conn = sync.connect(running.url, **FAST)
    conn.close(1001, "going away now")
    assert done.wait(5)
    assert isinstance(results["exc"], ConnectionClosedOK)
    assert results["code"] == 1001
    assert results["reason"] == "going away now"
    assert conn.close_code == 1001  # the server echoed the code
    assert conn.close_reason == ""
    conn.close()  # a second close does nothing

    conn = sync.connect(running.url, **FAST)
    done.clear()
    conn.close(3001, "custom")
    assert done.wait(5)
    assert isinstance(results["exc"], ConnectionClosedError)
    assert results["code"] == 3001

    with sync.connect(running.url, **FAST) as conn:
        with pytest.raises(ValueError):
            conn.close(1005)  # may not be sent; the connection stays open
        with pytest.raises(ValueError):
            conn.close(1000, "x" * 124)
        assert conn.state is State.OPEN
    assert conn.close_code == 1000


def test_handler_exception_closes_with_1011(
    run_server: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        raise RuntimeError("boom")

    running = run_server(handler)
    with caplog.at_level(logging.ERROR, logger="blazews"):
        with sync.connect(running.url, **FAST) as conn:
            with pytest.raises(ConnectionClosedError) as info:
                conn.recv()
            assert info.value.code == 1011
        assert conn.close_code == 1011
    assert any("handler failed" in record.message for record in caplog.records)


def test_handler_ended_by_a_normal_close_is_no_error(
    run_server: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    # The README's echo, met by a client that closes right after sending: the reply's
    # send raises ConnectionClosedOK, which ends the handler without an error record.
    ended = threading.Event()

    def handler(conn: sync.ServerConnection) -> None:
        message = conn.recv()
        with pytest.raises(ConnectionClosedOK):
            conn.recv()  # the client's close
        try:
            conn.send(message)
        finally:
            ended.set()

    running = run_server(handler)
    with caplog.at_level(logging.DEBUG, logger="blazews"):
        with sync.connect(running.url, **FAST) as conn:
            conn.send("bye")
        assert ended.wait(5)
        time.sleep(0.05)  # the server thread logs after the handler returns
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("handler ended" in r.message for r in caplog.records)


def test_peer_protocol_error_fails_with_1002(run_server: Callable[..., Running]) -> None:
    results: dict[str, Any] = {}
    done = threading.Event()

    def handler(conn: sync.ServerConnection) -> None:
        try:
            conn.recv()
        except ConnectionClosed as exc:
            results["exc"] = exc
        done.set()

    running = run_server(handler)
    sock = raw_client(running.server.port)
    with sock:
        sock.sendall(raw_frame(0x1, b"unmasked", mask=False))
        assert read_raw_frame(sock) == (
            0x8,
            struct.pack("!H", 1002) + b"unmasked frame from client",
        )
        assert sock.recv(10) == b""  # the server closed the TCP connection
    assert done.wait(5)
    assert isinstance(results["exc"], ConnectionClosedError)
    assert isinstance(results["exc"].__cause__, ProtocolError)


def test_max_message_size(run_server: Callable[..., Running]) -> None:
    running = run_server(echo, max_message_size=1000)
    with sync.connect(running.url, **FAST) as conn:
        conn.send(b"x" * 1000)
        assert conn.recv() == b"x" * 1000
        conn.send(b"x" * 1001)
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv()
        assert info.value.code == 1009
    with sync.connect(running.url, **FAST, max_message_size=10) as conn:
        conn.send("more than ten bytes")
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv()
        assert isinstance(info.value.__cause__, MessageTooBig)
        assert info.value.sent is not None and info.value.sent.code == 1009


def test_eof_without_close_frame_is_1006() -> None:
    raw = RawServer(lambda sock: sock.sendall(raw_frame(0x1, b"bye", mask=False)))
    with sync.connect(f"ws://127.0.0.1:{raw.port}/", **FAST) as conn:
        assert conn.recv() == "bye"
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv()
        assert info.value.code == 1006
        assert info.value.rcvd is None
    assert conn.close_code == 1006


def test_close_timeout_bounds_close() -> None:
    release = threading.Event()
    raw = RawServer(lambda sock: release.wait(5))  # never answers the close frame
    conn = sync.connect(f"ws://127.0.0.1:{raw.port}/", ping_interval=None, close_timeout=0.3)
    start = time.monotonic()
    conn.close()
    elapsed = time.monotonic() - start
    release.set()
    assert elapsed < 2
    assert conn.state is State.CLOSED
    assert conn.close_code == 1006


def test_client_waits_for_server_to_close_tcp() -> None:
    def behaviour(sock: socket.socket) -> None:
        sock.sendall(raw_frame(0x8, struct.pack("!H", 1000), mask=False))
        assert read_raw_frame_masked(sock)[0] == 0x8
        time.sleep(0.2)  # the client must wait for us to close first

    raw = RawServer(behaviour)
    with sync.connect(f"ws://127.0.0.1:{raw.port}/", **FAST) as conn:
        start = time.monotonic()
        with pytest.raises(ConnectionClosedOK):
            conn.recv()
        conn.close()
        assert 0.1 < time.monotonic() - start < 2
        assert conn.close_code == 1000


def test_close_code_is_known_once_the_close_frame_arrives() -> None:
    """As in the asyncio front end: not only once the TCP connection is closed."""
    released = threading.Event()

    def behaviour(sock: socket.socket) -> None:
        sock.sendall(raw_frame(0x8, struct.pack("!H", 4001) + b"bye", mask=False))
        assert read_raw_frame_masked(sock)[0] == 0x8
        released.wait(5)  # hold the TCP connection open meanwhile

    raw = RawServer(behaviour)
    with sync.connect(f"ws://127.0.0.1:{raw.port}/", **FAST) as conn:
        with pytest.raises(ConnectionClosed):
            conn.recv()
        assert not conn._closed_event.is_set()  # TCP still open...
        assert (conn.close_code, conn.close_reason) == (4001, "bye")  # ...code known
        released.set()


# -- ping, keepalive ---------------------------------------------------------------------


def test_ping_round_trip(run_server: Callable[..., Running]) -> None:
    running = run_server(echo)
    with sync.connect(running.url, **FAST) as conn:
        latency = conn.ping().wait(5)
        assert isinstance(latency, float) and 0 <= latency < 5
        assert conn.latency == latency
        waiter = conn.ping(b"payload")
        assert waiter.wait(5) >= 0
        assert waiter.is_set()
        conn.ping("text payload").wait(5)
    with pytest.raises(ConnectionClosed):
        conn.ping()


def test_pong_answers_earlier_pings() -> None:
    def behaviour(sock: socket.socket) -> None:
        first = read_raw_frame_masked(sock)
        second = read_raw_frame_masked(sock)
        assert first[0] == second[0] == 0x9
        sock.sendall(raw_frame(0xA, second[1], mask=False))
        assert read_raw_frame_masked(sock) == (0x9, b"3")  # never answered
        assert read_raw_frame_masked(sock)[0] == 0x8

    raw = RawServer(behaviour)
    conn = sync.connect(f"ws://127.0.0.1:{raw.port}/", ping_interval=None, close_timeout=0.5)
    one = conn.ping(b"1")
    with pytest.raises(ConcurrencyError):
        conn.ping(b"1")
    two = conn.ping(b"2")
    assert two.wait(5) >= 0
    assert one.wait(0) >= 0
    three = conn.ping(b"3")
    with pytest.raises(TimeoutError):
        three.wait(0.05)
    conn.close()
    with pytest.raises(ConnectionClosed):
        three.wait(1)


def test_keepalive_timeout_fails_with_1011(run_server: Callable[..., Running]) -> None:
    results: dict[str, Any] = {}
    done = threading.Event()

    def handler(conn: sync.ServerConnection) -> None:
        try:
            conn.recv()
        except ConnectionClosed as exc:
            results["exc"] = exc
        done.set()

    running = run_server(handler, ping_interval=0.1, ping_timeout=0.2)
    sock = raw_client(running.server.port)
    start = time.monotonic()
    with sock:
        frames = []
        while True:
            opcode, payload = read_raw_frame(sock)  # a peer that never answers pings
            frames.append(opcode)
            if opcode == 0x8:
                break
        assert payload[:2] == struct.pack("!H", 1011)
        assert frames[0] == 0x9
        assert sock.recv(10) == b""
    assert 0.25 < time.monotonic() - start < 3
    assert done.wait(5)
    assert isinstance(results["exc"], ConnectionClosedError)


def test_keepalive_keeps_a_live_connection(run_server: Callable[..., Running]) -> None:
    running = run_server(echo, ping_interval=0.05, ping_timeout=0.5)
    with sync.connect(running.url, **{**FAST, "ping_interval": 0.05, "ping_timeout": 0.5}) as conn:
        time.sleep(0.4)
        conn.send("still here")
        assert conn.recv() == "still here"
        assert conn.latency > 0


def test_client_keepalive_timeout() -> None:
    release = threading.Event()
    raw = RawServer(lambda sock: release.wait(5))
    conn = sync.connect(
        f"ws://127.0.0.1:{raw.port}/", ping_interval=0.1, ping_timeout=0.1, close_timeout=1
    )
    with pytest.raises(ConnectionClosedError) as info:
        conn.recv(timeout=3)
    release.set()
    assert info.value.sent is not None and info.value.sent.code == 1011
    conn.close()


# -- backpressure, timeouts, concurrency -------------------------------------------------


def test_backpressure_bounds_the_queue(run_server: Callable[..., Running]) -> None:
    release = threading.Event()
    connections: list[sync.ServerConnection] = []
    got: list[int] = []

    def handler(conn: sync.ServerConnection) -> None:
        connections.append(conn)
        release.wait(10)
        for message in conn:
            got.append(len(message))

    running = run_server(handler, max_queue=4)
    client_sock = socket.create_connection(("127.0.0.1", running.server.port))
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    conn = sync.connect(running.url, sock=client_sock, **FAST)
    sent = 0
    total = 400
    size = 32768

    def sender() -> None:
        nonlocal sent
        payload = os.urandom(size)  # incompressible, whatever the extensions
        for _ in range(total):
            conn.send(payload)
            sent += 1

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    time.sleep(0.5)
    server_conn = connections[0]
    # The reader thread stopped: at most max_queue messages plus one read's worth.
    assert 4 <= len(server_conn._queue) <= 4 + 65536 // size + 1
    assert server_conn._reader_paused
    assert sent < total  # the sender is blocked: TCP carried the backpressure
    release.set()
    thread.join(10)
    assert sent == total
    conn.close()
    deadline = time.monotonic() + 5
    while len(got) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [size] * total


def test_open_timeout_drops_silent_client(run_server: Callable[..., Running]) -> None:
    running = run_server(echo, open_timeout=0.3)
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(10) == b""
        assert 0.2 < time.monotonic() - start < 3


def test_client_open_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never answers
    with listener:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            sync.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", open_timeout=0.3)
        assert time.monotonic() - start < 3


def test_recv_timeout_and_concurrency(run_server: Callable[..., Running]) -> None:
    running = run_server(echo)
    with sync.connect(running.url, **FAST) as conn:
        with pytest.raises(TimeoutError):
            conn.recv(timeout=0.05)
        errors: list[BaseException] = []

        def second() -> None:
            try:
                conn.recv(timeout=1)
            except BaseException as exc:
                errors.append(exc)

        first = threading.Thread(target=second)
        first.start()
        time.sleep(0.1)
        with pytest.raises(ConcurrencyError):
            conn.recv(timeout=1)
        conn.send("unblock")
        first.join(5)
        assert errors == []


def test_shutdown_closes_connections_with_1001() -> None:
    server = sync.serve(echo, "127.0.0.1", 0, **FAST)
    running = Running(server)
    conn = sync.connect(running.url, **FAST)
    conn.send("hi")
    assert conn.recv() == "hi"
    server.shutdown()
    running.thread.join(5)
    assert not running.thread.is_alive()
    with pytest.raises(ConnectionClosedOK) as info:
        conn.recv(timeout=5)
    assert info.value.code == 1001
    with pytest.raises(OSError):
        sync.connect(running.url, **FAST)
