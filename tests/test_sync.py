"""Tests of the blocking front end, :mod:`blazews.sync`, over real sockets.

Peers: the sync front end itself, the asyncio front end (its loop in a thread), the
``websockets`` package, and raw sockets that speak bytes written by hand here.
"""

from __future__ import annotations

import array
import asyncio
import base64
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import blazews.asyncio as bz_asyncio
from blazews import sync
from blazews.exceptions import (
    BufferTooSmall,
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    MessageTooBig,
    ProtocolError,
)
from blazews.sansio.frames import MessageType
from blazews.sansio.protocol import State
from helpers import RawServer

FAST: dict[str, Any] = dict(ping_interval=None, close_timeout=2.0, open_timeout=5.0)


# -- helpers ---------------------------------------------------------------------------


class Running:
    """A sync server whose ``serve_forever`` runs in a thread."""

    def __init__(self, server: sync.Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/"


@pytest.fixture
def run_server() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(handler: Callable[[sync.ServerConnection], None], **kwargs: Any) -> Running:
        options: dict[str, Any] = {**FAST, **kwargs}
        if "path" not in options:
            options.setdefault("host", "127.0.0.1")
            options.setdefault("port", 0)
        running = Running(sync.serve(handler, **options))
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.shutdown()
        running.thread.join(5)
        assert not running.thread.is_alive()


def echo(conn: sync.ServerConnection) -> None:
    for message in conn:
        conn.send(message)


class LoopThread:
    """An asyncio loop running in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


def raw_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True) -> bytes:
    """Build one frame by hand (RFC 6455 §5.2), masked with a fixed key if asked."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    bit = 0x80 if mask else 0
    if n < 126:
        header = bytes((first, bit | n))
    elif n < 65536:
        header = struct.pack("!BBH", first, bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, bit | 127, n)
    if not mask:
        return header + payload
    key = b"\x01\x02\x03\x04"
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_raw_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one unmasked frame from a raw socket; return ``(opcode, payload)``."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    assert not b1 & 0x80
    return b0 & 0x0F, exactly(n)


def raw_client(port: int) -> socket.socket:
    """Open a TCP connection and perform the client handshake by hand."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk
        head += chunk
    assert head.startswith(b"HTTP/1.1 101")
    return sock


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
            for message in conn:
                seen.append(message)
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


def read_raw_frame_masked(sock: socket.socket) -> tuple[int, bytes]:
    b0, b1 = sock.recv(2, socket.MSG_WAITALL)
    n = b1 & 0x7F
    assert b1 & 0x80 and n < 126
    key = sock.recv(4, socket.MSG_WAITALL)
    payload = sock.recv(n, socket.MSG_WAITALL) if n else b""
    return b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(payload))


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


# -- handshake ---------------------------------------------------------------------------


def test_process_request_rejects_with_403(run_server: Callable[..., Running]) -> None:
    def process_request(conn: sync.ServerConnection, request: Any) -> Any:
        if request.path != "/allowed":
            return conn.reject(403, "forbidden\n", [("X-Why", "path")])
        return None

    running = run_server(echo, process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        sync.connect(running.url, **FAST)
    assert info.value.status == 403
    assert info.value.response.body == b"forbidden\n"
    assert info.value.response.headers["X-Why"] == "path"
    with sync.connect(running.url + "allowed", **FAST) as conn:
        conn.send("ok")
        assert conn.recv() == "ok"


def test_process_response_adds_header(run_server: Callable[..., Running]) -> None:
    def process_response(conn: sync.ServerConnection, request: Any, response: Any) -> Any:
        response.headers["X-Extra"] = "yes"
        return None

    def failing(conn: sync.ServerConnection, request: Any) -> Any:
        raise RuntimeError("hook failed")

    running = run_server(echo, process_response=process_response)
    with sync.connect(running.url, **FAST) as conn:
        assert conn.response_headers is not None
        assert conn.response_headers["X-Extra"] == "yes"
    running = run_server(echo, process_request=failing)
    with pytest.raises(InvalidStatus) as info:
        sync.connect(running.url, **FAST)
    assert info.value.status == 500


def test_subprotocol_negotiation(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        conn.send(conn.subprotocol or "none")

    running = run_server(handler, subprotocols=["chat", "superchat"])
    with sync.connect(running.url, subprotocols=["superchat", "chat"], **FAST) as conn:
        assert conn.subprotocol == "superchat"
        assert conn.recv() == "superchat"
    with sync.connect(running.url, subprotocols=["other"], **FAST) as conn:
        assert conn.subprotocol is None
        assert conn.recv() == "none"
    running = run_server(
        handler, subprotocols=["a", "b"], select_subprotocol=lambda offer: offer[-1]
    )
    with sync.connect(running.url, subprotocols=["a", "b"], **FAST) as conn:
        assert conn.subprotocol == "b"


def test_additional_headers_and_origin(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        headers = conn.request_headers
        assert headers is not None
        conn.send(f"{headers['X-Token']} {headers['Origin']}")

    running = run_server(handler)
    with sync.connect(
        running.url, origin="https://example.test", additional_headers=[("X-Token", "t1")], **FAST
    ) as conn:
        assert conn.recv() == "t1 https://example.test"


def test_bad_request_gets_400(run_server: Callable[..., Running]) -> None:
    running = run_server(echo)
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 400") or response.startswith(b"HTTP/1.1 426")


def test_unix_socket(run_server: Callable[..., Running]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ws.sock")
        run_server(echo, path=path)
        with sync.connect("ws://localhost/", unix_path=path, **FAST) as conn:
            conn.send(b"over unix" * 1000)
            assert conn.recv() == b"over unix" * 1000


def test_wss_with_ssl_context(run_server: Callable[..., Running]) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    running = run_server(echo, ssl=server_ctx)
    url = f"wss://localhost:{running.server.port}/"
    with sync.connect(url, ssl=client_ctx, **FAST) as conn:
        conn.send("secure")
        assert conn.recv() == "secure"
        big = os.urandom(300_000)
        conn.send(big)
        assert conn.recv() == big
    assert conn.close_code == 1000
    with pytest.raises(ValueError):
        sync.connect(running.url, ssl=client_ctx)


# -- interoperability --------------------------------------------------------------------


def test_sync_client_against_asyncio_server(loop_thread: LoopThread) -> None:
    async def handler(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async def start() -> Any:
        return await bz_asyncio.serve(handler, "127.0.0.1", 0, ping_interval=None)

    server = loop_thread.run(start())
    try:
        with sync.connect(f"ws://127.0.0.1:{server.port}/", **FAST) as conn:
            for message in ["text", b"bin", b"", os.urandom(1 << 20)]:
                conn.send(message)
                assert conn.recv() == message
        assert conn.close_code == 1000
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        loop_thread.run(stop())


def test_asyncio_client_against_sync_server(
    run_server: Callable[..., Running], loop_thread: LoopThread
) -> None:
    running = run_server(echo)
    big = os.urandom(1 << 20)

    async def client() -> list[Any]:
        results: list[Any] = []
        async with bz_asyncio.connect(running.url, ping_interval=None) as conn:
            for message in ["text", b"bin", b"", big]:
                await conn.send(message)
                results.append(await conn.recv())
        results.append(conn.close_code)
        return results

    assert loop_thread.run(client()) == ["text", b"bin", b"", big, 1000]


def test_websockets_client_against_sync_server(run_server: Callable[..., Running]) -> None:
    ws_client = pytest.importorskip("websockets.sync.client")
    running = run_server(echo, subprotocols=["chat"])
    with ws_client.connect(running.url, subprotocols=["chat"], compression=None) as ws:
        assert ws.subprotocol == "chat"
        for message in ["text", b"bin", os.urandom(500_000)]:
            ws.send(message)
            assert ws.recv() == message
        ws.ping().wait(5)
    assert ws.close_code == 1000


def test_sync_client_against_websockets_server() -> None:
    ws_server = pytest.importorskip("websockets.sync.server")

    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with ws_server.serve(handler, "127.0.0.1", 0, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            with sync.connect(f"ws://127.0.0.1:{port}/", **FAST) as conn:
                for message in ["text", b"bin", b"", os.urandom(500_000)]:
                    conn.send(message)
                    assert conn.recv() == message
                assert conn.ping().wait(5) >= 0
            assert conn.close_code == 1000
        finally:
            server.shutdown()
            thread.join(5)


def test_closing_handshake_does_not_wait_for_timeouts(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        if conn.recv() == "close":
            conn.close(1000, "server closes")

    running = run_server(handler, close_timeout=5)
    for who in ("client", "server"):
        conn = sync.connect(running.url, ping_interval=None, close_timeout=5)
        start = time.monotonic()
        if who == "client":
            conn.send("stay")
            conn.close()
        else:
            conn.send("close")
            with pytest.raises(ConnectionClosedOK):
                conn.recv()
            conn.close()
        assert time.monotonic() - start < 1, who  # the server closed TCP promptly
        assert conn.close_code == 1000


def test_permessage_deflate_by_default_and_per_message_opt_out(
    run_server: Callable[..., Running],
) -> None:
    seen: list[tuple[bool, bytes]] = []

    def handler(conn: sync.ServerConnection) -> None:
        for message in conn:
            conn.send(message)

    running = run_server(handler)
    with sync.connect(running.url, **FAST) as conn:
        header = conn.response_headers["Sec-WebSocket-Extensions"] if conn.response_headers else ""
        assert header.startswith("permessage-deflate")
        text = '{"key": "value", "list": [1, 2, 3]}' * 200
        # Watch what the core hands to the socket: compressed frames carry RSV1.
        original = conn.protocol.data_to_send

        def spy() -> list[bytes]:
            chunks = original()
            if chunks:
                seen.append((bool(chunks[0][0] & 0x40), b"".join(chunks)))
            return chunks

        conn.protocol.data_to_send = spy  # type: ignore[method-assign]
        conn.send(text)
        assert conn.recv() == text
        conn.send(text, compress=False)
        assert conn.recv() == text
    rsv1 = [flag for flag, data in seen if len(data) > 100]
    assert rsv1[:2] == [True, False]
    assert len(seen[0][1]) < len(text) // 4  # it really was compressed

    with sync.connect(running.url, compression=None, **FAST) as conn:
        assert conn.response_headers is not None
        assert "Sec-WebSocket-Extensions" not in conn.response_headers
