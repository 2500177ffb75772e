"""Tests of :class:`blazews.sync.FrameReader` reading frames, over ``io.BytesIO`` and
socket pairs; and a differential test: the reader and the sans-I/O core's parser agree
on the same byte streams.

Frames are built by hand from RFC 6455 §5.2 (``tests.sync.support.build``). Reading
whole messages is in test_frame_reader_messages.py; the compiled reader against the
pure one in test_frame_reader_builds.py.
"""

from __future__ import annotations

import array
import io
import os
import random
import socket
import struct
import threading
from typing import Any

import pytest

from blazews.exceptions import BufferTooSmall, ProtocolError
from blazews.sansio.frames import Opcode
from blazews.sansio.protocol import Side
from blazews.sync import FrameReader
from tests.sync.support import LENGTHS, build, core_events, random_stream


def feed(sock: socket.socket, data: bytes, *, close: bool = False) -> threading.Thread:
    """Write ``data`` from a thread (it may exceed the socket buffers)."""

    def run() -> None:
        sock.sendall(data)
        if close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("transport", ["bytesio", "socketpair"])
def test_lengths(
    masked: bool, transport: str, socket_pair: tuple[socket.socket, socket.socket]
) -> None:
    payloads = [os.urandom(n) for n in LENGTHS]
    stream = b"".join(
        build(Opcode.BINARY, p, key=os.urandom(4) if masked else None) for p in payloads
    )
    writer = None
    if transport == "bytesio":
        source: Any = io.BytesIO(stream)
    else:
        source = socket_pair[0]
        writer = feed(socket_pair[1], stream, close=True)
    buf = bytearray(70000)
    with FrameReader(source) as reader:
        for payload in payloads:
            frame, n = reader.read_frame_into(buf)
            assert n == frame.length == len(payload)
            assert frame.opcode is Opcode.BINARY and frame.fin
            assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)
            assert buf[:n] == payload
        with pytest.raises(EOFError):
            reader.read_frame_into(buf)
    if writer is not None:
        writer.join(5)


def test_frame_fields_and_exact_buffers() -> None:
    key = b"\xaa\xbb\xcc\xdd"
    stream = (
        build(Opcode.TEXT, b"frag", fin=False, rsv=0x40)
        + build(Opcode.PING, b"ping", key=key)
        + build(Opcode.CONT, b"ment", rsv=0x30)
        + build(Opcode.CLOSE, struct.pack("!H", 1000))
        + build(Opcode.BINARY, b"x" * 200, bits=64)  # non-minimal length encoding
    )
    reader = FrameReader(io.BytesIO(stream))
    out = []
    for size in (4, 4, 4, 2, 200):  # each buffer exactly the payload's size
        buf = bytearray(size)
        frame, n = reader.read_frame_into(buf)
        out.append((frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, bytes(buf[:n])))
    assert out == [
        (Opcode.TEXT, False, True, False, False, b"frag"),
        (Opcode.PING, True, False, False, False, b"ping"),
        (Opcode.CONT, True, False, True, True, b"ment"),
        (Opcode.CLOSE, True, False, False, False, b"\x03\xe8"),
        (Opcode.BINARY, True, False, False, False, b"x" * 200),
    ]
    reader.close()


def test_other_writable_buffers() -> None:
    stream = build(Opcode.BINARY, b"abcdefgh", key=b"1234") + build(Opcode.BINARY, b"zz")
    reader = FrameReader(io.BytesIO(stream))
    words = array.array("I", [0, 0, 0])
    assert reader.read_frame_into(words)[1] == 8
    assert words.tobytes()[:8] == b"abcdefgh"
    backing = bytearray(10)
    assert reader.read_frame_into(memoryview(backing)[5:])[1] == 2
    assert backing[5:7] == b"zz"
    with pytest.raises(TypeError):
        reader.read_frame_into(b"read-only")


def test_buffer_too_small_keeps_the_frame(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    big = os.urandom(100_000)
    stream = build(Opcode.BINARY, big, key=b"\x01\x02\x03\x04") + build(Opcode.TEXT, b"next")
    writer = feed(socket_pair[1], stream, close=True)
    reader = FrameReader(socket_pair[0])
    small = bytearray(1000)
    for _ in range(2):
        with pytest.raises(BufferTooSmall) as info:
            reader.read_frame_into(small)
        assert info.value.needed == 100_000
    buf = bytearray(100_000)
    frame, n = reader.read_frame_into(buf)
    assert (frame.opcode, n) == (Opcode.BINARY, 100_000)
    assert buf == big
    frame, n = reader.read_frame_into(small)
    assert (frame.opcode, bytes(small[:n])) == (Opcode.TEXT, b"next")
    writer.join(5)


@pytest.mark.parametrize(
    "data",
    [
        build(Opcode.BINARY, length=1 << 63, bits=64),
        build(0x3, b"x"),
        build(0x7, b"x"),
        build(0xB, b"x"),
        build(0xF, b""),
        build(Opcode.PING, b"x" * 126),
        build(Opcode.PONG, b"x" * 200, bits=16),
        build(Opcode.CLOSE, b"", fin=False),
        build(Opcode.PING, b"p", fin=False, key=b"abcd"),
    ],
    ids=[
        "64-bit-top-bit",
        "opcode-3",
        "opcode-7",
        "opcode-B",
        "opcode-F",
        "ping-126",
        "pong-200",
        "close-not-fin",
        "ping-not-fin-masked",
    ],
)
def test_invalid_headers(data: bytes) -> None:
    reader = FrameReader(io.BytesIO(data + build(Opcode.TEXT, b"after")))
    for _ in range(2):  # the header stays unread: the error repeats
        with pytest.raises(ProtocolError) as info:
            reader.read_frame_into(bytearray(300))
        assert info.value.close_code == 1002


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 13, 14, 20])
def test_end_of_input_mid_frame(cut: int) -> None:
    data = build(Opcode.BINARY, b"y" * 200, key=b"kkkk", bits=64)  # 14-byte header
    reader = FrameReader(io.BytesIO(data[:cut]))
    with pytest.raises(ProtocolError) as info:
        reader.read_frame_into(bytearray(300))
    assert info.value.close_code == 1006
    if cut > 14:  # part of the payload was consumed: the reader is out of step
        with pytest.raises(ValueError):
            reader.read_frame_into(bytearray(300))


def test_timeout_in_header_loses_nothing(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socket_pair
    a.settimeout(0.05)
    data = build(Opcode.TEXT, b"z" * 300, key=b"wxyz")
    reader = FrameReader(a)
    b.sendall(data[:3])
    with pytest.raises(TimeoutError):
        reader.read_frame_into(bytearray(300))
    b.sendall(data[3:])
    buf = bytearray(300)
    assert reader.read_frame_into(buf)[1] == 300
    assert buf == b"z" * 300


def test_many_small_frames_across_buffer_refills() -> None:
    rng = random.Random(7)
    payloads = [
        rng.randbytes(rng.choice([0, 1, 3, 125, 126, 1000, 5000, 17000])) for _ in range(300)
    ]
    stream = b"".join(build(Opcode.BINARY, p, key=rng.randbytes(4)) for p in payloads)

    class Trickle(io.RawIOBase):
        """A stream that returns at most a random few bytes per read."""

        def __init__(self, data: bytes) -> None:
            self.data = memoryview(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), rng.randint(1, 3000), len(self.data))
            b[:n] = self.data[:n]
            self.data = self.data[n:]
            return n

    reader = FrameReader(Trickle(stream))
    buf = bytearray(17000)
    for payload in payloads:
        _, n = reader.read_frame_into(buf)
        assert buf[:n] == payload
    with pytest.raises(EOFError):
        reader.read_frame_into(buf)


def test_close_and_context_manager() -> None:
    reader = FrameReader(io.BytesIO(build(Opcode.TEXT, b"a") * 2))
    assert not reader.closed
    reader.read_frame_into(bytearray(1))
    reader.close()
    reader.close()  # idempotent
    assert reader.closed
    with pytest.raises(ValueError):
        reader.read_frame_into(bytearray(1))
    source = io.BytesIO(build(Opcode.TEXT, b"b"))
    with FrameReader(source) as reader:
        assert reader.read_frame_into(bytearray(1))[1] == 1
    assert reader.closed
    assert not source.closed  # the source belongs to the caller
    with pytest.raises(TypeError):
        FrameReader(object())


# -- differential test against the sans-I/O core ------------------------------------------


def reader_events(stream: bytes) -> tuple[list[Any], Any]:
    """Assemble messages from FrameReader's frames as an application would."""
    reader = FrameReader(io.BytesIO(stream))
    buf = bytearray(1 << 17)
    events: list[Any] = []
    message: tuple[int, bytearray] | None = None
    while True:
        try:
            frame, n = reader.read_frame_into(buf)
        except EOFError:
            return events, None
        except ProtocolError as exc:
            return events, exc
        payload = bytes(buf[:n])
        if frame.opcode == Opcode.PING:
            events.append(("ping", payload))
        elif frame.opcode == Opcode.PONG:
            events.append(("pong", payload))
        elif frame.opcode == Opcode.CLOSE:
            return events, payload
        else:
            if frame.opcode != Opcode.CONT:
                message = (int(frame.opcode), bytearray())
            assert message is not None
            message[1].extend(payload)
            if frame.fin:
                events.append(("message", message[0], bytes(message[1])))
                message = None


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_core_on_valid_streams(seed: int) -> None:
    rng = random.Random(seed)
    masked = seed % 2 == 0
    stream = random_stream(rng, masked)
    expected, protocol = core_events(stream, Side.SERVER if masked else Side.CLIENT, rng)
    got, close = reader_events(stream)
    assert got == expected
    assert protocol.close_rcvd is not None
    assert (
        close == struct.pack("!H", protocol.close_rcvd.code) + protocol.close_rcvd.reason.encode()
    )


@pytest.mark.parametrize(
    "bad",
    [
        build(Opcode.BINARY, length=(1 << 63) + 5, bits=64, key=b"abcd"),
        build(0x5, b"x", key=b"abcd"),
        build(0xC, b"x", key=b"abcd"),
        build(Opcode.PING, b"x" * 126, key=b"abcd"),
        build(Opcode.CLOSE, b"\x03\xe8", fin=False, key=b"abcd"),
    ],
)
def test_agrees_with_core_on_invalid_headers(bad: bytes) -> None:
    rng = random.Random(len(bad))
    good = build(Opcode.TEXT, b"before", key=b"abcd") + build(Opcode.PING, b"p", key=b"wxyz")
    stream = good + bad + build(Opcode.TEXT, b"after", key=b"abcd")
    expected, protocol = core_events(stream, Side.SERVER, rng)
    got, error = reader_events(stream)
    assert got == expected == [("message", 1, b"before"), ("ping", b"p")]
    assert isinstance(error, ProtocolError)
    assert protocol.protocol_error is not None
    assert error.close_code == protocol.protocol_error.close_code == 1002


def test_large_payload_is_read_straight_into_the_caller_buffer() -> None:
    payload = os.urandom(1 << 20)
    sizes: list[int] = []

    class Spy(io.BytesIO):
        def readinto(self, b: Any) -> int:
            sizes.append(len(b))
            return super().readinto(b)

    reader = FrameReader(Spy(build(Opcode.BINARY, payload, key=b"\x10\x20\x30\x40")))
    buf = bytearray(len(payload))
    assert reader.read_frame_into(buf)[1] == len(payload)
    assert buf == payload
    # One read of the internal buffer (header and the payload's start), then one
    # read of everything else, straight into ``buf``.
    assert sizes == [16384, len(payload) - (16384 - 14)]
