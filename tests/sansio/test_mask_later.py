"""Large client frames masked on their way out, a piece at a time (``MaskLater``).

The core hands a client frame whose payload reaches ``Protocol.mask_later`` to the
front end unmasked; the blocking client and the asyncio client mask it piece by piece
through a pooled 1 MiB buffer while they write. The tests check the bytes on the wire
against a reference parser (pieces of awkward sizes, so the key's phase moves between
them), what stays as before, and the point of it all: sending a large message no
longer allocates a masked copy of it. For the asyncio client, also what its outbox
must keep: no frame between the bytes of another, a cancelled send that still goes
out whole and lets go of the caller's buffer, and an error when the peer goes first.
"""

from __future__ import annotations

import array
import asyncio
import os
import random
import socket
import struct
import tracemalloc

import pytest

import blazews
from blazews import IMPLEMENTATION, ConnectionClosed, MaskLater, sync
from blazews.sansio.protocol import Protocol, Side
from tests.helpers import BINARY, CONT, PING, TEXT, HeldSink, RawServer, parse_frames, run_on

KiB = 1024
MiB = 1 << 20


def client(mask_later: int) -> Protocol:
    proto = Protocol(Side.CLIENT)
    proto.mask_later = mask_later
    return proto


def wire(frame: MaskLater, piece: int) -> bytes:
    """The bytes a front end writes for ``frame`` through a buffer of ``piece`` bytes."""
    return b"".join(bytes(view) for view in frame.pieces(bytearray(piece)))


@pytest.mark.parametrize("piece", [17, 1001, 4096, 70 * KiB, 2 * MiB])
@pytest.mark.parametrize("size", [300, 65535, 65536, 200 * KiB + 3])
def test_pieces_make_the_masked_frame(size: int, piece: int) -> None:
    proto = client(mask_later=300)
    payload = os.urandom(size)
    proto.send_binary(payload)
    [out] = proto.data_to_send()
    assert type(out) is MaskLater
    data = wire(out, piece)
    assert len(data) == out.length
    [frame] = parse_frames(data)
    assert (frame.fin, frame.opcode, frame.masked) == (True, BINARY, True)
    assert frame.key == out.key
    assert frame.payload == payload
    # The payload really is masked on the wire (a zero key is possible, once in 2**32).
    if frame.key != bytes(4):
        assert data[frame.header_len :] != payload


def test_a_buffer_must_hold_more_than_the_header() -> None:
    proto = client(mask_later=1)
    proto.send_binary(b"x" * 70000)
    [out] = proto.data_to_send()
    with pytest.raises(ValueError):
        next(out.pieces(bytearray(14)))
    assert parse_frames(wire(out, 15))[0].payload == b"x" * 70000


def test_fill_takes_any_buffer_at_any_offset() -> None:
    proto = client(mask_later=1)
    payload = os.urandom(70000)  # a 2-byte length: an 8-byte header
    proto.send_binary(payload)
    [out] = proto.data_to_send()
    rng = random.Random(7)
    wire_bytes = bytearray()
    while len(wire_bytes) < out.length:  # a fresh buffer each time, the header split too
        buf = bytearray(rng.choice([1, 3, 5, 4096, 9999]))
        n = out.fill(buf, len(wire_bytes))
        assert 0 < n <= len(buf)
        wire_bytes += buf[:n]
    assert parse_frames(bytes(wire_bytes))[0].payload == payload
    for at in (-1, out.length):
        with pytest.raises(ValueError):
            out.fill(bytearray(10), at)
    with pytest.raises(ValueError):
        out.fill(bytearray(), 0)


def test_detach_copies_what_may_change_and_only_that() -> None:
    proto = client(mask_later=1)
    data = b"immutable" * 10
    mutable = bytearray(b"mutable!" * 10)
    proto.send_binary(data)
    proto.send_binary(mutable)
    fixed, changing = proto.data_to_send()
    fixed.detach()
    assert fixed.payload.obj is data  # bytes cannot change: no copy
    changing.detach()
    mutable[:] = bytes(len(mutable))
    mutable.extend(b"resized")  # nothing exports it any more
    assert parse_frames(wire(changing, 64))[0].payload == b"mutable!" * 10


def test_smaller_frames_and_servers_stay_bytes() -> None:
    proto = client(mask_later=1000)
    proto.send_binary(b"x" * 999)
    proto.send_text("é" * 500)  # 1000 bytes of UTF-8
    small, text = proto.data_to_send()
    assert type(small) is bytes
    assert parse_frames(small)[0].payload == b"x" * 999
    assert type(text) is MaskLater
    assert parse_frames(wire(text, 333))[0].payload == ("é" * 500).encode()
    default = Protocol(Side.CLIENT)  # mask_later is 0: never
    assert default.mask_later == 0
    default.send_binary(b"y" * (2 * MiB))
    assert [type(x) for x in default.data_to_send()] == [bytes]
    server = Protocol(Side.SERVER)  # nothing to mask
    server.mask_later = 1
    server.send_binary(b"z" * 100)
    assert parse_frames(server.data_to_send())[0].payload == b"z" * 100


def test_fragments_keep_their_header_bits_and_any_buffer_works() -> None:
    proto = client(mask_later=100)
    ints = array.array("i", range(1000))  # 4,000 bytes, itemsize 4
    proto.send_binary(ints, fin=False)
    strided = memoryview(bytes(range(256)) * 4)[::2]  # not contiguous
    proto.send_continuation(strided, fin=True)
    first, last = proto.data_to_send()
    frames = parse_frames(wire(first, 999) + wire(last, 999))
    assert [(f.opcode, f.fin) for f in frames] == [(BINARY, False), (CONT, True)]
    assert frames[0].payload == ints.tobytes()
    assert frames[1].payload == bytes(strided)
    proto = client(mask_later=100)
    proto.send_text(b"a" * 100)
    [out] = proto.data_to_send()
    assert parse_frames(wire(out, 64))[0].opcode == TEXT


def received_by_raw_server() -> tuple[RawServer, list[bytes]]:
    """A raw server that keeps every byte it receives until the client closes."""
    got: list[bytes] = []

    def sink(sock: socket.socket) -> None:
        while chunk := sock.recv(1 << 20):
            got.append(chunk)

    return RawServer(sink), got


@pytest.mark.parametrize("size", [MiB + 1, 3 * MiB + 5])
def test_the_blocking_client_sends_large_messages_masked_in_pieces(size: int) -> None:
    server, got = received_by_raw_server()
    payload = os.urandom(size)
    conn = sync.connect(f"ws://127.0.0.1:{server.port}/", compression=None)
    conn.send(payload)
    conn.send(b"after")
    conn.send(bytearray(payload))
    conn.socket.shutdown(socket.SHUT_WR)
    server.thread.join(10)
    conn.close()
    frames = parse_frames(b"".join(got))
    assert [(f.opcode, f.masked) for f in frames] == [(BINARY, True)] * 3
    assert [f.payload for f in frames] == [payload, b"after", payload]


def test_sending_a_large_message_allocates_no_copy_of_it() -> None:
    # (The bytes are checked above; here the sink only counts them, allocating nothing
    # per read: the server thread's memory is traced too.)
    buf = bytearray(MiB)
    head = bytearray()
    count = [0]

    def sink(sock: socket.socket) -> None:
        while n := sock.recv_into(buf):
            if not count[0]:
                head.extend(buf[:14])
            count[0] += n

    server = RawServer(sink)
    payload = os.urandom(16 * MiB)
    conn = sync.connect(f"ws://127.0.0.1:{server.port}/", compression=None)
    tracemalloc.start()
    try:
        conn.send(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One 1 MiB piece buffer (none if the pool kept one), not a 16 MiB masked copy.
    # (The pure-Python mask_bytes makes a few piece-sized temporaries of its own.)
    assert peak < (2 * MiB if IMPLEMENTATION == "compiled" else 6 * MiB), peak
    conn.socket.shutdown(socket.SHUT_WR)
    server.thread.join(10)
    conn.close()
    assert count[0] == 14 + 16 * MiB
    assert head[:10] == bytes((0x82, 0x80 | 127)) + (16 * MiB).to_bytes(8, "big")


# -- the asyncio client: an outbox pumped as the transport drains ---------------------


async def stuck_send(conn: blazews.ClientConnection, payload: object) -> asyncio.Task[None]:
    """Start sending ``payload`` to a sink that does not read; check that it waits."""
    task = asyncio.ensure_future(conn.send(payload))
    await asyncio.sleep(0.1)
    assert not task.done()  # more than the kernel's buffers hold: the pump waits
    return task


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_asyncio_client_holds_other_frames_behind_a_large_one(loop: str) -> None:
    sink = HeldSink()
    payload = os.urandom(24 * MiB + 5)
    mutable = bytearray(os.urandom(3 * MiB))

    async def main() -> None:
        url = f"ws://127.0.0.1:{sink.server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        big = await stuck_send(conn, payload)
        # Sent meanwhile: they wait in order behind the large frame, none comes between.
        small = asyncio.ensure_future(conn.send("after"))
        await asyncio.sleep(0)  # (the task's first step: its frame is held)
        pong = await conn.ping(b"p")
        await asyncio.sleep(0.05)
        assert not small.done()
        sink.release()
        await asyncio.gather(big, small)
        await conn.send(mutable)
        mutable.extend(b"!")  # the send is over: nothing holds the buffer
        assert not pong.done()  # (the sink never answers)
        conn.transport.write_eof()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    frames = sink.frames()
    assert [(f.opcode, f.masked, f.fin) for f in frames] == [
        (BINARY, True, True),
        (TEXT, True, True),
        (PING, True, True),
        (BINARY, True, True),
    ]
    assert frames[0].payload == payload
    assert (frames[1].payload, frames[2].payload) == (b"after", b"p")
    assert frames[3].payload == mutable[:-1]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_cancelled_large_send_still_goes_out_whole_and_lets_go_of_the_buffer(
    loop: str,
) -> None:
    sink = HeldSink()
    mutable = bytearray(os.urandom(24 * MiB))
    original = bytes(mutable)

    async def main() -> None:
        url = f"ws://127.0.0.1:{sink.server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        task = await stuck_send(conn, mutable)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # What was still to go was copied: the caller's buffer is free to change.
        mutable[:] = bytes(len(mutable))
        mutable.extend(b"resized")
        sink.release()
        await conn.send(b"after")
        conn.transport.write_eof()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    frames = sink.frames()
    assert [f.payload for f in frames] == [original, b"after"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_large_send_cut_short_by_the_peer_raises(loop: str) -> None:
    def reset_after_a_while(sock: socket.socket) -> None:
        sock.recv(1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = RawServer(reset_after_a_while)  # closes with a reset, unread data behind

    async def main() -> None:
        url = f"ws://127.0.0.1:{server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        with pytest.raises(ConnectionClosed):
            await conn.send(os.urandom(24 * MiB))
        with pytest.raises(ConnectionClosed):
            await conn.send(b"later")
        await conn.wait_closed()

    run_on(loop, main)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_asyncio_client_sends_a_large_message_without_a_copy_of_it(loop: str) -> None:
    buf = bytearray(MiB)
    count = [0]

    def sink(sock: socket.socket) -> None:
        while n := sock.recv_into(buf):
            count[0] += n

    server = RawServer(sink)
    payload = os.urandom(16 * MiB)
    peaks: list[int] = []

    async def main() -> None:
        url = f"ws://127.0.0.1:{server.port}/"
        conn = await blazews.connect(url, compression=None, ping_interval=None)
        tracemalloc.start()
        try:
            await conn.send(payload)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        conn.transport.write_eof()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        conn.transport.abort()  # type: ignore[union-attr]

    run_on(loop, main)
    server.thread.join(10)
    assert count[0] == 14 + 16 * MiB
    # A piece or a few (those a transport holds on to), not a 16 MiB masked copy.
    assert peaks[0] < (4 * MiB if IMPLEMENTATION == "compiled" else 8 * MiB), peaks
