"""Large client frames masked on their way out, a piece at a time (``MaskLater``).

The core hands a client frame whose payload reaches ``Protocol.mask_later`` to the
front end unmasked, as a ``MaskLater``; the front end masks it piece by piece through
a buffer of its own while it writes. The tests here check the pieces against a
reference parser (pieces of awkward sizes, so the key's phase moves between them) and
what stays as before. How the front ends use it, and the point of it all (sending a
large message no longer allocates a masked copy of it): tests/sync/test_mask_later.py
and tests/asyncio/test_mask_later.py.
"""

from __future__ import annotations

import array
import os
import random

import pytest

from blazews import MaskLater
from blazews.sansio.protocol import Protocol, Side
from tests.helpers import BINARY, CONT, TEXT, KiB, MiB, parse_frames


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
