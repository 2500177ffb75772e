"""The per-message shortcuts of the read and send paths give what the general paths give.

Each shortcut skips work for the common case of a message (a view made per read, a
buffer export per frame built, a method looked up by name per write); each test here
puts the cases next to it through the same call and checks the outcome. Like every
test, they run in both builds and at every SIMD level.
"""

from __future__ import annotations

import array
import asyncio
import os
from typing import Any

import pytest
import uvloop

import blazews
from blazews.asyncio import _receive as receive_module
from blazews.asyncio.connection import Connection
from blazews.sansio.protocol import Protocol, Side
from tests.helpers import (
    PING,
    RecordingTransport,
    client,
    echo_handler,
    feed,
    frame,
    parse_frames,
    run_on,
    sent_frames,
    server,
)

# Around each header length boundary, and around the 64 KiB past which a frame is
# built with the GIL let go (the shortcut stops short of it).
SIZES = [0, 1, 125, 126, 4096, 65535, 65536, 70000]


def payload_kinds(data: bytes) -> dict[str, Any]:
    """``data`` as each kind of object an application may send."""
    n = len(data)
    spread = bytearray(2 * n)
    spread[::2] = data
    kinds: dict[str, Any] = {
        "bytes": data,
        "bytearray": bytearray(data),
        "view": memoryview(data),
        "view of part": memoryview(b"ab" + data + b"cd")[2 : 2 + n],
        "signed view": memoryview(data).cast("b"),
        "char view": memoryview(data).cast("c"),
        "strided view": memoryview(spread)[::2],
    }
    if n % 2 == 0 and n:
        kinds["2-D view"] = memoryview(bytearray(data)).cast("B", (n // 2, 2))
    if n % 4 == 0:
        kinds["int view"] = memoryview(array.array("i", data))
    return kinds


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("side", ["server", "client"])
def test_every_kind_of_payload_makes_the_same_frame(size: int, side: str) -> None:
    data = os.urandom(size)
    for name, payload in payload_kinds(data).items():
        proto = server() if side == "server" else client()
        proto.send_binary(payload)
        (sent,) = sent_frames(proto)  # (b"".join: each piece one contiguous buffer)
        assert (sent.opcode, sent.fin, sent.masked) == (2, True, side == "client"), name
        assert sent.payload == data, name


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_listener_sends_strided_views_of_any_size(loop: str, compression: str | None) -> None:
    # A strided view is sent as one contiguous piece: a server sends a large payload
    # as itself, and neither the transports nor the compressors take strides.
    data = os.urandom(80_000)
    got: list[Any] = []

    class Echo(blazews.Listener):
        def on_message(self, conn: Any, kind: Any, payload: Any) -> None:
            size = int(bytes(payload))
            conn.send(memoryview(data)[: 2 * size : 2])

    async def main() -> None:
        server = await blazews.serve_listener(Echo, "127.0.0.1", 0, compression=compression)
        try:
            url = f"ws://127.0.0.1:{server.port}"
            async with blazews.connect(url, compression=compression) as conn:
                for size in (10, 1000, 20_000, 40_000):
                    await conn.send(str(size))
                    got.append((size, await conn.recv()))
        finally:
            server.close()

    run_on(loop, main)
    assert [(size, bytes(m)) for size, m in got] == [
        (size, data[: 2 * size : 2]) for size in (10, 1000, 20_000, 40_000)
    ]


def test_a_released_view_is_refused_at_every_size() -> None:
    for size in (10, 70000):
        view = memoryview(bytearray(size))
        view.release()
        for proto in (server(), client()):
            with pytest.raises(ValueError):
                proto.send_binary(view)
            assert proto.data_to_send() == []


def test_on_uvloop_an_emptied_buffer_is_read_into_through_its_own_view(
    monkeypatch: Any,
) -> None:
    # uvloop holds the view it read into until buffer_updated returns: an emptied
    # buffer is then handed out whole through the view the connection keeps, not a
    # new one per read. A frame that outgrows the buffer while uvloop still holds
    # that view moves to a larger one all the same, and the sweep still gives the
    # buffer back. (A delay long enough that no sweep falls between the checks.)
    monkeypatch.setattr(receive_module, "IDLE_RELEASE_DELAY", 0.5)

    async def main() -> None:
        async with blazews.serve(echo_handler, "127.0.0.1", 0, compression=None) as server:
            async with blazews.connect(f"ws://127.0.0.1:{server.port}") as conn:
                # (The last few small: a grown buffer goes back a turn after its read.)
                for size in (10, 100_000, 10, 300_000, 10, 10, 10):
                    payload = os.urandom(size)
                    await conn.send(payload)
                    assert await conn.recv() == payload
                (server_conn,) = server.connections
                assert conn._rx._holds_views and server_conn._rx._holds_views
                # (The server's buffer may be gone: on one loop, a connection that
                # takes a buffer sweeps the others' parked ones.)
                rx = conn._rx
                assert rx._rbuf is not None and rx._rstart == rx._rend == 0  # parked
                assert conn.get_buffer(-1) is conn._rx._rview
                await asyncio.sleep(receive_module.IDLE_RELEASE_DELAY + 0.1)
                assert conn._rx._rbuf is None and server_conn._rx._rbuf is None

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()


async def test_on_a_loop_that_lets_go_each_read_gets_a_view_of_its_own() -> None:
    # The default loop lets go of the view before buffer_updated: the connection
    # releases it there, so it must never be the view the connection keeps.
    conn = Connection(Protocol(Side.SERVER))
    conn.connection_made(RecordingTransport())
    for _ in range(3):
        view = conn.get_buffer(-1)
        assert view is not conn._rx._rview
        ping = frame(PING, b"hi", mask=os.urandom(4))
        view[: len(ping)] = ping
        conn.buffer_updated(len(ping))
        with pytest.raises(ValueError):
            view.tobytes()  # released by the connection
    assert not conn._rx._holds_views


class DictTransport(RecordingTransport):
    """A recording transport whose instances have a dict: one may replace a method."""


async def test_writes_reach_the_transports_own_methods_whatever_their_type() -> None:
    # The write path takes write and is_closing from the transport's type when its
    # instances cannot replace them; where they can, an instance's own are used.
    # Connections on transports of different types take turns, each reading a ping
    # and writing its pong.
    replaced: list[bytes] = []
    plain = DictTransport()
    patched = DictTransport()
    patched.write = replaced.append  # type: ignore[method-assign]
    closing = DictTransport()
    closing.closed = True
    slotted = RecordingTransport()
    conns = []
    for transport in (plain, patched, closing, slotted):
        conn = Connection(Protocol(Side.SERVER))
        conn.connection_made(transport)
        conns.append(conn)
    for round_ in range(3):
        for conn in conns:
            feed(conn, frame(PING, b"%d" % round_, mask=os.urandom(4)))
    pongs = [b"\x8a\x01%d" % i for i in range(3)]
    assert plain.written == pongs
    assert [bytes(p) for p in replaced] == pongs and patched.written == []
    assert closing.written == []
    assert slotted.written == pongs
    assert [f.payload for f in parse_frames(slotted.written)] == [b"0", b"1", b"2"]
