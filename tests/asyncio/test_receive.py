"""The asyncio receive path: pooled buffers, in-place parsing, batch and direct delivery.

The connection is an ``asyncio.BufferedProtocol``: the loop reads into a pooled buffer,
the core parses it in place (``Protocol.receive_into_buffer``), an incomplete frame is
kept (moved to the front only when needed, in a larger buffer when it needs one), and
the buffer goes back to the pool when a read leaves nothing pending. Tests here drive
``get_buffer``/``buffer_updated`` by hand, or run over loopback sockets.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
from typing import Any

import pytest
import uvloop

import blazews
from blazews import BufferTooSmall, ConnectionClosedError, MessageType
from blazews.asyncio import _receive as receive_module
from blazews.asyncio.connection import RECEIVE_BUFFER_SIZE, Connection
from blazews.buffers import DEFAULT_BUFFER_POOL
from blazews.options import ClientOptions, ConnectionOptions
from blazews.sansio.client import ClientProtocol
from blazews.sansio.handshake import accept_key
from blazews.sansio.protocol import Protocol, Side
from blazews.sansio.uri import parse_uri
from tests.helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    TEXT,
    RecordingTransport,
    close_payload,
    echo_handler,
    feed,
    frame,
    parse_frames,
)


async def test_compiled_read_path_is_live_in_the_default_build() -> None:
    # Every read of every asyncio connection goes through ReadPath; a compiled build
    # that quietly fell back to the pure one would lose its speed, not its tests.
    from blazews.asyncio import _readpath_py
    from blazews.asyncio.listener import ListenerConnection, _ClientListenerConnection

    assert issubclass(receive_module.ReceiveBuffer, receive_module.ReadPath)
    assert not issubclass(Connection, receive_module.ReadPath)  # owned, not inherited
    assert issubclass(ListenerConnection, receive_module.SendHandle)
    # The transport is handed the read path's own methods (uvloop keeps them).
    conn = Connection(Protocol(Side.SERVER))
    assert conn.get_buffer == conn._rx.get_buffer
    assert conn.buffer_updated == conn._rx._queue_read
    listener_conn = _ClientListenerConnection(
        ClientProtocol(parse_uri("ws://localhost/")), ClientOptions()
    )
    assert listener_conn.buffer_updated == listener_conn._rx._lend_read
    if os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0"):
        assert receive_module.ReadPath is _readpath_py.ReadPath
    else:
        from blazews.asyncio import _readpath_c  # type: ignore[attr-defined]

        assert receive_module.ReadPath is _readpath_c.ReadPath
        assert receive_module.SendHandle is _readpath_c.SendHandle
        assert receive_module.LOOPS_HOLDING_VIEWS is _readpath_c.LOOPS_HOLDING_VIEWS
        assert type(receive_module.ReadPath.__dict__["get_buffer"]).__name__ != "function"
        for method in (conn.get_buffer, conn.buffer_updated, listener_conn.buffer_updated):
            assert type(getattr(method, "__func__", method)).__name__ != "function"


class GrowingConnection(Connection):
    """A Connection that reads no large payload into its own bytes object (see
    test_receive_direct_queue): its large frames grow the receive buffer and their
    payloads are lent to the queue, as frames the direct path leaves alone are (a
    fragmented or compressed message, a frame with less than 64 KiB still to come)."""

    __slots__ = ()
    _direct_queue = False


def open_connection(grow: bool = False, **kwargs: Any) -> Connection:
    """A server-side Connection, open, on a :class:`Transport` (``grow``: a
    :class:`GrowingConnection`)."""
    limit = kwargs.pop("max_message_size", 1 << 20)
    cls = GrowingConnection if grow else Connection
    conn = cls(Protocol(Side.SERVER, max_message_size=limit), ConnectionOptions(**kwargs))
    conn.connection_made(RecordingTransport())
    return conn


def masked(opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    return frame(opcode, payload, mask=os.urandom(4), **kwargs)


def messages(conn: Connection) -> list[tuple[int, bytes]]:
    queue = conn._queue
    out = [(m.type, bytes(m.data)) for m in queue]
    queue.clear()
    return out


# -- buffers ---------------------------------------------------------------------------


async def test_idle_connection_holds_no_receive_buffer() -> None:
    conn = open_connection()
    returned = DEFAULT_BUFFER_POOL.stats().returned
    assert conn._rx._rbuf is None  # nothing read yet
    view = conn.get_buffer(-1)
    assert len(view) == RECEIVE_BUFFER_SIZE
    data = masked(TEXT, b"hello") + masked(BINARY, b"world")
    view[: len(data)] = data
    conn.buffer_updated(len(data))
    assert messages(conn) == [(1, b"hello"), (2, b"world")]
    assert conn._rx._rbuf is None and conn._rx._rview is None
    assert DEFAULT_BUFFER_POOL.stats().returned == returned + 1  # back in the pool
    # An incomplete frame keeps the buffer until it is complete.
    data = masked(BINARY, b"x" * 300)
    feed(conn, data[:100])
    assert conn._rx._rbuf is not None
    feed(conn, data[100:])
    assert messages(conn) == [(2, b"x" * 300)]
    assert conn._rx._rbuf is None


async def test_connection_lost_gives_the_buffer_back() -> None:
    conn = open_connection()
    feed(conn, masked(BINARY, b"x" * 300)[:50])
    assert conn._rx._rbuf is not None
    conn.connection_lost(None)
    assert conn._rx._rbuf is None


async def test_offsets_advance_and_compaction_happens_only_when_needed() -> None:
    conn = open_connection()
    first = masked(BINARY, b"a" * 1000)
    second = masked(BINARY, b"b" * 1000)
    feed(conn, first + second[:10])
    # The incomplete frame fits where it is: it stays there.
    assert conn._rx._rstart == len(first) and conn._rx._rend == len(first) + 10
    feed(conn, second[10:])
    assert messages(conn) == [(2, b"a" * 1000), (2, b"b" * 1000)]
    # Near the end of the buffer the rest of a frame would not fit: moved to the front.
    filler = b"f" * (RECEIVE_BUFFER_SIZE - 8 - 500)
    third = bytes(range(256)) * 4
    data = masked(BINARY, third)
    feed(conn, masked(BINARY, filler) + data[:400])
    assert conn._rx._rstart == 0 and conn._rx._rend == 400
    assert bytes(conn._rx._rbuf[:400]) == data[:400]  # type: ignore[index]
    feed(conn, data[400:])
    assert messages(conn) == [(2, filler), (2, third)]


def borrowing_connection(**kwargs: Any) -> Connection:
    """A connection whose payloads are lent to a callback, not queued (as a Listener's)."""
    conn = open_connection(**kwargs)
    conn._borrow = True
    conn.protocol.message_sink = lambda kind, payload: payload.release()
    return conn


async def test_buffer_grows_to_the_frame_size_within_the_limit() -> None:
    conn = borrowing_connection(max_message_size=200_000)
    payload = os.urandom(150_000)
    data = masked(BINARY, payload)
    feed(conn, data[:RECEIVE_BUFFER_SIZE])
    # The frame's size; a kept buffer may be a quarter larger, within the limit.
    assert len(data) <= len(conn._rx._rbuf) <= 200_000 + 14  # type: ignore[arg-type]
    feed(conn, data[RECEIVE_BUFFER_SIZE:])
    assert conn._rx._rbuf is not None  # kept while large frames may keep coming...
    await asyncio.sleep(0)
    assert conn._rx._rbuf is None  # ...and given back once a turn of the loop was idle


async def test_a_stream_of_large_frames_keeps_one_grown_buffer() -> None:
    conn = borrowing_connection()
    frames = [masked(BINARY, bytes([i]) * 20_000) for i in range(4)]
    feed(conn, frames[0][:RECEIVE_BUFFER_SIZE])
    grown = conn._rx._rbuf
    # With read-ahead: 256 KiB behind a frame smaller than that.
    assert grown is not None and len(grown) >= len(frames[0]) + 262144
    feed(conn, frames[0][RECEIVE_BUFFER_SIZE:] + frames[1] + frames[2][:100])
    feed(conn, frames[2][100:] + frames[3])
    assert conn._rx._rbuf is grown  # no buffer given back and grown again per frame


async def test_queued_large_frames_take_turns_with_stored_buffers(monkeypatch: Any) -> None:
    # Queued payloads of a grown buffer are views of it; the buffer goes with them and
    # back to the store when the last is read, and the connection goes on reading into
    # a stored buffer as large (its read-ahead kept): no allocation, no bytes per frame.
    kept = receive_module._LargeBuffers(8 << 20)
    monkeypatch.setattr(receive_module, "_LARGE_BUFFERS", kept)
    conn = open_connection()
    frames = [masked(BINARY, bytes([i]) * 20_000) for i in range(11)]
    feed(conn, frames[0][:RECEIVE_BUFFER_SIZE])
    first = conn._rx._rbuf
    assert first is not None
    # Five payloads: over a quarter of the buffer, worth lending it for.
    feed(conn, frames[0][RECEIVE_BUFFER_SIZE:] + b"".join(frames[1:5]) + frames[5][:100])
    assert [m.data.obj for m in conn._queue] == [first] * 5  # lent
    second = conn._rx._rbuf
    assert second is not None and second is not first and len(second) == len(first)
    assert bytes(second[:100]) == frames[5][:100]  # the incomplete frame moved over
    out = bytearray(20_000)
    for i in range(5):
        assert kept.get(0, 1 << 30) is None  # a view of it is still queued
        assert await conn.read_message_into(out) == (MessageType.BINARY, 20_000)
        assert out == bytes([i]) * 20_000
    feed(conn, frames[5][100:] + b"".join(frames[6:11]))
    # The first buffer was stored when its last view was read: taken back now.
    assert conn._rx._rbuf is first
    assert [bytes(m.data) for m in conn._queue] == [bytes([i]) * 20_000 for i in range(5, 11)]
    for i in range(5, 11):
        assert await conn.recv() == bytes([i]) * 20_000
    assert kept.get(0, 1 << 30) is second


async def test_a_header_claiming_more_than_the_limit_allocates_nothing() -> None:
    conn = open_connection(max_message_size=1000)
    feed(conn, frame(BINARY, b"", mask=True, length=1001, with_payload=False))
    assert conn._rx._rbuf is None
    transport = conn.transport
    assert isinstance(transport, RecordingTransport) and transport.closed
    (close,) = parse_frames(transport.written)
    assert close.opcode == CLOSE and close.payload[:2] == struct.pack("!H", 1009)


async def test_without_a_limit_the_buffer_doubles_as_the_frame_arrives() -> None:
    conn = open_connection(grow=True, max_message_size=None)
    payload = os.urandom(5 << 20)
    data = masked(BINARY, payload)
    sizes = []
    pos = 0
    while pos < len(data):
        view = conn.get_buffer(-1)
        n = min(len(view), len(data) - pos)
        view[:n] = data[pos : pos + n]
        pos += n
        conn.buffer_updated(n)
        if conn._rx._rbuf is not None:
            sizes.append(len(conn._rx._rbuf))
            assert len(conn._rx._rbuf) <= max(2 * pos, (1 << 20) + 14) * 5 // 4  # not far ahead
    assert messages(conn) == [(2, payload)]
    assert 1 << 20 <= sizes[0] <= (1 << 20) * 5 // 4
    assert len(data) <= sizes[-1] <= len(data) * 5 // 4


async def test_large_buffers_are_shared_between_connections_when_idle(monkeypatch: Any) -> None:
    kept = receive_module._LargeBuffers(1 << 20)
    monkeypatch.setattr(receive_module, "_LARGE_BUFFERS", kept)
    first, second = open_connection(grow=True), open_connection(grow=True)
    payload = os.urandom(100_000)
    data = masked(BINARY, payload)
    feed(first, data[:20_000])
    buffer = first._rx._rbuf
    assert buffer is not None and len(buffer) == len(data) + 262144  # with read-ahead
    feed(first, data[20_000:])
    assert await first.recv() == payload  # the last view of it: the buffer is stored
    assert first._rx._rbuf is None and kept.get(len(buffer), len(buffer)) is buffer
    kept.put(buffer)
    feed(second, data[:20_000])
    assert second._rx._rbuf is buffer  # reused: no allocation for the next large frame
    feed(second, data[20_000:])
    await second.recv()
    # A buffer something still exports is not kept: nobody may read into it.
    view = memoryview(buffer)
    assert kept.get(0, 1 << 30) is buffer
    kept.put(buffer)
    assert kept.get(0, 1 << 30) is None
    view.release()
    # Nor beyond max_bytes, nor out of the size range asked for.
    kept.put(bytearray(600_000))
    kept.put(bytearray(600_000))
    assert kept.get(500_000, 700_000) is not None and kept.get(0, 1 << 30) is None
    kept.put(bytearray(100_000))
    assert kept.get(100_001, 200_000) is None and kept.get(50_000, 100_000) is not None


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100, 4096, 16383, 16384, 70000, None])
async def test_any_chunking_gives_the_same_messages(chunk: int | None) -> None:
    rng = random.Random(chunk)
    sizes = [0, 1, 5, 125, 126, 127, 255, 256, 257, 1000, 65535, 65536, 20000, 3]
    payloads = [rng.randbytes(size) for size in sizes]
    data = b"".join(masked(BINARY, p) for p in payloads)
    data += masked(TEXT, "é".encode() * 40, fin=False) + masked(CONT, b"!" * 70000)
    data += masked(PING, b"ping")
    conn = open_connection()
    feed(conn, data, chunk)
    expected = [(2, p) for p in payloads] + [(1, "é".encode() * 40 + b"!" * 70000)]
    assert messages(conn) == expected
    await asyncio.sleep(0)  # a grown buffer goes back after an idle turn of the loop
    assert conn._rx._rbuf is None
    transport = conn.transport
    assert isinstance(transport, RecordingTransport)
    assert [(f.opcode, f.payload) for f in parse_frames(transport.written)] == [(0xA, b"ping")]


# -- protocol errors through the buffered path ---------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(BINARY, b"unmasked"), 1002),
        (masked(TEXT, b"\xff\xfe"), 1007),
        (masked(TEXT, b"\xce", fin=False) + masked(CONT, b"\x41"), 1007),
        (masked(BINARY, b"x" * 1001), 1009),
        (masked(BINARY, b"x" * 600, fin=False) + masked(CONT, b"y" * 600), 1009),
        (masked(CONT, b"orphan"), 1002),
        (masked(PING, b"p", fin=False), 1002),
        (masked(CLOSE, close_payload(999)), 1002),
        (masked(0x3, b""), 1002),
        (masked(BINARY, b"", rsv=0x40), 1002),
    ],
    ids=[
        "unmasked",
        "bad-utf8",
        "bad-utf8-across-fragments",
        "too-big",
        "too-big-in-fragments",
        "orphan-continuation",
        "fragmented-ping",
        "bad-close-code",
        "reserved-opcode",
        "rsv-without-extension",
    ],
)
@pytest.mark.parametrize("chunk", [1, 5, None])
async def test_protocol_errors_close_with_their_code(data: bytes, code: int, chunk: int) -> None:
    conn = open_connection(max_message_size=1000)
    good = masked(BINARY, b"before")
    feed(conn, good + data + masked(BINARY, b"after"), chunk)
    assert messages(conn) == [(2, b"before")]
    error = conn.protocol.protocol_error
    assert error is not None and error.close_code == code
    transport = conn.transport
    assert isinstance(transport, RecordingTransport) and transport.closed
    close = parse_frames(transport.written)[-1]
    assert close.opcode == CLOSE and close.payload[:2] == struct.pack("!H", code)
    assert conn._rx._rbuf is None


# -- read_message_into: straight into the caller's buffer -----------------------------


async def test_read_message_into_a_waiting_buffer_makes_no_bytes_object(monkeypatch: Any) -> None:
    seen: list[type] = []
    original = Connection._fill_into

    def spy(self: Connection, opcode: int, data: Any) -> None:
        seen.append(type(data))
        original(self, opcode, data)

    monkeypatch.setattr(Connection, "_fill_into", spy)
    conn = open_connection()
    buf = bytearray(100)
    task = asyncio.ensure_future(conn.read_message_into(buf))
    await asyncio.sleep(0)
    assert conn._rx._into is not None  # waiting, its buffer offered to the receive path
    feed(conn, masked(TEXT, b"direct") + masked(BINARY, b"queued") + masked(BINARY, b"more"))
    assert seen == [memoryview]  # the first one borrowed, not copied into bytes
    assert [type(m.data) for m in conn._queue] == [bytes, bytes]  # the others copied out
    assert conn.protocol.message_sink is None
    assert await task == (MessageType.TEXT, 6)
    assert buf[:6] == b"direct"
    assert await conn.read_message_into(buf) == (MessageType.BINARY, 6)
    assert buf[:6] == b"queued"
    assert await conn.read_message_into(buf) == (MessageType.BINARY, 4)
    assert conn._rx._into is None and conn._rx._rbuf is None


async def test_a_waiting_buffer_too_small_queues_the_message() -> None:
    conn = open_connection()
    small = bytearray(3)
    task = asyncio.ensure_future(conn.read_message_into(small))
    await asyncio.sleep(0)
    feed(conn, masked(BINARY, b"too long") + masked(BINARY, b"ok"))
    with pytest.raises(BufferTooSmall):
        await task
    assert await conn.read_message() == (MessageType.BINARY, b"too long")
    assert await conn.read_message_into(small) == (MessageType.BINARY, 2)
    assert small[:2] == b"ok"


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "numpy"])
async def test_read_message_into_any_writable_buffer(kind: str) -> None:
    np = pytest.importorskip("numpy")
    storage = bytearray(64)
    buf: Any = {
        "bytearray": storage,
        "memoryview": memoryview(storage)[8:40],
        "numpy": np.zeros(16, dtype=np.uint16),
    }[kind]
    conn = open_connection()
    for waiting in (True, False):
        task = asyncio.ensure_future(conn.read_message_into(buf))
        if waiting:
            await asyncio.sleep(0)
        feed(conn, masked(BINARY, b"0123456789"))
        assert await task == (MessageType.BINARY, 10)
        assert bytes(memoryview(buf).cast("B")[:10]) == b"0123456789"
    with pytest.raises(TypeError):
        await conn.read_message_into(b"read-only")


async def test_read_message_into_too_small_while_waiting_keeps_the_message() -> None:
    conn = open_connection()
    task = asyncio.ensure_future(conn.read_message_into(bytearray(4)))
    await asyncio.sleep(0)
    feed(conn, masked(BINARY, b"too long") + masked(BINARY, b"next"))
    with pytest.raises(BufferTooSmall) as info:
        await task
    assert info.value.needed == 8
    big = bytearray(16)
    assert await conn.read_message_into(big) == (MessageType.BINARY, 8)
    assert big[:8] == b"too long"
    assert await conn.read_message_into(big) == (MessageType.BINARY, 4)


async def test_read_message_into_cancelled_after_the_copy_keeps_the_message() -> None:
    conn = open_connection()
    buf = bytearray(16)
    task = asyncio.ensure_future(conn.read_message_into(buf))
    await asyncio.sleep(0)
    feed(conn, masked(BINARY, b"kept"))  # copied into buf, the task not resumed yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await conn.read_message() == (MessageType.BINARY, b"kept")


async def test_read_message_into_on_a_closed_connection_raises() -> None:
    conn = open_connection()
    task = asyncio.ensure_future(conn.read_message_into(bytearray(16)))
    await asyncio.sleep(0)
    conn.connection_lost(None)
    with pytest.raises(ConnectionClosedError):
        await task


# -- the handshake's neighbours: bytes that come with it ------------------------------


def test_frames_after_the_101_in_the_same_read_are_parsed_in_place() -> None:
    client = ClientProtocol(parse_uri("ws://example.com/"))
    request = client.connect()
    client.send_request(request)
    key = request.headers["Sec-WebSocket-Key"]
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()
    later = frame(BINARY, b"later")
    buf = bytearray(response + frame(TEXT, b"one") + later[:3])
    used = client.receive_into_buffer(buf, 0, len(buf), True)
    assert used == len(buf) - 3  # the incomplete frame is the caller's
    events = client.events_received()
    assert [type(e).__name__ for e in events] == ["Response", "Message"]
    assert events[1].data == b"one" and type(events[1].data) is memoryview
    rest = bytearray(later)
    assert client.receive_into_buffer(rest, 0, len(rest)) == len(rest)
    assert [m.data for m in client.events_received()] == [b"later"]


async def test_frames_sent_with_the_request_are_parsed_once_accepted() -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(conn: Any) -> None:
        for _ in range(3):
            received.append(await conn.recv())
        done.set()

    async with blazews.serve(handler, "127.0.0.1", 0, compression=None) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16))
        big = masked(BINARY, b"z" * 5000)
        writer.write(request_bytes(key) + masked(BINARY, b"early") + big[:100])
        await reader.readuntil(b"\r\n\r\n")
        writer.write(big[100:] + masked(BINARY, b"late"))
        await asyncio.wait_for(done.wait(), 5)
        assert received == [b"early", b"z" * 5000, b"late"]
        writer.close()


def request_bytes(key: bytes) -> bytes:
    return (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


# -- over loopback --------------------------------------------------------------------


async def raw_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes(base64.b64encode(os.urandom(16))))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer


async def test_a_batch_of_100_frames_in_one_write_wakes_the_reader_once(
    monkeypatch: Any,
) -> None:
    reads: list[int] = []
    left_after_wait: list[int] = []  # messages still queued after each read that waited

    def counting_updated(self: Connection, nbytes: int) -> None:
        reads.append(nbytes)
        self._rx._queue_read(nbytes)

    monkeypatch.setattr(Connection, "buffer_updated", counting_updated)
    got: list[bytes] = []
    done = asyncio.Event()

    async def handler(conn: Any) -> None:
        while len(got) < 100:
            waits = conn._queue.pending() == 0
            got.append((await conn.read_message())[1])
            if waits:
                left_after_wait.append(conn._queue.pending())
        done.set()

    async with blazews.serve(handler, "127.0.0.1", 0, max_queue=128) as server:
        _reader, writer = await raw_client(server.port)
        await asyncio.sleep(0.05)  # the handler waits for the first message
        reads.clear()
        writer.write(b"".join(masked(BINARY, b"%03d" % i) for i in range(100)))
        await asyncio.wait_for(done.wait(), 5)
        writer.close()
    assert got == [b"%03d" % i for i in range(100)]
    if len(reads) == 1:  # loopback delivers one small write in one read
        assert left_after_wait == [99]  # all queued, then one wake-up


@pytest.mark.parametrize("size", [1 << 20, 16 << 20])
@pytest.mark.parametrize("api", ["read_message", "read_message_into"])
async def test_large_messages(size: int, api: str) -> None:
    payload = os.urandom(size)

    async def handler(conn: Any) -> None:
        if api == "read_message":
            _, data = await conn.read_message()
        else:
            buf = bytearray(size)
            _kind, n = await conn.read_message_into(buf)
            data = bytes(buf[:n])
        await conn.send(data)
        await conn.wait_closed()

    limit = size + 100
    async with blazews.serve(handler, "127.0.0.1", 0, max_message_size=limit) as server:
        async with blazews.connect(
            f"ws://127.0.0.1:{server.port}", max_message_size=limit, compression=None
        ) as conn:
            await conn.send(payload)
            assert await asyncio.wait_for(conn.recv(), 30) == payload
            assert conn._rx._rbuf is None


async def test_fragmented_message_over_the_wire() -> None:
    got: list[Any] = []
    done = asyncio.Event()

    async def handler(conn: Any) -> None:
        got.append(await conn.read_message())
        got.append(await conn.recv())
        done.set()

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        _reader, writer = await raw_client(server.port)
        parts = [b"a" * 10, b"b" * 70000, b"", b"c"]
        writer.write(masked(BINARY, parts[0], fin=False))
        for part in parts[1:-1]:
            await asyncio.sleep(0.01)
            writer.write(masked(CONT, part, fin=False))
        writer.write(masked(CONT, parts[-1]) + masked(TEXT, "ü".encode(), fin=False))
        await asyncio.sleep(0.01)
        writer.write(masked(CONT, "ß".encode()))
        await asyncio.wait_for(done.wait(), 5)
        writer.close()
    assert got == [(MessageType.BINARY, b"".join(parts)), "üß"]


async def test_protocol_error_over_the_wire_through_the_buffered_path() -> None:
    async def handler(conn: Any) -> None:
        await conn.wait_closed()

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        reader, writer = await raw_client(server.port)
        writer.write(masked(TEXT, b"ok") + masked(TEXT, b"\xc0\xaf"))
        data = await asyncio.wait_for(reader.read(), 5)
        (close,) = parse_frames(data)
        assert close.opcode == CLOSE and close.payload[:2] == struct.pack("!H", 1007)
        writer.close()


async def test_compressed_messages_through_the_buffered_path() -> None:
    async with blazews.serve(echo_handler, "127.0.0.1", 0) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}") as conn:
            assert conn.protocol.extensions  # permessage-deflate was negotiated
            for message in [b"x" * 100_000, "text " * 1000, os.urandom(30000), b""]:
                await conn.send(message)
                assert await conn.recv() == message


def test_uvloop_gives_the_buffer_back_once_the_read_is_over() -> None:
    async def main() -> None:
        async with blazews.serve(echo_handler, "127.0.0.1", 0) as server:
            async with blazews.connect(f"ws://127.0.0.1:{server.port}") as conn:
                for size in (10, 100_000):
                    payload = os.urandom(size)
                    await conn.send(payload)
                    assert await conn.recv() == payload
                await asyncio.sleep(receive_module.IDLE_RELEASE_DELAY + 0.05)
                assert conn._rx._rbuf is None
                (server_conn,) = server.connections
                assert server_conn._rx._rbuf is None

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_uvloop_parks_an_emptied_buffer_until_the_sweep(monkeypatch: Any) -> None:
    # uvloop holds the view it read into until buffer_updated returns: the emptied
    # buffer stays, with no callback per read, until one sweep per loop gives back
    # every parked buffer that is still empty. (A delay long enough that no sweep
    # falls between a read and the check of a slow machine.)
    monkeypatch.setattr(receive_module, "IDLE_RELEASE_DELAY", 0.5)

    async def main() -> None:
        async with blazews.serve(echo_handler, "127.0.0.1", 0) as server:
            async with blazews.connect(f"ws://127.0.0.1:{server.port}") as conn:
                await asyncio.sleep(receive_module.IDLE_RELEASE_DELAY + 0.05)
                loop = asyncio.get_running_loop()
                assert type(loop) in receive_module.LOOPS_HOLDING_VIEWS
                for _ in range(20):
                    await conn.send(b"ping")
                    assert await conn.recv() == b"ping"
                    assert conn._rx._rbuf is not None  # parked, not yet given back
                (server_conn,) = server.connections
                parked = receive_module._PARKED[loop]
                # Each parked once at most, however many reads emptied its buffer
                # (a connection that needed a buffer may have swept the other's).
                refs = [id(ref()) for ref in parked.conns]
                assert len(refs) == len(set(refs)) and id(conn) in refs
                await asyncio.sleep(receive_module.IDLE_RELEASE_DELAY + 0.05)
                assert conn._rx._rbuf is None and server_conn._rx._rbuf is None
                assert parked.conns == []
                # A connection that needs a buffer from the pool sweeps at once: the
                # parked one goes back and is passed along (a burst of connections
                # does not take one each while the timer runs).
                await conn.send(b"ping")
                assert await conn.recv() == b"ping"
                assert conn._rx._rbuf is not None  # parked
                async with blazews.connect(f"ws://127.0.0.1:{server.port}"):
                    assert conn._rx._rbuf is None  # swept when the new client read

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_parked_buffers_do_not_keep_a_closed_loop_alive() -> None:
    import gc
    import weakref

    async def main() -> None:
        async with blazews.serve(echo_handler, "127.0.0.1", 0) as server:
            async with blazews.connect(f"ws://127.0.0.1:{server.port}") as conn:
                await conn.send(b"x")
                assert await conn.recv() == b"x"
                assert receive_module._PARKED[asyncio.get_running_loop()].conns

    loop = uvloop.new_event_loop()
    loop.run_until_complete(main())  # returns before the sweep: parked refs left
    loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None


# -- large payloads lent from the receive buffer ------------------------------------


async def test_large_payloads_are_lent_then_the_buffer_is_stored(monkeypatch: Any) -> None:
    kept = receive_module._LargeBuffers(8 << 20)
    monkeypatch.setattr(receive_module, "_LARGE_BUFFERS", kept)
    conn = open_connection(grow=True, max_message_size=None)
    big = [os.urandom(300_000), os.urandom(300_000)]
    data = masked(BINARY, big[0]) + masked(BINARY, big[1]) + masked(BINARY, b"small")
    feed(conn, data[:RECEIVE_BUFFER_SIZE])  # the buffer grows for the first frame
    grown = conn._rx._rbuf
    assert grown is not None and len(grown) >= receive_module._LEND_MIN
    tail = masked(TEXT, "é".encode() * 1000)
    feed(conn, data[RECEIVE_BUFFER_SIZE:] + tail[:10])  # three frames and a bit
    queued = list(conn._queue)
    assert [type(m.data) for m in queued] == [memoryview] * 3  # lent, not copied
    assert queued[0].data.obj is grown
    assert conn._rx._rbuf is not grown  # given away with them; the 10 bytes moved on
    feed(conn, tail[10:])
    # The first frame completed alone in `grown`: given away with it. The second
    # grew another buffer, which "small" shares.
    second = queued[1].data.obj
    assert second is not grown and queued[2].data.obj is second

    def stored(buffer: bytearray) -> bool:
        return any(b is buffer for b in kept._bufs)

    buf = bytearray(400_000)
    assert await conn.read_message_into(buf) == (MessageType.BINARY, 300_000)
    assert buf[:300_000] == big[0]
    assert stored(grown)  # its only view consumed: stored for reuse
    assert await conn.read_message() == (MessageType.BINARY, big[1])
    assert not stored(second)  # "small" is still a view of it
    assert await conn.recv() == b"small"
    assert stored(second)  # the last view gone
    assert await conn.recv() == "é" * 1000


async def test_lent_payloads_survive_the_connection_reading_on(monkeypatch: Any) -> None:
    conn = open_connection(max_message_size=None)
    payloads = [bytes([i]) * 400_000 for i in range(3)]
    for p in payloads:  # each one arrives while the previous ones are still queued
        feed(conn, masked(BINARY, p), chunk=100_000)
    for p in payloads:
        assert await conn.read_message() == (MessageType.BINARY, p)


async def test_a_sparse_grown_buffer_is_not_pinned_by_its_queued_payloads() -> None:
    # One 20 KB message in a buffer grown to 20 KB + 256 KiB of read-ahead: a queued
    # view would hold all of it (x14): the payload is copied and the buffer kept.
    conn = open_connection()
    payload = os.urandom(20_000)
    data = masked(BINARY, payload)
    feed(conn, data[:RECEIVE_BUFFER_SIZE])
    grown = conn._rx._rbuf
    feed(conn, data[RECEIVE_BUFFER_SIZE:])
    (message,) = conn._queue
    assert type(message.data) is bytes and message.data == payload
    assert conn._rx._rbuf is grown  # not given away; back to the store after an idle turn
    await asyncio.sleep(0)
    assert conn._rx._rbuf is None


@pytest.mark.parametrize("borrow", [False, True], ids=["queue", "listener"])
async def test_a_read_that_fills_the_buffer_gets_read_ahead(borrow: bool) -> None:
    # A burst of small frames: the read filled the 16 KiB buffer, so the next read
    # goes into one with 64 KiB more room; queued payloads from it are copies (not
    # views pinning it), and it goes back once the connection is idle.
    conn = borrowing_connection() if borrow else open_connection(max_queue=10_000)
    got: list[bytes] = []
    if borrow:
        conn.protocol.message_sink = lambda kind, payload: got.append(bytes(payload))
    payloads = [bytes([i % 251]) * 1000 for i in range(40)]
    data = b"".join(masked(BINARY, p) for p in payloads)
    view = conn.get_buffer(-1)
    assert len(view) == RECEIVE_BUFFER_SIZE
    view[:] = data[:RECEIVE_BUFFER_SIZE]
    conn.buffer_updated(RECEIVE_BUFFER_SIZE)  # filled: a partial frame is left
    kept = RECEIVE_BUFFER_SIZE % (1000 + 8)  # 1000-byte frames, 8-byte headers
    view = conn.get_buffer(-1)
    assert len(conn._rx._rbuf) == RECEIVE_BUFFER_SIZE + 65536  # type: ignore[arg-type]
    assert bytes(conn._rx._rbuf[:kept]) == data[RECEIVE_BUFFER_SIZE - kept : RECEIVE_BUFFER_SIZE]  # type: ignore[index]
    rest = data[RECEIVE_BUFFER_SIZE:]
    view[: len(rest)] = rest
    conn.buffer_updated(len(rest))
    if borrow:
        assert got == payloads
    else:
        assert all(type(m.data) is bytes for m in conn._queue)
        assert [m.data for m in conn._queue] == payloads
        conn._queue.clear()
    await asyncio.sleep(0)
    assert conn._rx._rbuf is None
