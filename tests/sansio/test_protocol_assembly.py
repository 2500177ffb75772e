"""Fragmented messages are assembled in one growing object (the core's _assemble).

Compiled, the fragments are copied into the bytes object that becomes the message;
pure, into a bytearray copied once at the end. Either way the assembly never grows
past the message size limit, is let go when the message ends, fails or the
connection closes in the middle, and leaves no view on a receive buffer. Run against
the compiled and the pure core alike.
"""

from __future__ import annotations

import tracemalloc

import pytest

from blazews import IMPLEMENTATION
from blazews.sansio.protocol import MessageCallback
from tests.helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    SIDES,
    TEXT,
    MiB,
    close_payload,
    frame,
    incoming,
    server,
)


def _fragments(proto, opcode, pieces):
    return b"".join(
        incoming(proto, opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    )


def _feed(proto, data, how):
    """Feed ``data`` as receive_data does, or from a buffer as the front ends do."""
    if how == "bytes":
        proto.receive_data(data)
        return None
    buf = bytearray(data)
    assert proto.receive_into_buffer(buf, 0, len(buf), how == "borrow") == len(buf)
    return buf


FEEDS = pytest.mark.parametrize("how", ["bytes", "in place", "borrow"])


@SIDES
@FEEDS
@pytest.mark.parametrize(
    "sizes",
    [
        [1, 1],
        [0, 5, 0],
        [100, 300, 5000],  # grows from one tier to a larger one
        [4096] * 9,  # past the largest tier: an unpooled buffer
        [70_000, 1],
        [7] * 500,
    ],
    ids=str,
)
def test_fragments_are_assembled_and_let_go(make, how, sizes):
    proto = make(max_message_size=None)
    pieces = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    buf = _feed(proto, _fragments(proto, BINARY, pieces), how)
    (message,) = proto.events_received()
    assert type(message.data) is bytes
    assert message.data == b"".join(pieces)
    assert proto.assembly_size == 0
    if buf is not None:
        buf.append(0)  # no fragment view is left exporting the receive buffer


@SIDES
def test_a_message_of_empty_fragments_assembles_nothing(make):
    proto = make()
    proto.receive_data(_fragments(proto, TEXT, [b"", b""]))
    assert proto.assembly_size == 0
    proto.receive_data(incoming(proto, CONT, b""))
    (message,) = proto.events_received()
    assert message.data == b""


@SIDES
@FEEDS
def test_control_frames_between_fragments_do_not_disturb_the_assembly(make, how):
    proto = make()
    data = (
        incoming(proto, TEXT, "é".encode()[:1], fin=False)
        + incoming(proto, PING, b"p")
        + incoming(proto, CONT, "é".encode()[1:] + b"x" * 3000, fin=True)
        + incoming(proto, BINARY, b"next")
    )
    _feed(proto, data, how)
    events = proto.events_received()
    assert [bytes(e.data) for e in events[1:]] == ["é".encode() + b"x" * 3000, b"next"]


@SIDES
def test_the_buffer_never_grows_past_the_message_limit(make):
    limit = 100_000
    proto = make(max_message_size=limit)
    sizes = [30_000, 30_000, 30_000, 10_000]
    pieces = [b"z" * n for n in sizes]
    seen = []
    for i, piece in enumerate(pieces):
        proto.receive_data(incoming(proto, BINARY if i == 0 else CONT, piece, fin=i == 3))
        if proto.assembly_size != 0:
            seen.append(proto.assembly_size)
    (message,) = proto.events_received()
    assert len(message.data) == limit
    assert seen and max(seen) <= limit
    # Small first fragments get room for more, but not past a small limit either.
    small = make(max_message_size=1000)
    small.receive_data(incoming(small, BINARY, b"a" * 900, fin=False))
    assert small.assembly_size <= 1000
    small.receive_data(incoming(small, CONT, b"b" * 100))
    (message,) = small.events_received()
    assert message.data == b"a" * 900 + b"b" * 100


def _fail_new_data_frame(proto):
    proto.receive_data(incoming(proto, BINARY, b"new"))


def _fail_bad_utf8(proto):
    proto.receive_data(incoming(proto, CONT, b"\xff", fin=False))


def _close_frame(proto):
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))


def _eof(proto):
    proto.receive_eof()


def _local_fail(proto):
    proto.fail(1011, "bye")


@SIDES
@pytest.mark.parametrize(
    "end", [_fail_new_data_frame, _fail_bad_utf8, _close_frame, _eof, _local_fail]
)
def test_a_message_cut_short_lets_its_assembly_go(make, end):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, b"a" * 2000, fin=False))
    assert proto.assembly_size != 0
    end(proto)
    assert proto.assembly_size == 0


def test_assembly_memory_peak():
    """A 1 MiB message in 64 frames of 16 KiB: compiled, the peak beyond the input is
    the message itself (grown by realloc, doubling); pure, the bytearray and the
    final copy. The old list-and-join assembly peaked at 2 MiB in either build."""
    proto = server(max_message_size=None)
    chunk = b"q" * (16 * 1024)
    data = b"".join(
        frame(BINARY if i == 0 else CONT, chunk, fin=i == 63, mask=True) for i in range(64)
    )
    tracemalloc.start()
    try:
        proto.receive_data(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (message,) = proto.events_received()
    assert message.data == chunk * 64
    bound = 1.5 * MiB if IMPLEMENTATION == "compiled" else 2.5 * MiB
    assert peak < bound


@SIDES
def test_a_sink_gets_the_assembled_message(make):
    got = []
    proto = make()
    proto.message_sink = MessageCallback(
        lambda arg, kind, payload: got.append((kind, bytes(payload))),
        None,
        [None, "text", "binary"],
        list,
    )
    buf = bytearray(_fragments(proto, BINARY, [b"ab", b"cd"]))
    proto.receive_into_buffer(buf, 0, len(buf), True)
    assert got == [("binary", b"abcd")]
    buf.append(0)
