"""Tests of :class:`blazews.sync.FrameReader` reading messages (``read_message``,
``read_message_into``): fragments and control frames between them, UTF-8, the size
limit, buffers too small, timeouts, the close frame; and agreement with the core.
"""

from __future__ import annotations

import array
import io
import itertools
import os
import random
import socket
import struct
import tracemalloc
from typing import Any

import pytest

from blazews.buffers import BufferPool
from blazews.exceptions import (
    BufferTooSmall,
    ConnectionClosedError,
    ConnectionClosedOK,
    MessageTooBig,
    ProtocolError,
)
from blazews.sansio.frames import MessageType, Opcode
from blazews.sansio.protocol import Side
from blazews.sync import FrameReader
from tests.helpers import MiB
from tests.sync.support import LENGTHS, build, core_events, random_stream

# -- messages ----------------------------------------------------------------------------


def text_key(masked: bool, rng: random.Random) -> bytes | None:
    return rng.randbytes(4) if masked else None


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY], ids=["text", "binary"])
def test_messages_of_every_length_form(masked: bool, opcode: Opcode) -> None:
    rng = random.Random(int(masked) * 2 + int(opcode))
    payloads = [
        (b"a" * n if opcode == Opcode.TEXT else rng.randbytes(n)) for n in [*LENGTHS, 16383, 16384]
    ]
    stream = b"".join(build(opcode, p, key=text_key(masked, rng)) for p in payloads)
    kind = MessageType(int(opcode))
    reader = FrameReader(io.BytesIO(stream), max_message_size=None)
    for payload in payloads:
        assert reader.read_message() == (kind, payload)
    with pytest.raises(EOFError):
        reader.read_message()
    reader = FrameReader(io.BytesIO(stream), max_message_size=None)
    buf = bytearray(70000)
    for payload in payloads:
        assert reader.read_message_into(buf) == (kind, len(payload))
        assert buf[: len(payload)] == payload
    with pytest.raises(EOFError):
        reader.read_message_into(buf)


def fragmented(
    opcode: int, payload: bytes, cuts: list[int], *, key: bytes | None = b"kEy!", ping: bool = False
) -> bytes:
    """``payload`` in fragments cut at ``cuts``, a ping between each two if ``ping``."""
    bounds = [0, *cuts, len(payload)]
    frames = []
    for i in range(len(bounds) - 1):
        last = i == len(bounds) - 2
        piece = payload[bounds[i] : bounds[i + 1]]
        frames.append(build(opcode if i == 0 else Opcode.CONT, piece, fin=last, key=key))
        if ping and not last:
            frames.append(build(Opcode.PING, b"p%d" % i, key=key))
    return b"".join(frames)


def read_with(reader: Any, method: str, buf: bytearray) -> tuple[MessageType, bytes]:
    """One message by ``read_message`` or ``read_message_into(buf)``."""
    if method == "read_message":
        return reader.read_message()  # type: ignore[no-any-return]
    kind, n = reader.read_message_into(buf)
    return kind, bytes(buf[:n])


@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_fragmented_messages_with_interleaved_control_frames(method: str) -> None:
    text = ("héllo wörld " * 500).encode()
    binary = os.urandom(30000)
    stream = (
        build(Opcode.PONG, b"first", key=b"abcd")
        + fragmented(Opcode.TEXT, text, [1, 2, 3, 2000, 5000], ping=True)
        + fragmented(Opcode.BINARY, binary, [0, 0, 10000, 29999], ping=True)
        + fragmented(Opcode.BINARY, b"", [0, 0])
    )
    seen: list[tuple[Opcode, bytes]] = []
    reader = FrameReader(io.BytesIO(stream), on_control=lambda op, data: seen.append((op, data)))
    buf = bytearray(40000)
    assert read_with(reader, method, buf) == (MessageType.TEXT, text)
    assert seen == [(Opcode.PONG, b"first")] + [(Opcode.PING, b"p%d" % i) for i in range(5)]
    assert read_with(reader, method, buf) == (MessageType.BINARY, binary)
    assert read_with(reader, method, buf) == (MessageType.BINARY, b"")
    assert len(seen) == 1 + 5 + 4
    with pytest.raises(EOFError):
        read_with(reader, method, buf)


def test_control_frames_are_skipped_without_a_callback() -> None:
    stream = (
        build(Opcode.PING, b"x")
        + build(Opcode.TEXT, b"ab", fin=False)
        + build(Opcode.PONG, b"y")
        + build(Opcode.CONT, b"cd")
    )
    assert FrameReader(io.BytesIO(stream)).read_message() == (MessageType.TEXT, b"abcd")


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (build(Opcode.CONT, b"orphan"), "continuation frame without a message"),
        (
            build(Opcode.TEXT, b"a", fin=False) + build(Opcode.BINARY, b"b"),
            "new data frame while a message is unfinished",
        ),
        (
            build(Opcode.BINARY, b"a", fin=False) + build(Opcode.TEXT, b"b", fin=False),
            "new data frame while a message is unfinished",
        ),
        (build(Opcode.BINARY, b"a", rsv=0x40), "reserved bits"),
        (build(Opcode.BINARY, b"a", fin=False) + build(Opcode.CONT, b"b", rsv=0x20), "reserved"),
        # (the core's words: no extension negotiated, so any reserved bit is one)
        (build(Opcode.PING, b"a", rsv=0x10), "reserved bits set without a negotiated"),
        (build(Opcode.TEXT, b"a", fin=False) + build(0x3, b"b"), "reserved opcode"),
    ],
    ids=["orphan-cont", "new-in-text", "new-in-binary", "rsv1", "rsv2-cont", "rsv3-ping", "op3"],
)
@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_protocol_errors_in_messages(stream: bytes, message: str, method: str) -> None:
    reader = FrameReader(io.BytesIO(stream + build(Opcode.TEXT, b"after")))
    read = (
        reader.read_message
        if method == "read_message"
        else (lambda: reader.read_message_into(bytearray(100)))
    )
    with pytest.raises(ProtocolError, match=message) as info:
        read()
    assert info.value.close_code == 1002
    with pytest.raises(ProtocolError) as again:  # final: the same error again
        read()
    assert again.value is info.value


@pytest.mark.parametrize(
    "pieces",
    [
        [b"\xff"],
        [b"abc\xc3", b"("],  # a 2-byte sequence cut, then a bad continuation byte
        [b"\xed", b"\xa0\x80"],  # a surrogate cut between two frames
        [b"\xf4", b"\x90\x80\x80"],  # above U+10FFFF
        [b"ok \xe2\x82"],  # the text ends inside a sequence
        [b"ok \xe2", b"\x82"],
    ],
    ids=["ff", "cut-bad-cont", "cut-surrogate", "too-high", "ends-inside", "ends-inside-cut"],
)
@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_invalid_utf8(pieces: list[bytes], method: str) -> None:
    payload = b"".join(pieces)
    cuts = list(itertools.accumulate(len(p) for p in pieces[:-1]))
    reader = FrameReader(io.BytesIO(fragmented(Opcode.TEXT, payload, cuts)))
    with pytest.raises(ProtocolError) as info:
        if method == "read_message":
            reader.read_message()
        else:
            reader.read_message_into(bytearray(100))
    assert info.value.close_code == 1007


@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_invalid_utf8_fails_on_the_frame_that_breaks_it(method: str) -> None:
    # The surrogate is known invalid at its second byte: the error comes before the
    # reader reaches the input's end (which would be a 1006).
    stream = build(Opcode.TEXT, b"\xed", fin=False) + build(Opcode.CONT, b"\xa0", fin=False)
    reader = FrameReader(io.BytesIO(stream))
    with pytest.raises(ProtocolError) as info:
        if method == "read_message":
            reader.read_message()
        else:
            reader.read_message_into(bytearray(10))
    assert info.value.close_code == 1007


def test_valid_utf8_cut_anywhere() -> None:
    text = "aé€😀z".encode()
    for cut in range(len(text) + 1):
        stream = fragmented(Opcode.TEXT, text, [cut])
        assert FrameReader(io.BytesIO(stream)).read_message() == (MessageType.TEXT, text)
        buf = bytearray(len(text))
        assert FrameReader(io.BytesIO(stream)).read_message_into(buf) == (
            MessageType.TEXT,
            len(text),
        )
        assert buf == text


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (b"", None),  # EOFError: a clean end at a message boundary
        (build(Opcode.BINARY, b"x" * 300, key=b"abcd")[:1], 1006),  # inside a header
        (build(Opcode.BINARY, b"x" * 300, key=b"abcd")[:7], 1006),  # inside the key
        (build(Opcode.BINARY, b"x" * 300, key=b"abcd")[:100], 1006),  # inside the payload
        (build(Opcode.BINARY, b"x", fin=False), 1006),  # between two fragments
        (build(Opcode.BINARY, b"x", fin=False) + build(Opcode.PING, b""), 1006),
    ],
    ids=["empty", "header", "key", "payload", "between-fragments", "after-a-ping"],
)
@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_truncated_input(stream: bytes, code: int | None, method: str) -> None:
    reader = FrameReader(io.BytesIO(stream))
    expected: Any = EOFError if code is None else ProtocolError
    with pytest.raises(expected) as info:
        if method == "read_message":
            reader.read_message()
        else:
            reader.read_message_into(bytearray(1000))
    if code is not None:
        assert info.value.close_code == code


def test_buffer_too_small_for_a_single_frame_message_keeps_it() -> None:
    stream = build(Opcode.BINARY, b"y" * 500, key=b"wxyz") + build(Opcode.TEXT, b"next")
    reader = FrameReader(io.BytesIO(stream))
    for _ in range(2):
        with pytest.raises(BufferTooSmall) as info:
            reader.read_message_into(bytearray(499))
        assert info.value.needed == 500
    buf = bytearray(500)
    assert reader.read_message_into(buf) == (MessageType.BINARY, 500)
    assert buf == b"y" * 500
    assert reader.read_message() == (MessageType.TEXT, b"next")


def test_buffer_too_small_in_a_fragmented_message_loses_nothing() -> None:
    seen: list[bytes] = []
    payload = bytes(range(256)) * 2  # 512 bytes in fragments of 100, 200, 212
    stream = (
        build(Opcode.BINARY, payload[:100], fin=False, key=b"1234")
        + build(Opcode.PING, b"once", key=b"5678")
        + build(Opcode.CONT, payload[100:300], fin=False, key=b"abcd")
        + build(Opcode.CONT, payload[300:], key=b"efgh")
        + build(Opcode.BINARY, b"after")
    )
    reader = FrameReader(io.BytesIO(stream), on_control=lambda op, data: seen.append(data))
    with pytest.raises(BufferTooSmall) as info:
        reader.read_message_into(bytearray(150))
    assert info.value.needed == 300  # a lower bound: more fragments may follow
    with pytest.raises(BufferTooSmall) as info:
        reader.read_message_into(bytearray(50))  # smaller than what was read already
    assert info.value.needed == 300
    with pytest.raises(BufferTooSmall) as info:
        reader.read_message_into(bytearray(400))
    assert info.value.needed == 512
    buf = bytearray(600)
    assert reader.read_message_into(buf) == (MessageType.BINARY, 512)
    assert buf[:512] == payload
    assert seen == [b"once"]  # the ping was handed over once
    assert reader.read_message() == (MessageType.BINARY, b"after")


def test_read_message_finishes_a_message_interrupted_by_buffer_too_small() -> None:
    text = ("€" * 100).encode()  # 300 bytes; the cuts fall inside characters
    reader = FrameReader(io.BytesIO(fragmented(Opcode.TEXT, text, [101, 202])))
    with pytest.raises(BufferTooSmall):
        reader.read_message_into(bytearray(150))
    assert reader.read_message() == (MessageType.TEXT, text)


def test_max_message_size() -> None:
    stream = build(Opcode.BINARY, b"a" * 100) + build(Opcode.BINARY, b"b" * 101)
    reader = FrameReader(io.BytesIO(stream), max_message_size=100)
    assert reader.max_message_size == 100
    assert reader.read_message() == (MessageType.BINARY, b"a" * 100)
    with pytest.raises(MessageTooBig) as info:
        reader.read_message()
    assert info.value.close_code == 1009
    frag = fragmented(Opcode.BINARY, b"c" * 101, [50, 100])
    for method in ("read_message", "read_message_into"):
        reader = FrameReader(io.BytesIO(frag), max_message_size=100)
        with pytest.raises(MessageTooBig):
            if method == "read_message":
                reader.read_message()
            else:
                reader.read_message_into(bytearray(1000))
    big = build(Opcode.BINARY, os.urandom(2 << 20))
    assert FrameReader(io.BytesIO(big)).max_message_size == 1 << 20
    with pytest.raises(MessageTooBig):
        FrameReader(io.BytesIO(big)).read_message()
    reader = FrameReader(io.BytesIO(big), max_message_size=None)
    assert len(reader.read_message()[1]) == 2 << 20
    with pytest.raises(ValueError):
        FrameReader(io.BytesIO(), max_message_size=-1)


@pytest.mark.parametrize(
    ("payload", "exc", "code"),
    [
        (struct.pack("!H", 1000) + b"bye", ConnectionClosedOK, 1000),
        (struct.pack("!H", 1001), ConnectionClosedOK, 1001),
        (b"", ConnectionClosedOK, 1005),
        (struct.pack("!H", 1011) + b"oops", ConnectionClosedError, 1011),
        (struct.pack("!H", 4000), ConnectionClosedError, 4000),
    ],
)
@pytest.mark.parametrize("midway", [False, True], ids=["between", "among-fragments"])
def test_a_close_frame_ends_message_reading(
    payload: bytes, exc: type[Exception], code: int, midway: bool
) -> None:
    before = build(Opcode.TEXT, b"part", fin=False) if midway else b""
    close = build(Opcode.CLOSE, payload, key=b"\x00\xff\x00\xff")
    after = build(Opcode.BINARY, b"after close")
    reader = FrameReader(io.BytesIO(before + close + after))
    with pytest.raises(exc) as info:
        reader.read_message()
    error: Any = info.value
    assert error.code == code and error.rcvd == reader.close_rcvd
    assert reader.close_rcvd is not None and reader.close_rcvd.code == code
    with pytest.raises(exc):  # final
        reader.read_message_into(bytearray(100))
    frame, n = reader.read_frame_into(bytearray(100))  # the frame level carries on
    assert (frame.opcode, n) == (Opcode.BINARY, 11)


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"\x03", 1002), (struct.pack("!H", 1005), 1002), (struct.pack("!H", 1000) + b"\xff", 1007)],
)
def test_an_invalid_close_frame(payload: bytes, code: int) -> None:
    reader = FrameReader(io.BytesIO(build(Opcode.CLOSE, payload)))
    with pytest.raises(ProtocolError) as info:
        reader.read_message()
    assert info.value.close_code == code
    assert reader.close_rcvd is None


def test_read_message_into_other_buffers() -> None:
    stream = build(Opcode.BINARY, b"abcdefgh", key=b"1234") * 3 + build(Opcode.BINARY, b"z")
    reader = FrameReader(io.BytesIO(stream))
    words = array.array("I", [0, 0, 0])
    assert reader.read_message_into(words) == (MessageType.BINARY, 8)
    assert words.tobytes()[:8] == b"abcdefgh"
    backing = bytearray(20)
    assert reader.read_message_into(memoryview(backing)[3:11]) == (MessageType.BINARY, 8)
    assert backing[3:11] == b"abcdefgh" and backing[:3] == bytes(3)
    with pytest.raises(TypeError):
        reader.read_message_into(b"read-only buffer")
    with pytest.raises(TypeError):
        reader.read_message_into(memoryview(bytearray(40))[::2])  # not contiguous
    assert reader.read_message_into(bytearray(8)) == (MessageType.BINARY, 8)
    assert reader.read_message_into(bytearray(1)) == (MessageType.BINARY, 1)


def test_large_fragments_are_read_straight_into_the_caller_buffer() -> None:
    payload = os.urandom(300_000)
    stream = fragmented(Opcode.BINARY, payload, [7, 100_000, 250_000], key=b"\x01\x02\x03\x04")
    buf = bytearray(300_000)
    reader = FrameReader(io.BytesIO(stream))
    assert reader.read_message_into(buf) == (MessageType.BINARY, 300_000)
    assert buf == payload
    reader = FrameReader(io.BytesIO(stream))
    assert reader.read_message() == (MessageType.BINARY, payload)


def test_a_timeout_between_fragments_loses_nothing(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = socket_pair
    a.settimeout(0.05)
    payload = os.urandom(3000)
    stream = fragmented(Opcode.BINARY, payload, [1000, 2000], key=b"abcd")
    first = len(build(Opcode.BINARY, payload[:1000], key=b"abcd"))
    reader = FrameReader(a)
    buf = bytearray(4000)
    b.sendall(stream[: first + 3])  # the first fragment, and part of the next header
    with pytest.raises(TimeoutError):
        reader.read_message_into(buf)
    buf[:] = bytes(4000)  # the caller may reuse its buffer in between
    b.sendall(stream[first + 3 : first + 1500])
    with pytest.raises(TimeoutError):
        reader.read_message()  # now in the middle of a payload: out of step
    with pytest.raises(ValueError):
        reader.read_message()


def test_a_timeout_before_a_header_resumes_the_message(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = socket_pair
    a.settimeout(0.05)
    payload = os.urandom(3000)
    stream = fragmented(Opcode.BINARY, payload, [1000, 2000], key=b"abcd")
    first = len(build(Opcode.BINARY, payload[:1000], key=b"abcd"))
    reader = FrameReader(a)
    buf = bytearray(4000)
    b.sendall(stream[: first + 3])
    with pytest.raises(TimeoutError):
        reader.read_message_into(buf)
    buf[:] = bytes(4000)
    b.sendall(stream[first + 3 :])
    assert reader.read_message_into(buf) == (MessageType.BINARY, 3000)
    assert buf[:3000] == payload


def test_message_reading_after_close_and_errors() -> None:
    reader = FrameReader(io.BytesIO(build(Opcode.TEXT, b"a")))
    reader.close()
    with pytest.raises(ValueError):
        reader.read_message()
    with pytest.raises(ValueError):
        reader.read_message_into(bytearray(1))


def test_messages_agree_with_core_on_valid_streams() -> None:
    for seed in range(12):
        rng = random.Random(seed)
        masked = seed % 2 == 0
        stream = random_stream(rng, masked)
        expected, protocol = core_events(stream, Side.SERVER if masked else Side.CLIENT, rng)
        for method in ("read_message", "read_message_into"):
            got: list[Any] = []

            def on_control(op: Opcode, data: bytes, got: list[Any] = got) -> None:
                got.append(("ping" if op == Opcode.PING else "pong", data))

            reader = FrameReader(io.BytesIO(stream), max_message_size=None, on_control=on_control)
            buf = bytearray(1 << 17)
            with pytest.raises(ConnectionClosedOK) as info:
                while True:
                    if method == "read_message":
                        kind, data = reader.read_message()
                    else:
                        kind, n = reader.read_message_into(buf)
                        data = bytes(buf[:n])
                    got.append(("message", int(kind), data))
            assert got == expected
            assert info.value.rcvd == protocol.close_rcvd


def test_the_internal_buffer_comes_from_the_pool_and_goes_back() -> None:
    pool = BufferPool()
    stream = build(Opcode.BINARY, b"x" * 20000, key=b"abcd") * 2
    with FrameReader(io.BytesIO(stream), pool=pool) as reader:
        assert pool.stats().misses == 1  # the 16 KiB tier
        assert reader.read_message() == (MessageType.BINARY, b"x" * 20000)
        buf = bytearray(20000)
        assert reader.read_message_into(buf) == (MessageType.BINARY, 20000)
    stats = pool.stats()
    assert (stats.returned, stats.held_buffers, stats.held_bytes) == (1, 1, 16384)
    with FrameReader(io.BytesIO(stream), pool=pool):
        assert pool.stats().hits == 1  # the same buffer again
    assert pool.stats().held_buffers == 1


def test_an_exception_from_on_control_keeps_the_message() -> None:
    calls: list[bytes] = []

    def on_control(opcode: Opcode, payload: bytes) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("first ping refused")

    stream = (
        build(Opcode.TEXT, b"he", fin=False, key=b"abcd")
        + build(Opcode.PING, b"1", key=b"abcd")
        + build(Opcode.CONT, b"llo", fin=False, key=b"abcd")
        + build(Opcode.PING, b"2", key=b"abcd")
        + build(Opcode.CONT, b"!", key=b"abcd")
    )
    for method in ("read_message", "read_message_into"):
        calls.clear()
        reader = FrameReader(io.BytesIO(stream), on_control=on_control)
        buf = bytearray(10)
        with pytest.raises(RuntimeError):
            read_with(reader, method, buf)
        buf[:] = bytes(10)
        assert read_with(reader, method, buf) == (MessageType.TEXT, b"hello!")
        assert calls == [b"1", b"2"]


# -- a message resumed over a frame read_frame_into left pending -------------------------


def leave_pending(after: bytes, limit: int | None, calls: list[bytes]) -> FrameReader:
    """A reader in the middle of a text message ("a", then a ping whose ``on_control``
    raises), with the header of ``after`` read by ``read_frame_into``
    (``BufferTooSmall``) and left pending: the message reads must check it."""

    def on_control(opcode: Opcode, payload: bytes) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("first control frame refused")

    stream = build(Opcode.TEXT, b"a", fin=False) + build(Opcode.PING, b"x") + after
    reader = FrameReader(io.BytesIO(stream), max_message_size=limit, on_control=on_control)
    with pytest.raises(RuntimeError):
        reader.read_message()  # the message so far is kept
    with pytest.raises(BufferTooSmall):
        reader.read_frame_into(bytearray(0))  # the next header, pending now
    return reader


@pytest.mark.parametrize(
    ("after", "limit", "error", "code"),
    [
        (build(Opcode.BINARY, b"zz") + build(Opcode.CONT, b"b"), 1024, ProtocolError, 1002),
        (build(Opcode.TEXT, b"zz"), 1024, ProtocolError, 1002),
        (build(Opcode.CONT, b"zz", rsv=0x40), 1024, ProtocolError, 1002),
        (build(Opcode.CONT, b"z" * 2000), 1024, MessageTooBig, 1009),
        (build(Opcode.CONT, b"", length=1 << 40), 1024, MessageTooBig, 1009),  # no MemoryError
        (build(Opcode.CONT, b"z" * 1023), 1023, MessageTooBig, 1009),  # 1 + 1023 bytes
    ],
    ids=["new-binary", "new-text", "rsv1", "2000-bytes", "claims-1-TiB", "one-byte-over"],
)
@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_a_frame_left_pending_by_read_frame_into_is_checked_when_a_message_resumes(
    after: bytes, limit: int, error: type[Exception], code: int, method: str
) -> None:
    calls: list[bytes] = []
    reader = leave_pending(after, limit, calls)
    buf = bytearray(100)
    with pytest.raises(error) as info:
        read_with(reader, method, buf)
    assert info.value.close_code == code  # type: ignore[attr-defined]
    for other in ("read_message", "read_message_into"):  # final, whichever method
        with pytest.raises(error) as again:
            read_with(reader, other, buf)
        assert again.value is info.value
    assert calls == [b"x"]


@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_a_control_frame_left_pending_is_handed_over_when_a_message_resumes(method: str) -> None:
    # A ping's payload never lands in the message: the pending ping goes to on_control.
    after = build(Opcode.PING, b"yy", key=b"abcd") + build(Opcode.CONT, b"bc", key=b"efgh")
    calls: list[bytes] = []
    reader = leave_pending(after, 1024, calls)
    assert read_with(reader, method, bytearray(100)) == (MessageType.TEXT, b"abc")
    assert calls == [b"x", b"yy"]


@pytest.mark.parametrize("method", ["read_message", "read_message_into"])
def test_a_valid_frame_left_pending_completes_the_message(method: str) -> None:
    after = build(Opcode.CONT, b"bc", fin=False, key=b"abcd") + build(Opcode.CONT, b"d")
    reader = leave_pending(after, 1024, [])
    assert read_with(reader, method, bytearray(100)) == (MessageType.TEXT, b"abcd")


def test_buffer_too_small_counts_only_a_checked_frame() -> None:
    # A buffer smaller than the message so far: ``needed`` is that message plus the
    # next frame once it passed the checks, never a length they would refuse.
    reader = leave_pending(build(Opcode.CONT, b"", length=1 << 40), 125, [])
    with pytest.raises(MessageTooBig):  # was BufferTooSmall(1 + 2**40)
        reader.read_message_into(bytearray(0))
    reader = leave_pending(build(Opcode.CONT, b"new", rsv=0x20), 125, [])
    with pytest.raises(ProtocolError) as info:
        reader.read_message_into(bytearray(0))
    assert info.value.close_code == 1002
    reader = leave_pending(build(Opcode.CONT, b"bcd", key=b"abcd"), 125, [])
    with pytest.raises(BufferTooSmall) as too_small:
        reader.read_message_into(bytearray(0))
    assert too_small.value.needed == 4  # "a" and "bcd"
    buf = bytearray(4)
    assert reader.read_message_into(buf) == (MessageType.TEXT, 4)
    assert buf == b"abcd"


# -- without a limit, memory follows the bytes received ----------------------------------


class ShortReads(io.BytesIO):
    """A stream whose ``readinto`` returns at most ``most`` bytes."""

    def __init__(self, data: bytes, most: int) -> None:
        super().__init__(data)
        self.most = most

    def readinto(self, buffer: Any) -> int:
        return super().readinto(memoryview(buffer)[: self.most])


@pytest.mark.parametrize(
    "stream",
    [
        bytes.fromhex("827f1000000000000000"),  # claims 2**60 bytes, sends none
        build(Opcode.BINARY, b"abc", length=(1 << 63) - 1, key=b"abcd"),
        build(Opcode.TEXT, b"x", fin=False) + build(Opcode.CONT, b"yz", length=1 << 62),
    ],
    ids=["2**60", "2**63-1-masked", "fragment-2**62"],
)
def test_a_claimed_length_allocates_nothing_without_a_limit(stream: bytes) -> None:
    reader = FrameReader(io.BytesIO(stream), max_message_size=None)
    with pytest.raises(ProtocolError) as info:  # not MemoryError
        reader.read_message()
    assert info.value.close_code == 1006
    with pytest.raises(ValueError):  # the payload was cut short: out of step
        reader.read_message()


@pytest.mark.parametrize("second", [False, True], ids=["one-frame", "second-fragment"])
def test_memory_follows_the_bytes_received_without_a_limit(second: bool) -> None:
    sent = 3 * MiB
    head = build(Opcode.BINARY, b"x" * 10, fin=False) if second else b""
    frame = build(Opcode.CONT if second else Opcode.BINARY, b"", length=256 * MiB)
    source = io.BytesIO(head + frame + bytes(sent))  # 3 MiB of a 256 MiB claim
    reader = FrameReader(source, max_message_size=None)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as info:
            reader.read_message()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.close_code == 1006
    assert peak < 3 * sent  # what arrived, not what was claimed


@pytest.mark.parametrize("most", [None, 5000, 70000], ids=["whole", "5000", "70000"])
def test_large_frames_are_read_in_steps(most: int | None) -> None:
    rng = random.Random(7)
    one = rng.randbytes(5 * MiB + 3)  # read in steps of 1, 1, 2, then 1 MiB + 3
    parts = [rng.randbytes(10), rng.randbytes(3 * MiB + 7), rng.randbytes(2 * MiB + 1)]
    text = ("é€😀" * 300_000).encode()[: 2 * MiB + 5]
    text = text[: len(text.decode(errors="ignore").encode())]  # whole characters
    stream = (
        build(Opcode.BINARY, one, key=b"\x01\x02\x03\x04")
        + build(Opcode.BINARY, parts[0], fin=False, key=b"abcd")
        + build(Opcode.PING, b"p", key=b"efgh")
        + build(Opcode.CONT, parts[1], fin=False, key=b"ijkl")
        + build(Opcode.CONT, parts[2], key=b"mnop")
        + fragmented(Opcode.TEXT, text, [MiB + 1, 2 * MiB - 1])
        + build(Opcode.TEXT, text)
        + build(Opcode.BINARY, b"after")
    )
    source = io.BytesIO(stream) if most is None else ShortReads(stream, most)
    calls: list[tuple[Opcode, bytes]] = []
    reader = FrameReader(
        source, max_message_size=None, on_control=lambda op, p: calls.append((op, p))
    )
    assert reader.read_message() == (MessageType.BINARY, one)
    assert reader.read_message() == (MessageType.BINARY, b"".join(parts))
    assert reader.read_message() == (MessageType.TEXT, text)
    assert reader.read_message() == (MessageType.TEXT, text)
    assert reader.read_message() == (MessageType.BINARY, b"after")
    assert calls == [(Opcode.PING, b"p")]
    with pytest.raises(EOFError):
        reader.read_message()


def test_invalid_utf8_in_a_large_fragment() -> None:
    stream = build(Opcode.TEXT, b"ok", fin=False) + build(Opcode.CONT, b"a" * (3 * MiB) + b"\xff")
    with pytest.raises(ProtocolError) as info:
        FrameReader(io.BytesIO(stream), max_message_size=None).read_message()
    assert info.value.close_code == 1007
