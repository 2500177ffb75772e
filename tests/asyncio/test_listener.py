"""The callback fast path: Listener, serve_listener, connect_listener, ListenerConnection."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvloop

import blazews
from blazews import ConnectionClosed, ConnectionClosedOK, InvalidStatus, Listener, MessageType
from blazews.asyncio import ListenerConnection
from blazews.asyncio._receive import IDLE_RELEASE_DELAY
from tests.helpers import BINARY, CLOSE, CONT, PING, TEXT, frame, parse_frames, raw_client


class Echo(Listener):
    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        conn.send(payload, kind)


class Recorder(Listener):
    """Records every callback; ``got`` collects messages as ``(kind, bytes)``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.got: list[tuple[MessageType, bytes]] = []
        self.kept: list[memoryview] = []
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.conn: ListenerConnection | None = None
        self.arrived = asyncio.Event()
        self.done = asyncio.Event()

    def on_connect(self, conn: ListenerConnection) -> None:
        self.calls.append("connect")
        self.conn = conn

    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        self.calls.append("message")
        assert type(payload) is memoryview
        self.kept.append(payload)
        self.got.append((kind, bytes(payload)))
        self.arrived.set()

    def on_ping(self, conn: ListenerConnection, payload: bytes) -> None:
        self.calls.append("ping")
        self.pings.append(payload)

    def on_pong(self, conn: ListenerConnection, payload: bytes) -> None:
        self.calls.append("pong")
        self.pongs.append(payload)

    def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
        self.calls.append("close")
        self.closed = (code, reason)
        self.done.set()


def url(server: blazews.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def only_connection(server: blazews.Server) -> Any:
    """The server's one connection (the one underneath the listener's handle)."""
    (conn,) = server.connections
    return conn


@pytest.fixture
async def echo_listener_server() -> AsyncIterator[blazews.Server]:
    async with blazews.serve_listener(Echo, "127.0.0.1", 0, max_message_size=None) as server:
        yield server


def masked(opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    return frame(opcode, payload, mask=os.urandom(4), **kwargs)


# -- echo both ways --------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_listener_server_echoes(
    echo_listener_server: blazews.Server, compression: str | None
) -> None:
    async with blazews.connect(
        url(echo_listener_server), compression=compression, max_message_size=None
    ) as conn:
        for message in ["héllo", b"bin", b"", "", b"x" * 70000, os.urandom(1 << 20)]:
            await conn.send(message)
            assert await conn.recv() == message


async def test_send_uncompressed_on_a_compressed_connection() -> None:
    class Plain(Listener):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            conn.send(payload, kind, compress=False)

    async with blazews.serve_listener(Plain, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server)) as conn:
            assert conn.protocol.extensions
            await conn.send(b"y" * 5000)
            assert await conn.recv() == b"y" * 5000


async def test_listener_client_against_a_coroutine_server() -> None:
    async def echo(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        conn, listener = await blazews.connect_listener(Recorder, url(server))
        assert isinstance(listener, Recorder) and listener.conn is conn
        assert listener.calls == ["connect"]
        conn.send("text")
        conn.send(b"binary")
        conn.send("as binary", MessageType.BINARY)
        conn.send(b"as text", MessageType.TEXT)
        conn.send(memoryview(b"as text too"), 1)  # kinds as plain ints
        conn.send("as binary too", 2)
        conn.send(bytearray(b"view"), None)
        gone = memoryview(b"released")
        gone.release()
        with pytest.raises(ValueError, match="released"):
            conn.send(gone)  # refused, nothing sent
        while len(listener.got) < 7:
            listener.arrived.clear()
            await asyncio.wait_for(listener.arrived.wait(), 5)
        assert listener.got == [
            (MessageType.TEXT, b"text"),
            (MessageType.BINARY, b"binary"),
            (MessageType.BINARY, b"as binary"),
            (MessageType.TEXT, b"as text"),
            (MessageType.TEXT, b"as text too"),
            (MessageType.BINARY, b"as binary too"),
            (MessageType.BINARY, b"view"),
        ]
        await conn.close()
        assert listener.closed == (1000, "")
        assert listener.calls == ["connect"] + ["message"] * 7 + ["close"]


async def test_listener_to_listener_context_manager(
    echo_listener_server: blazews.Server,
) -> None:
    async with blazews.connect_listener(Recorder, url(echo_listener_server)) as (conn, listener):
        conn.send(b"ping-pong")
        await asyncio.wait_for(listener.arrived.wait(), 5)
        assert listener.got == [(MessageType.BINARY, b"ping-pong")]
    assert conn.state is blazews.State.CLOSED
    assert listener.closed == (1000, "")


@pytest.mark.parametrize("size", [1 << 20, 16 << 20])
async def test_large_messages_through_the_listener(size: int) -> None:
    payload = os.urandom(size)
    async with (
        blazews.serve_listener(
            Echo, "127.0.0.1", 0, max_message_size=size, compression=None
        ) as server,
        blazews.connect_listener(
            Recorder, url(server), max_message_size=size, compression=None
        ) as (conn, listener),
    ):
        conn.send(payload)
        await asyncio.wait_for(listener.arrived.wait(), 30)
        assert listener.got == [(MessageType.BINARY, payload)]
        internal = only_connection(server)
        await asyncio.sleep(0.01)
        assert internal._rx._rbuf is None  # idle: the large buffer is gone


def test_listener_echo_on_uvloop() -> None:
    async def main() -> None:
        async with blazews.serve_listener(Echo, "127.0.0.1", 0) as server:
            async with blazews.connect_listener(Recorder, url(server)) as (conn, listener):
                for message in [b"a", b"b" * 100_000, "c"]:
                    listener.arrived.clear()
                    conn.send(message)
                    await asyncio.wait_for(listener.arrived.wait(), 5)
                assert [m for _, m in listener.got] == [b"a", b"b" * 100_000, b"c"]
                await asyncio.sleep(IDLE_RELEASE_DELAY + 0.05)  # the sweep
                internal = only_connection(server)
                assert internal._rx._rbuf is None

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# -- borrowed payloads -----------------------------------------------------------------


async def test_payload_is_borrowed_and_released_after_the_callback() -> None:
    views: list[tuple[bool, bytes]] = []

    class Borrower(Recorder):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            internal = conn._conn
            views.append((payload.obj is internal._rx._rbuf, bytes(payload)))
            super().on_message(conn, kind, payload)

    async with blazews.serve_listener(Borrower, "127.0.0.1", 0, compression=None) as server:
        async with blazews.connect(url(server), compression=None) as client:
            await client.send(b"first")
            await client.send(b"second")
            await asyncio.sleep(0.05)
            internal = only_connection(server)
            listener = internal.listener
            assert isinstance(listener, Borrower)
            # A view of the receive buffer itself: no copy was made.
            assert views == [(True, b"first"), (True, b"second")]
            # Kept past the callback: released, unusable.
            for view in listener.kept:
                with pytest.raises(ValueError):
                    bytes(view)
            # The copy made in the callback is intact.
            assert listener.got == [(MessageType.BINARY, b"first"), (MessageType.BINARY, b"second")]
            assert internal._rx._rbuf is None


async def test_fragmented_and_compressed_messages_are_views_of_bytes() -> None:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    async with blazews.serve_listener(factory, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server)) as client:
            assert client.protocol.extensions  # compressed
            await client.send("ünïcödé" * 1000)
            await asyncio.wait_for(made[0].arrived.wait(), 5)
        _reader, writer = await raw_client(server.port)
        writer.write(masked(BINARY, b"ab", fin=False) + masked(CONT, b"cd"))
        await asyncio.wait_for(made[1].arrived.wait(), 5)
        writer.close()
    assert made[0].got == [(MessageType.TEXT, "ünïcödé".encode() * 1000)]
    assert made[1].got == [(MessageType.BINARY, b"abcd")]


async def test_sending_a_borrowed_payload_is_safe_whatever_happens_next() -> None:
    """The echo's payload is copied when sent: later reads cannot change it."""
    async with blazews.serve_listener(Echo, "127.0.0.1", 0, compression=None) as server:
        reader, writer = await raw_client(server.port)
        payloads = [bytes([i]) * 3000 for i in range(20)]
        writer.write(b"".join(masked(BINARY, p) for p in payloads))
        echoed: list[bytes] = []
        data = b""
        while len(echoed) < 20:
            data += await asyncio.wait_for(reader.read(65536), 5)
            frames, data = split_frames(data)
            echoed += [f.payload for f in frames]
        assert echoed == payloads
        writer.close()


def split_frames(data: bytes) -> tuple[list[Any], bytes]:
    """Complete frames parsed from ``data``, and the rest."""
    frames: list[Any] = []
    pos = 0
    while len(data) - pos >= 2:
        n = data[pos + 1] & 0x7F
        hlen = 2
        if n == 126:
            if len(data) - pos < 4:
                break
            (n,) = struct.unpack_from("!H", data, pos + 2)
            hlen = 4
        elif n == 127:
            if len(data) - pos < 10:
                break
            (n,) = struct.unpack_from("!Q", data, pos + 2)
            hlen = 10
        if len(data) - pos < hlen + n:
            break
        frames += parse_frames(data[pos : pos + hlen + n])
        pos += hlen + n
    return frames, data[pos:]


# -- callbacks ------------------------------------------------------------------------


async def test_messages_sent_with_the_request_come_after_on_connect() -> None:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    async with blazews.serve_listener(factory, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + masked(TEXT, b"early")
            + masked(CLOSE, struct.pack("!H", 1000))
        )
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await asyncio.wait_for(made[0].done.wait(), 5)
    assert made[0].calls == ["connect", "message", "close"]
    assert made[0].got == [(MessageType.TEXT, b"early")] and made[0].closed == (1000, "")


async def test_rejected_handshake_makes_no_listener() -> None:
    made: list[Listener] = []

    def factory() -> Listener:
        made.append(Recorder())
        return made[-1]

    def refuse(conn: Any, request: Any) -> Any:
        return conn.reject(403, "no")

    async with blazews.serve_listener(factory, "127.0.0.1", 0, process_request=refuse) as server:
        with pytest.raises(InvalidStatus):
            await blazews.connect_listener(Recorder, url(server))
    assert made == []


async def test_callback_exception_closes_with_1011(caplog: Any) -> None:
    class Broken(Listener):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            raise RuntimeError("bug")

    caplog.set_level(logging.ERROR, "blazews")
    async with blazews.serve_listener(Broken, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server)) as client:
            await client.send(b"boom")
            await client.send(b"ignored")
            await client.wait_closed()
            assert client.close_code == 1011
    assert "listener on_message failed" in caplog.text


async def test_ping_pong_callbacks_and_ping_futures() -> None:
    async with blazews.serve_listener(Recorder, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server), ping_interval=None) as client:
            pong = await client.ping(b"hello")
            await asyncio.wait_for(pong, 5)
            internal = only_connection(server)
            listener = internal.listener
            assert isinstance(listener, Recorder) and listener.conn is not None
            assert listener.pings == [b"hello"]
            latency = await asyncio.wait_for(listener.conn.ping(b"back"), 5)
            assert latency > 0 and listener.conn.latency == latency
            assert listener.pongs == [b"back"]


async def test_close_from_a_callback_with_code_and_reason() -> None:
    class Closer(Listener):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            if bytes(payload) == b"bye":
                future = conn.close(4001, "asked to")
                assert isinstance(future, asyncio.Future)
                with pytest.raises(ConnectionClosed):
                    conn.send(b"too late")

    async with blazews.serve_listener(Closer, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server)) as client:
            await client.send(b"bye")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), 5)
            assert client.close_code == 4001 and client.close_reason == "asked to"


async def test_server_close_reaches_a_client_listener() -> None:
    async def wait(conn: Any) -> None:
        await conn.wait_closed()

    server = await blazews.serve(wait, "127.0.0.1", 0)
    conn, listener = await blazews.connect_listener(Recorder, url(server))
    server.close()
    await server.wait_closed()
    await asyncio.wait_for(listener.done.wait(), 5)
    assert listener.closed == (1001, "server shutting down")
    with pytest.raises(ConnectionClosedOK):
        conn.send(b"x")
    await conn.wait_closed()


async def test_the_connection_underneath_has_no_queue(
    echo_listener_server: blazews.Server,
) -> None:
    async with blazews.connect(url(echo_listener_server)):
        await asyncio.sleep(0.05)
        internal = only_connection(echo_listener_server)
        # Not a coroutine Connection with its message API switched off: it has none.
        assert not isinstance(internal, blazews.Connection)
        for name in ("recv", "read_message", "read_message_into", "_queue", "max_queue"):
            assert not hasattr(internal, name), name
        handle = internal.handle
        assert handle.remote_address is not None and handle.local_address is not None
        assert handle.request is not None and handle.response is not None
        assert handle.request_headers is not None and handle.response_headers is not None
        assert handle.subprotocol is None and handle.transport is internal.transport
        assert handle.close_code is None and handle.close_reason is None
        assert handle.protocol is internal.protocol and "OPEN" in repr(handle)


# -- batches and flow control --------------------------------------------------------


async def test_a_batch_of_100_frames_is_dispatched_in_one_read_and_answered_in_one_write(
    monkeypatch: Any,
) -> None:
    from blazews.asyncio.listener import _ServerListenerConnection

    reads: list[int] = []  # the messages the listener had got before each read

    def counting(self: _ServerListenerConnection, nbytes: int) -> None:
        reads.append(len(getattr(self.listener, "got", [])))
        self._rx._lend_read(nbytes)

    # (The default loop looks buffer_updated up on each read.)
    monkeypatch.setattr(_ServerListenerConnection, "buffer_updated", counting)

    class EchoRecorder(Recorder):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            self.got.append((kind, bytes(payload)))
            conn.send(payload)

    async with blazews.serve_listener(EchoRecorder, "127.0.0.1", 0, compression=None) as server:
        reader, writer = await raw_client(server.port)
        await asyncio.sleep(0.05)
        internal = only_connection(server)
        writes: list[int] = []
        transport = internal.transport
        original_write = transport.write

        def counting_write(data: Any) -> None:
            writes.append(len(data))
            original_write(data)

        monkeypatch.setattr(transport, "write", counting_write)
        listener = internal.listener
        assert isinstance(listener, EchoRecorder)
        reads.clear()
        writer.write(b"".join(masked(BINARY, b"%03d" % i) for i in range(100)))
        data = b""
        while len(data) < 100 * 5:
            data += await asyncio.wait_for(reader.read(65536), 5)
        echo_writes = list(writes)
        writer.close()
    assert [p for _, p in listener.got] == [b"%03d" % i for i in range(100)]
    assert [f.payload for f in parse_frames(data)] == [b"%03d" % i for i in range(100)]
    assert reads and reads[0] == 0  # the first read found none dispatched yet
    if len(reads) == 1:  # loopback delivered the one write in one read
        assert reads == [0] and echo_writes == [500]  # 100 callbacks, one write


async def test_flow_control_is_writing_paused_then_on_writable() -> None:
    class Producer(Recorder):
        writable = 0

        def on_connect(self, conn: ListenerConnection) -> None:
            super().on_connect(conn)
            while not conn.is_writing_paused:
                conn.send(b"x" * 65536)

        def on_writable(self, conn: ListenerConnection) -> None:
            self.writable += 1
            assert not conn.is_writing_paused

    async with blazews.serve_listener(Producer, "127.0.0.1", 0, compression=None) as server:
        reader, writer = await raw_client(server.port)
        await asyncio.sleep(0.1)
        internal = only_connection(server)
        listener = internal.listener
        assert isinstance(listener, Producer) and listener.conn is not None
        assert listener.conn.is_writing_paused and listener.writable == 0
        total = 0
        while listener.writable == 0:
            total += len(await asyncio.wait_for(reader.read(1 << 20), 5))
        assert total > 0 and not listener.conn.is_writing_paused
        writer.close()


async def test_keepalive_and_the_idle_connection(echo_listener_server: blazews.Server) -> None:
    async with blazews.serve_listener(Echo, "127.0.0.1", 0, ping_interval=0.02) as server:
        reader, writer = await raw_client(server.port)
        data = await asyncio.wait_for(reader.readexactly(2), 5)  # a keepalive ping
        assert data[0] == 0x80 | PING
        internal = only_connection(server)
        assert internal._rx._rbuf is None  # idle: no receive buffer held
        writer.close()


async def _wait_open(server: blazews.Server) -> Any:
    for _ in range(200):
        if server.connections:
            conn = only_connection(server)
            if conn.protocol.state is blazews.State.OPEN:
                return conn
        await asyncio.sleep(0.005)
    raise AssertionError("no open connection")


async def test_an_idle_listener_connection_holds_no_task_queue_or_parser() -> None:
    async with blazews.serve_listener(Echo, "127.0.0.1", 0, ping_interval=None) as server:
        reader, writer = await raw_client(server.port)
        conn = await _wait_open(server)
        writer.write(masked(BINARY, b"hello"))
        (echo,) = parse_frames(await asyncio.wait_for(reader.readexactly(7), 5))
        assert (echo.opcode, echo.payload) == (BINARY, b"hello")
        await asyncio.sleep(0.05)
        assert conn._task is None  # no handler task: the callbacks do the work
        assert not hasattr(conn, "_queue") and conn._rx._rbuf is None  # no queue at all
        assert conn.protocol._parser is None  # the request parser went with the handshake
        assert conn.request.headers._index is None  # the lookup index too...
        assert conn.request.headers["upgrade"] == "websocket"  # ...rebuilt on demand
        assert not hasattr(conn, "__dict__") or conn.__dict__ == {}
        writer.close()
        for _ in range(200):
            if not server.connections:
                break
            await asyncio.sleep(0.005)
        assert not server.connections  # forgotten once closed, with no task to do it


async def test_a_coroutine_connection_keeps_one_task_and_accepts_user_attributes() -> None:
    seen: list[Any] = []

    async def handler(conn: Any) -> None:
        conn.user = "alice"  # applications hang their own state on connections
        seen.append(conn)
        async for message in conn:
            await conn.send(message)

    async with blazews.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        async with blazews.connect(url(server)) as client:
            await client.send(b"x")
            assert await client.recv() == b"x"
            (conn,) = seen
            assert conn.user == "alice"
            assert conn._task is not None and not conn._task.done()  # the handler's
            assert conn._queue == []
            assert conn.request.headers._index is None
    assert conn._task.done()
    assert not server.connections


async def test_hooks_run_in_a_task_that_ends_with_the_handshake() -> None:
    calls: list[str] = []

    async def process_request(conn: Any, request: Any) -> None:
        await asyncio.sleep(0)
        calls.append(request.path)

    async with (
        blazews.serve_listener(
            Echo, "127.0.0.1", 0, ping_interval=None, process_request=process_request
        ) as server,
        blazews.connect(url(server) + "hooked") as client,
    ):
        await client.send(b"y")
        assert await client.recv() == b"y"
        conn = only_connection(server)
        assert calls == ["/hooked"]
        assert conn._task is None  # the hook's task is over; no handler task
    assert not server.connections


async def test_a_listener_that_raised_gets_nothing_more_but_on_close(caplog: Any) -> None:
    calls: list[str] = []

    class Broken(Listener):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            calls.append(bytes(payload).decode())
            raise RuntimeError("bug")

        def on_ping(self, conn: ListenerConnection, payload: bytes) -> None:
            calls.append("ping")

        def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
            calls.append(f"close {code}")

    caplog.set_level(logging.CRITICAL, "blazews")
    async with blazews.serve_listener(Broken, "127.0.0.1", 0, ping_interval=None) as server:
        reader, writer = await raw_client(server.port)
        # In one write, so in one read: the failure happens mid-batch.
        writer.write(masked(BINARY, b"one") + masked(BINARY, b"two") + masked(PING, b"p"))
        data = await asyncio.wait_for(reader.read(1024), 5)
        assert parse_frames(data)[0].opcode == CLOSE
        writer.write(masked(BINARY, b"three") + masked(CLOSE, struct.pack("!H", 1000)))
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        for _ in range(200):
            if calls and calls[-1].startswith("close"):
                break
            await asyncio.sleep(0.005)
    assert calls == ["one", "close 1000"]
