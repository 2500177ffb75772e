"""permessage-deflate (RFC 7692) messages: compression and decompression, context
takeover and windows, the backends, and the extension at work in the protocol core.

Negotiation is in test_permessage_deflate_negotiation.py; bombs, limits and the memory
held in test_permessage_deflate_memory.py; asyncio connections and the websockets
package in tests/asyncio/test_connection_compression.py. Compressed payloads are built
with the standard library's zlib (``tests.sansio.deflate_support``), not the code under
test, so that a bug in the encoder cannot hide one in the decoder.
"""

from __future__ import annotations

import os
import zlib

import pytest

from blazews.exceptions import MessageTooBig, ProtocolError
from blazews.sansio.extensions import _deflate_streams as streams
from blazews.sansio.extensions.permessage_deflate import PerMessageDeflate, available_backends
from tests.helpers import BINARY, CONT, PING, TEXT, assert_failed, describe, frame, parse_frames
from tests.helpers import client as client_proto
from tests.helpers import server as server_proto
from tests.sansio.deflate_support import JSON, TAIL, deflate, ext, inflate, pair

# -- messages -----------------------------------------------------------------------


def test_round_trip_and_rsv1_on_the_first_frame_only() -> None:
    sender, receiver = pair()
    rsv, data = sender.encode(TEXT, True, JSON)
    assert rsv == 0x40 and len(data) < len(JSON) // 2
    assert inflate(data) == JSON  # what stdlib zlib inflates
    assert receiver.decode(TEXT, True, rsv, data, None) == JSON
    out = b""
    parts = [(BINARY, False, JSON[:99]), (CONT, False, JSON[99:]), (CONT, True, b"")]
    for opcode, fin, part in parts:
        rsv, data = sender.encode(opcode, fin, part)
        assert rsv == (0x40 if opcode else 0)
        out += receiver.decode(opcode, fin, rsv, data, None)
    assert out == JSON


def test_context_takeover_across_messages() -> None:
    sender, receiver = pair()
    sizes = []
    for _ in range(3):
        rsv, data = sender.encode(TEXT, True, JSON)
        sizes.append(len(data))
        assert receiver.decode(TEXT, True, rsv, data, None) == JSON
    assert sizes[1] < sizes[0] // 3  # the second message refers to the first
    # Between messages the receiver keeps the peer's last window, not an inflater.
    assert sender.holds_compressor and not receiver.holds_decompressor
    assert receiver.idle_bytes == 3 * len(JSON)  # all three, within the 32 KiB window
    # A stdlib stream with context takeover is understood too.
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    receiver2 = ext()
    for text in (b"abcdefgh" * 10, b"abcdefgh" * 12):
        data = (c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert receiver2.decode(BINARY, True, 0x40, data, None) == text


def test_no_context_takeover_resets_and_holds_nothing_between_messages() -> None:
    sender, receiver = pair(no_context_takeover=True)
    for _ in range(3):
        rsv, data = sender.encode(TEXT, True, JSON)
        assert inflate(data) == JSON  # a fresh inflater suffices: no history used
        assert receiver.decode(TEXT, True, rsv, data, None) == JSON
        assert not sender.holds_compressor and not receiver.holds_decompressor


# Fixed-Huffman distance codes (RFC 1951 3.2.5): distance -> (code, extra bits, extra value).
DISTANCES = {512: (17, 7, 127), 4096: (23, 10, 1023), 4097: (24, 11, 0), 32768: (29, 13, 8191)}


def match_at(distance: int) -> bytes:
    """A message whose only content is a 3-byte match ``distance`` bytes back.

    One fixed-Huffman block (length code 257, the distance code, end of block), then
    the header of the empty stored block that a sync flush ends with, padded: the
    receiver appends the 4-byte tail that completes it.
    """
    bits: list[int] = [0, 1, 0]  # BFINAL 0, BTYPE 01 (LSB first)
    code, extra_bits, extra = DISTANCES[distance]
    bits += [0, 0, 0, 0, 0, 0, 1]  # symbol 257 (length 3), 7-bit code 0000001, MSB first
    bits += [(code >> i) & 1 for i in range(4, -1, -1)]  # 5-bit distance code, MSB first
    bits += [(extra >> i) & 1 for i in range(extra_bits)]  # extra bits, LSB first
    bits += [0] * 7  # symbol 256, end of block
    bits += [0, 0, 0]  # the empty stored block's header: BFINAL 0, BTYPE 00
    bits += [0] * (-len(bits) % 8)
    return bytes(
        sum(bit << i for i, bit in enumerate(bits[n : n + 8])) for n in range(0, len(bits), 8)
    )


@pytest.mark.parametrize("wbits", [9, 12, 15])
@pytest.mark.parametrize("backend", available_backends())
def test_parked_inflater_reaches_exactly_one_window_back(wbits: int, backend: str) -> None:
    window = 1 << wbits
    first = os.urandom(window)
    stored = zlib.compressobj(0, zlib.DEFLATED, -wbits)
    data = (stored.compress(first) + stored.flush(zlib.Z_SYNC_FLUSH))[:-4]
    receiver = ext(remote_max_window_bits=wbits, backend=backend)
    assert receiver.decode(BINARY, True, 0x40, data, None) == first
    assert not receiver.holds_decompressor and receiver.idle_bytes == window
    assert receiver.decode(BINARY, True, 0x40, match_at(window), None) == first[:3]
    if wbits == 12 and backend == "zlib":
        # One byte further is outside the window the peer may use: invalid data.
        receiver = ext(remote_max_window_bits=12, backend=backend)
        receiver.decode(BINARY, True, 0x40, data, None)
        with pytest.raises(ProtocolError) as info:
            receiver.decode(BINARY, True, 0x40, match_at(4097), None)
        assert info.value.close_code == 1007


@pytest.mark.parametrize("backend", available_backends())
def test_parked_window_spans_fragments_and_messages(backend: str) -> None:
    # The peer (stdlib zlib, one stream with context takeover) sends a message in
    # small fragments, then messages that repeat what lies up to a window back.
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    receiver = ext(remote_max_window_bits=12, backend=backend)
    pieces = [os.urandom(700) for _ in range(8)]
    for i, piece in enumerate(pieces):
        data = c.compress(piece) + c.flush(zlib.Z_SYNC_FLUSH)
        fin = i == len(pieces) - 1
        out = receiver.decode(
            BINARY if i == 0 else CONT, fin, 0 if i else 0x40, data[:-4] if fin else data, None
        )
        assert out == piece
        assert receiver.holds_decompressor == (not fin)
    assert receiver.idle_bytes == 4096  # the last 4 KiB of a 5,600-byte message
    tail = b"".join(pieces)[-3800:]  # in the fragmented message's last window
    mixed = tail[:1000] + b"x" * 10 + tail[-1000:]
    for message in (tail, mixed, b"y" * 3, mixed):
        data = (c.compress(message) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert receiver.decode(BINARY, True, 0x40, data, None) == message
        assert not receiver.holds_decompressor and receiver.idle_bytes == 4096
        assert len(data) < 100  # found in the window the receiver kept


def test_history_is_kept_only_with_the_peers_context_takeover() -> None:
    sender, receiver = pair(wbits=12, no_context_takeover=True)
    for _ in range(3):
        receiver.decode(BINARY, True, *sender.encode(BINARY, True, JSON * 30), None)
        assert receiver.idle_bytes == 0 and not receiver.holds_decompressor
    sender, receiver = pair(wbits=12)
    for _ in range(3):
        receiver.decode(BINARY, True, *sender.encode(BINARY, True, JSON * 30), None)
        assert receiver.idle_bytes == 4096 and not receiver.holds_decompressor


@pytest.mark.parametrize("remote_no_context_takeover", [False, True])
def test_a_peer_cannot_reach_another_connections_history(remote_no_context_takeover: bool) -> None:
    # Inflaters are never shared: a back-reference on a fresh connection finds nothing.
    secret = os.urandom(4096)
    stored = zlib.compressobj(0, zlib.DEFLATED, -12)
    other = ext(remote_max_window_bits=12, remote_no_context_takeover=remote_no_context_takeover)
    data = (stored.compress(secret) + stored.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert other.decode(BINARY, True, 0x40, data, None) == secret
    attacker = ext(remote_max_window_bits=12, remote_no_context_takeover=remote_no_context_takeover)
    with pytest.raises(ProtocolError) as info:
        attacker.decode(BINARY, True, 0x40, match_at(4096), None)
    assert info.value.close_code == 1007
    if remote_no_context_takeover:  # nor its own previous message
        with pytest.raises(ProtocolError):
            other.decode(BINARY, True, 0x40, match_at(4096), None)


def test_keep_tail() -> None:
    keep = streams.keep_tail
    assert keep(b"", b"", 4) == b""
    assert keep(b"ab", b"cd", 4) == b"abcd"
    assert keep(b"abc", b"de", 4) == b"bcde"
    assert keep(b"abc", b"defgh", 4) == b"efgh"
    assert keep(b"", b"abcd", 4) == b"abcd"


def test_streams_are_created_lazily() -> None:
    sender, receiver = pair(threshold=128)
    assert not sender.holds_compressor and not receiver.holds_decompressor
    assert sender.encode(TEXT, True, b"tiny") == (0, b"tiny")  # below the threshold
    assert receiver.decode(TEXT, True, 0, b"tiny", None) == b"tiny"
    assert not sender.holds_compressor and not receiver.holds_decompressor
    rsv, data = sender.encode(TEXT, True, JSON)
    assert sender.holds_compressor and not receiver.holds_decompressor
    receiver.decode(TEXT, True, rsv, data, None)
    assert not receiver.holds_decompressor and receiver.idle_bytes == len(JSON)


def test_compress_false_threshold_and_fragmented_messages() -> None:
    sender, _ = pair(threshold=128)
    assert sender.encode(TEXT, True, JSON, compress=False) == (0, JSON)
    assert sender.encode(TEXT, True, JSON[:127])[0] == 0
    assert sender.encode(TEXT, True, JSON[:128])[0] == 0x40
    # fragmented: compressed whatever the first frame's size; continuations follow it
    assert sender.encode(TEXT, False, b"a")[0] == 0x40
    assert sender.encode(CONT, True, b"b", compress=False)[0] == 0
    assert sender.encode(TEXT, False, b"a", compress=False) == (0, b"a")
    assert sender.encode(CONT, True, b"b") == (0, b"b")


def test_incompressible_messages_go_as_they_are() -> None:
    noise = os.urandom(1 << 19)
    # with context takeover, from max(64 KiB, twice the compressor's size) up: here
    # window 15 and memLevel 5, 288 KiB (a copy of the compressor is restored)
    sender, receiver = pair()
    assert sender.encode(BINARY, True, noise) == (0, noise)
    assert receiver.decode(BINARY, True, 0, noise, None) == noise
    for _ in range(2):  # the streams are still in step
        rsv, data = sender.encode(TEXT, True, JSON)
        assert rsv == 0x40 and receiver.decode(TEXT, True, rsv, data, None) == JSON
    # without context takeover, whatever the size
    sender, _ = pair(no_context_takeover=True)
    assert sender.encode(BINARY, True, noise[:200]) == (0, noise[:200])
    # unless asked to compress everything
    sender = ext(compress_threshold=0, skip_incompressible=False)
    assert sender.encode(BINARY, True, noise)[0] == 0x40


def test_window_bits_8() -> None:
    # zlib cannot deflate with a 256-byte window: that direction goes uncompressed.
    with pytest.raises(ValueError):
        zlib.compressobj(6, zlib.DEFLATED, -8)
    sender = ext(local_max_window_bits=8, compress_threshold=0)
    assert sender.encode(TEXT, True, JSON) == (0, JSON)
    assert sender.compress(JSON) == JSON
    # Inflating tolerates zlib peers that use 9 when 8 was agreed.
    receiver = ext(remote_max_window_bits=8)
    message = os.urandom(400) * 3  # back-references 400 bytes away
    assert receiver.decode(BINARY, True, 0x40, deflate(message, wbits=9), None) == message


@pytest.mark.parametrize("wbits", range(9, 16))
def test_window_sizes_are_honoured(wbits: int) -> None:
    sender, receiver = pair(wbits=wbits)
    message = os.urandom(1 << wbits) * 2 + JSON
    rsv, data = sender.encode(BINARY, True, message)
    assert receiver.decode(BINARY, True, rsv, data, None) == message
    d = zlib.decompressobj(-wbits)  # an inflater with exactly that window, fed slowly
    out, pending = b"", data + TAIL
    while pending:
        out += d.decompress(pending, 7)
        pending = d.unconsumed_tail
    assert out == message


def test_rsv1_on_a_continuation_frame_is_a_protocol_error() -> None:
    _, receiver = pair()
    receiver.decode(TEXT, False, 0x40, deflate(b"abc"), None)
    with pytest.raises(ProtocolError) as info:
        receiver.decode(CONT, True, 0x40, b"", None)
    assert info.value.close_code == 1002
    _, receiver = pair()
    receiver.decode(TEXT, False, 0, b"abc", None)  # uncompressed message
    with pytest.raises(ProtocolError):
        receiver.decode(CONT, True, 0x40, b"", None)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xff\xff\xff", b"\x07" * 10, deflate(b"x") + b"\xff" * 4]
)
def test_invalid_deflate_data_is_1007(garbage: bytes) -> None:
    _, receiver = pair()
    with pytest.raises(ProtocolError) as info:
        receiver.decode(BINARY, True, 0x40, garbage, None)
    assert info.value.close_code == 1007
    assert not isinstance(info.value, MessageTooBig)


def test_final_block_ends_the_stream() -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = c.compress(b"hello") + c.flush(zlib.Z_FINISH)  # BFINAL set, no tail
    _, receiver = pair()
    assert receiver.decode(TEXT, True, 0x40, final, None) == b"hello"
    assert not receiver.holds_decompressor  # the next message starts a new stream
    assert receiver.decode(TEXT, True, 0x40, deflate(b"again"), None) == b"again"
    with pytest.raises(ProtocolError) as info:
        receiver.decode(TEXT, True, 0x40, final + b"junk", None)
    assert info.value.close_code == 1007


def test_empty_messages() -> None:
    sender, receiver = pair()
    rsv, data = sender.encode(BINARY, True, b"")
    assert rsv == 0x40 and data == b"\x00"
    assert receiver.decode(BINARY, True, rsv, data, None) == b""
    assert receiver.decode(BINARY, True, 0x40, b"", None) == b""  # empty payload: empty message
    assert receiver.decode(BINARY, True, rsv, deflate(b"next"), None) == b"next"


# -- backends -----------------------------------------------------------------------


def test_backend_choice() -> None:
    assert available_backends()[-1] == "zlib"
    assert ext().backend == "zlib"
    auto = PerMessageDeflate(backend="auto")
    assert auto.backend == available_backends()[0]
    assert auto.inflate_backend == ("zlib-ng" if "zlib-ng" in available_backends() else "zlib")
    assert ext().inflate_backend == "zlib"
    if "isal" in available_backends():  # named: both ways
        assert PerMessageDeflate(backend="isal").inflate_backend == "isal"
    with pytest.raises(ValueError):
        PerMessageDeflate(backend="lz4")


@pytest.mark.parametrize("compressing", available_backends())
@pytest.mark.parametrize("inflating", available_backends())
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_backends_interoperate(compressing: str, inflating: str, no_context_takeover: bool) -> None:
    for wbits in (9, 12, 15):
        backends = (compressing, inflating)
        sender, receiver = pair(
            wbits=wbits, no_context_takeover=no_context_takeover, backends=backends
        )
        for message in (JSON, JSON * 50, os.urandom(3000) * 3, b"x"):
            rsv, data = sender.encode(BINARY, True, message)
            assert receiver.decode(BINARY, True, rsv, data, len(message)) == message
        rsv, data = sender.encode(BINARY, False, JSON)
        assert receiver.decode(BINARY, False, rsv, data, None) == JSON
        rsv, data = sender.encode(CONT, True, JSON)
        assert receiver.decode(CONT, True, rsv, data, None) == JSON


# -- through the protocol core ------------------------------------------------------


def test_protocol_round_trip_and_control_frames_uncompressed() -> None:
    a = client_proto(extensions=[ext(compress_threshold=0)])
    b = server_proto(extensions=[ext()])
    a.send_text(JSON)
    a.send_ping(b"ping")
    a.send_binary(b"\x01" * 1000, fin=False)
    a.send_continuation(b"\x02" * 1000, fin=True)
    a.send_text(JSON)
    wire = b"".join(a.data_to_send())
    frames = parse_frames(wire)
    expected = [(TEXT, 0x40), (PING, 0), (BINARY, 0x40), (CONT, 0), (TEXT, 0x40)]
    assert [(f.opcode, f.rsv) for f in frames] == expected
    assert len(frames[4].payload) < len(frames[0].payload) // 3  # context takeover
    b.receive_data(wire)
    assert describe(b.events_received()) == [
        ("message", TEXT, JSON),
        ("ping", None, b"ping"),
        ("message", BINARY, b"\x01" * 1000 + b"\x02" * 1000),
        ("message", TEXT, JSON),
    ]


def test_protocol_fails_with_the_right_codes() -> None:
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, b"\xff\xff\xff", rsv=0x40, mask=True))
    assert_failed(proto, 1007)
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, deflate(b"ab"), fin=False, rsv=0x40, mask=True))
    proto.receive_data(frame(CONT, b"", rsv=0x40, mask=True))
    assert_failed(proto, 1002)
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, deflate(b"\xff\xfe"), rsv=0x40, mask=True))
    assert_failed(proto, 1007)  # invalid UTF-8 once inflated
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(TEXT, deflate(b"ok"), rsv=0x20, mask=True))
    assert_failed(proto, 1002)  # RSV2 is not ours


def test_rsv1_on_a_control_frame_is_1002() -> None:
    proto = server_proto(extensions=[ext()])
    proto.receive_data(frame(PING, b"x", rsv=0x40, mask=True))
    assert_failed(proto, 1002)


def test_protocol_send_with_compress_false() -> None:
    proto = client_proto(extensions=[ext(compress_threshold=0)])
    proto.send_data(JSON, compress=False)
    (sent,) = parse_frames(proto.data_to_send())
    assert sent.rsv == 0 and sent.payload == JSON


def test_incompressible_message_of_exactly_the_limit_is_accepted() -> None:
    message = os.urandom(100_000)
    proto = server_proto(max_message_size=len(message), extensions=[ext()])
    proto.receive_data(frame(BINARY, deflate(message, level=1), rsv=0x40, mask=True))
    assert describe(proto.events_received()) == [("message", BINARY, message)]
