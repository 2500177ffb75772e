"""Frame-level rules of RFC 6455 §5 as the sans-I/O core applies them.

Opcodes, the three length encodings, masking in both directions, RSV bits, control
frame rules and reserved opcodes. Frames are built by hand (``helpers.frame``) and what
the core writes is parsed by a reference parser (``helpers.parse_frames``).
"""

from __future__ import annotations

import os
import struct
import sys
import types

import pytest

from blazews.exceptions import ProtocolError
from blazews.sansio import protocol as protocol_module
from blazews.sansio.extensions import Extension
from blazews.sansio.frames import Close, Opcode, is_valid_close_code
from blazews.sansio.protocol import Message, Ping, Pong, Protocol, Side, State
from tests.helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    SIDES,
    TEXT,
    assert_failed,
    client,
    close_payload,
    describe,
    frame,
    incoming,
    parse_frames,
    sent_frames,
    server,
    xor,
)

# -- opcodes -------------------------------------------------------------------------


@SIDES
def test_receive_every_data_opcode(make):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, "héllo".encode()))
    proto.receive_data(incoming(proto, BINARY, b"\x00\xff"))
    proto.receive_data(incoming(proto, BINARY, b"ab", fin=False))
    proto.receive_data(incoming(proto, CONT, b"cd"))
    assert describe(proto.events_received()) == [
        ("message", 1, "héllo".encode()),
        ("message", 2, b"\x00\xff"),
        ("message", 2, b"abcd"),
    ]
    assert proto.protocol_error is None


@SIDES
def test_receive_every_control_opcode(make):
    proto = make()
    proto.receive_data(incoming(proto, PING, b"p"))
    proto.receive_data(incoming(proto, PONG, b"q"))
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000, b"bye")))
    assert describe(proto.events_received()) == [("ping", None, b"p"), ("pong", None, b"q")]
    assert proto.close_rcvd == Close(1000, "bye")
    written = sent_frames(proto)
    assert [(f.opcode, f.payload) for f in written] == [(PONG, b"p"), (CLOSE, close_payload(1000))]


@SIDES
def test_send_every_opcode(make):
    proto = make()
    proto.send_text("t")
    proto.send_binary(b"b")
    proto.send_data("s")
    proto.send_data(b"d")
    proto.send_binary(b"f1", fin=False)
    proto.send_continuation(b"f2", fin=False)
    proto.send_continuation(b"f3", fin=True)
    proto.send_ping(b"pi")
    proto.send_pong(b"po")
    proto.send_close(1001, "away")
    got = [(f.fin, f.rsv, f.opcode, f.payload) for f in sent_frames(proto)]
    assert got == [
        (True, 0, TEXT, b"t"),
        (True, 0, BINARY, b"b"),
        (True, 0, TEXT, b"s"),
        (True, 0, BINARY, b"d"),
        (False, 0, BINARY, b"f1"),
        (False, 0, CONT, b"f2"),
        (True, 0, CONT, b"f3"),
        (True, 0, PING, b"pi"),
        (True, 0, PONG, b"po"),
        (True, 0, CLOSE, close_payload(1001, b"away")),
    ]


def test_opcode_enum_values():
    assert [int(o) for o in Opcode] == [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]


RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]


@SIDES
@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=hex)
def test_reserved_opcode_fails_1002(make, opcode):
    proto = make()
    proto.receive_data(
        incoming(proto, BINARY, b"ok")
        + incoming(proto, opcode, b"x")
        + incoming(proto, BINARY, b"after")
    )
    assert describe(proto.events_received()) == [("message", 2, b"ok")]
    assert_failed(proto, 1002)


@SIDES
@pytest.mark.parametrize("opcode", [3, 0xB], ids=hex)
def test_reserved_opcode_inside_fragmented_message_fails_1002(make, opcode):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, b"a", fin=False))
    proto.receive_data(incoming(proto, opcode, b""))
    assert proto.events_received() == []
    assert_failed(proto, 1002)


# -- lengths -------------------------------------------------------------------------


@SIDES
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_receive_minimal_lengths(make, size):
    proto = make()
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    proto.receive_data(incoming(proto, BINARY, payload))
    assert describe(proto.events_received()) == [("message", 2, payload)]


@SIDES
@pytest.mark.parametrize(
    ("size", "bits"), [(0, 16), (5, 16), (125, 16), (5, 64), (200, 64), (65535, 64)]
)
def test_receive_non_minimal_lengths_leniently(make, size, bits):
    proto = make()
    payload = b"z" * size
    data = incoming(proto, BINARY, payload, length_bits=bits)
    assert len(data) == size + (4 if bits == 16 else 10) + (4 if make is server else 0)
    proto.receive_data(data)
    assert describe(proto.events_received()) == [("message", 2, payload)]
    assert proto.protocol_error is None


@SIDES
def test_control_frame_with_non_minimal_length_is_accepted(make):
    proto = make()
    proto.receive_data(incoming(proto, PING, b"hi", length_bits=64))
    assert describe(proto.events_received()) == [("ping", None, b"hi")]


@SIDES
@pytest.mark.parametrize("length", [1 << 63, (1 << 64) - 1, (1 << 63) + 5])
def test_64_bit_length_with_top_bit_set_fails_1002(make, length):
    proto = make(max_message_size=None)
    proto.receive_data(incoming(proto, BINARY, length=length, length_bits=64, with_payload=False))
    assert_failed(proto, 1002)
    assert proto.buffered == 0


@SIDES
@pytest.mark.parametrize("bits", [16, 64])
def test_too_big_frame_fails_1009_on_its_header(make, bits):
    """The header alone is enough: nothing waits for (or makes room for) the payload."""
    proto = make(max_message_size=1000)
    proto.receive_data(incoming(proto, BINARY, length=1001, length_bits=bits, with_payload=False))
    assert_failed(proto, 1009)
    assert proto.buffered == 0


@SIDES
def test_huge_announced_length_fails_1009_with_default_limit(make):
    proto = make()
    proto.receive_data(
        incoming(proto, BINARY, length=(1 << 62), length_bits=64, with_payload=False)
    )
    assert_failed(proto, 1009)


@SIDES
def test_too_big_continuation_fails_1009_on_its_header(make):
    proto = make(max_message_size=1000)
    proto.receive_data(incoming(proto, BINARY, b"x" * 600, fin=False))
    proto.receive_data(incoming(proto, CONT, length=401, with_payload=False))
    assert proto.events_received() == []
    assert_failed(proto, 1009)


@SIDES
def test_huge_frame_without_limit_only_buffers_what_arrived(make):
    proto = make(max_message_size=None)
    header = incoming(proto, BINARY, length=(1 << 62), length_bits=64, with_payload=False)
    proto.receive_data(header + b"abc")
    assert proto.protocol_error is None
    assert proto.buffered == len(header) + 3


@SIDES
def test_header_split_byte_by_byte(make):
    proto = make()
    payload = bytes(range(200)) * 400  # 80,000 bytes: a 64-bit length
    data = incoming(proto, BINARY, payload) + incoming(proto, PING, b"x", length_bits=16)
    for i in range(16):
        proto.receive_data(data[i : i + 1])
    assert proto.events_received() == []
    proto.receive_data(data[16:-3])  # the message and 3 bytes of the ping's header
    assert describe(proto.events_received()) == [("message", 2, payload)]
    for i in range(len(data) - 3, len(data) - 1):
        proto.receive_data(data[i : i + 1])
        assert proto.events_received() == []
    proto.receive_data(data[-1:])
    assert describe(proto.events_received()) == [("ping", None, b"x")]


@SIDES
@pytest.mark.parametrize(
    ("size", "header_len"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
def test_written_frames_use_minimal_lengths(make, size, header_len):
    proto = make()
    proto.send_binary(b"q" * size)
    (written,) = sent_frames(proto)
    assert written.header_len == header_len + (4 if make is client else 0)
    assert written.payload == b"q" * size


# -- masking -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"\x00\x00\x00\x00", b"\xff\x00\xff\x00", b"\x12\x34\x56\x78"])
def test_server_unmasks_client_frames(key):
    proto = server()
    payload = bytes(range(256)) * 3 + b"tail"
    proto.receive_data(frame(BINARY, payload, mask=key) + frame(PING, b"ping!", mask=key))
    assert describe(proto.events_received()) == [("message", 2, payload), ("ping", None, b"ping!")]


def test_client_masks_every_frame_and_server_writes_unmasked():
    c, s = client(), server()
    for proto in (c, s):
        proto.send_text("hello")
        proto.send_binary(b"\x00" * 2000)
        proto.send_ping(b"p")
        proto.send_pong(b"")
        proto.send_close(1000)
    c_frames = sent_frames(c)
    s_frames = sent_frames(s)
    assert all(f.masked for f in c_frames)
    assert not any(f.masked for f in s_frames)
    assert [f.payload for f in c_frames] == [f.payload for f in s_frames]


def test_client_masking_changes_the_bytes_on_the_wire():
    c = client()
    c.send_binary(b"\x00" * 64)
    raw = b"".join(c.data_to_send())
    key = raw[2:6]
    assert raw[6:] == key * 16


class _FakeOS:
    """Stands in for ``os`` in blazews.sansio.frames: counts urandom calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.given = b""

    def urandom(self, n: int) -> bytes:
        self.calls += 1
        chunk = os.urandom(n)
        self.given += chunk
        return chunk


def core_module():
    """The module of the sending half of the Protocol that runs (compiled or pure):
    its ``os`` draws the keys."""
    return sys.modules[protocol_module.Protocol.__mro__[1].__module__]


def test_mask_keys_come_from_os_urandom_in_batches(monkeypatch):
    fake = _FakeOS()
    monkeypatch.setattr(core_module(), "os", fake)
    proto = client()
    count = 1000
    for i in range(count):
        proto.send_binary(bytes((i % 256,)))
    keys = [f.key for f in sent_frames(proto)]
    # Each key is the next 4 bytes that os.urandom returned, in order.
    assert b"".join(keys) == fake.given[: 4 * count]
    # Fetched in batches: far fewer system calls than frames.
    assert 1 <= fake.calls <= count // 100
    # Unpredictable keys differ from frame to frame (a repeat among 1000 random
    # 32-bit keys happens about once in 10,000 runs; allow it).
    assert len(set(keys)) >= count - 1


def test_mask_keys_do_not_use_the_random_module(monkeypatch):
    """Keys must not be derived from ``random`` (predictable): with os.urandom
    patched to a constant stream, the keys follow it exactly."""
    fake = types.SimpleNamespace(urandom=lambda n: bytes(range(4)) * (n // 4) + b"\x09" * (n % 4))
    monkeypatch.setattr(core_module(), "os", fake)
    proto = client()
    for _ in range(600):
        proto.send_binary(b"payload")
    assert {f.key for f in sent_frames(proto)} == {b"\x00\x01\x02\x03"}


def test_two_clients_use_different_keys():
    a, b = client(), client()
    for proto in (a, b):
        for _ in range(8):
            proto.send_binary(b"x")
    keys_a = [f.key for f in sent_frames(a)]
    keys_b = [f.key for f in sent_frames(b)]
    assert keys_a != keys_b


def test_client_rejects_masked_server_frame_before_delivering_it():
    proto = client()
    data = frame(TEXT, b"first") + frame(TEXT, b"masked", mask=True) + frame(TEXT, b"after")
    proto.receive_data(data)
    assert describe(proto.events_received()) == [("message", 1, b"first")]
    assert_failed(proto, 1002)


def test_server_rejects_unmasked_client_frame_before_delivering_it():
    proto = server()
    data = (
        frame(TEXT, b"first", mask=True) + frame(TEXT, b"plain") + frame(TEXT, b"after", mask=True)
    )
    proto.receive_data(data)
    assert describe(proto.events_received()) == [("message", 1, b"first")]
    assert_failed(proto, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE, CONT])
def test_mask_direction_checked_for_every_opcode(opcode):
    s = server()
    s.receive_data(frame(opcode, b""))
    assert s.events_received() == []
    assert_failed(s, 1002)
    c = client()
    c.receive_data(frame(opcode, b"", mask=True))
    assert c.events_received() == []
    assert_failed(c, 1002)


def test_mask_direction_checked_on_the_header_alone():
    proto = client()
    proto.receive_data(frame(BINARY, length=5000, mask=True, with_payload=False))
    assert_failed(proto, 1002)


# -- RSV bits ------------------------------------------------------------------------


@SIDES
@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, CLOSE])
def test_rsv_bits_without_extension_fail_1002(make, rsv, opcode):
    proto = make()
    proto.receive_data(incoming(proto, opcode, b"", rsv=rsv))
    assert proto.events_received() == []
    assert_failed(proto, 1002)


@SIDES
def test_rsv_bit_on_continuation_without_extension_fails_1002(make):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"a", fin=False))
    proto.receive_data(incoming(proto, CONT, b"b", rsv=0x40))
    assert proto.events_received() == []
    assert_failed(proto, 1002)


class Rsv1Extension(Extension):
    """Claims RSV1; records what it decodes; leaves payloads as they are."""

    name = "x-rsv1"
    rsv_bits = 0x40

    def __init__(self) -> None:
        self.decoded: list[tuple[int, bool, int, bytes]] = []

    def decode(self, opcode, fin, rsv, payload, max_size):
        self.decoded.append((opcode, fin, rsv, bytes(payload)))
        return payload


@SIDES
def test_rsv_bit_claimed_by_extension_is_accepted(make):
    ext = Rsv1Extension()
    proto = make(extensions=[ext])
    proto.receive_data(incoming(proto, BINARY, b"abc", rsv=0x40))
    proto.receive_data(incoming(proto, TEXT, b"de", rsv=0x40, fin=False))
    proto.receive_data(incoming(proto, CONT, b"f"))
    assert describe(proto.events_received()) == [("message", 2, b"abc"), ("message", 1, b"def")]
    assert ext.decoded == [
        (BINARY, True, 0x40, b"abc"),
        (TEXT, False, 0x40, b"de"),
        (CONT, True, 0, b"f"),
    ]
    assert proto.protocol_error is None


@SIDES
@pytest.mark.parametrize("rsv", [0x20, 0x10])
def test_rsv_bits_not_claimed_by_extension_still_fail(make, rsv):
    proto = make(extensions=[Rsv1Extension()])
    proto.receive_data(incoming(proto, BINARY, b"abc", rsv=rsv))
    assert_failed(proto, 1002)


# -- control frames ------------------------------------------------------------------


@SIDES
@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frame_fails_1002(make, opcode):
    proto = make()
    proto.receive_data(incoming(proto, opcode, b"", fin=False))
    assert proto.events_received() == []
    assert proto.close_rcvd is None
    assert_failed(proto, 1002)


@SIDES
@pytest.mark.parametrize("opcode", [PING, PONG])
def test_control_frame_of_125_bytes_is_accepted(make, opcode):
    proto = make()
    proto.receive_data(incoming(proto, opcode, b"c" * 125))
    assert [e.data for e in proto.events_received()] == [b"c" * 125]


@SIDES
@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
@pytest.mark.parametrize("length", [126, 127, 65535, 1 << 40])
def test_control_frame_over_125_bytes_fails_1002_on_its_header(make, opcode, length):
    proto = make()
    proto.receive_data(incoming(proto, opcode, length=length, with_payload=False))
    assert proto.close_rcvd is None
    assert_failed(proto, 1002)
    assert proto.buffered == 0


def test_send_control_frame_over_125_bytes_raises():
    proto = client()
    with pytest.raises(ValueError):
        proto.send_ping(b"x" * 126)
    with pytest.raises(ValueError):
        proto.send_pong(b"x" * 126)
    proto.send_ping(b"x" * 125)
    assert sent_frames(proto)[0].payload == b"x" * 125


# -- close frame payloads (frames module) --------------------------------------------


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        (0, False),
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1014, True),
        (1015, False),
        (1016, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
        (65535, False),
    ],
)
def test_is_valid_close_code(code, valid):
    assert is_valid_close_code(code) is valid


def test_close_parse_and_serialize():
    assert Close.parse(b"") == Close(1005, "")
    assert Close.parse(close_payload(1000)) == Close(1000, "")
    assert Close.parse(close_payload(4000, "é".encode())) == Close(4000, "é")
    assert Close(1001, "x").serialize() == close_payload(1001, b"x")
    assert Close(1005).serialize() == b""
    with pytest.raises(ProtocolError) as info:
        Close.parse(b"\x03")
    assert info.value.close_code == 1002
    with pytest.raises(ProtocolError) as info:
        Close.parse(close_payload(1000, b"\xff"))
    assert info.value.close_code == 1007


def test_xor_helper_is_an_involution():
    """The tests' own reference masking (guards the helpers against silly mistakes)."""
    data = bytes(range(13))
    key = b"\x01\x02\x03\x04"
    assert xor(data, key)[:5] == bytes((0 ^ 1, 1 ^ 2, 2 ^ 3, 3 ^ 4, 4 ^ 1))
    assert xor(xor(data, key), key) == data
    assert parse_frames(frame(BINARY, data, mask=key))[0].payload == data
    assert struct.unpack("!H", frame(BINARY, b"", length_bits=16)[2:4]) == (0,)


def test_protocol_side_attributes():
    assert Protocol(Side.CLIENT).state is State.OPEN
    assert (
        isinstance(Message(1, b""), Message)
        and isinstance(Ping(b""), Ping)
        and isinstance(Pong(b""), Pong)
    )
