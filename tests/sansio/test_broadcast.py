"""PreparedMessage: a message's frame built once per way of encoding it, by the core."""

from __future__ import annotations

import zlib

import pytest

from blazews.exceptions import ConnectionClosed
from blazews.sansio.broadcast import BroadcastResult, PreparedMessage, check_policy
from blazews.sansio.extensions.permessage_deflate import PerMessageDeflate
from blazews.sansio.protocol import Protocol, Side, State
from tests.helpers import BINARY, TEXT, client, parse_frames, sent_frames, server


def _deflate_server(**kwargs: object) -> Protocol:
    proto = server()
    ext = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=12, **kwargs)  # type: ignore[arg-type]
    proto.extensions = [ext]
    return proto


def _inflate(payload: bytes, wbits: int = 12) -> bytes:
    return zlib.decompressobj(-wbits).decompress(payload + b"\x00\x00\xff\xff")


def test_the_frame_is_what_send_would_write() -> None:
    for message, opcode in (("héllo", TEXT), (b"\x00" * 300, BINARY), (bytearray(70000), BINARY)):
        proto = server()
        proto.send_data(message)
        expected = b"".join(bytes(c) for c in proto.data_to_send())
        prepared = PreparedMessage(message)
        frame = prepared.frame_for(server())
        assert frame == expected
        (parsed,) = parse_frames(frame)
        assert parsed.opcode == opcode and not parsed.masked and parsed.fin


def test_one_frame_for_every_plain_connection() -> None:
    prepared = PreparedMessage(b"x" * 256)
    protos = [server() for _ in range(5)]
    frames = {id(prepared.frame_for(p)) for p in protos}
    assert len(frames) == 1 and prepared.builds == 1
    for p in protos:
        assert prepared.send_to(p) == 4 + 256  # 126: a 16-bit length
        (f,) = sent_frames(p)
        assert f.payload == b"x" * 256


def test_compressed_once_per_setting_without_context_takeover() -> None:
    data = b"abc" * 1000
    prepared = PreparedMessage(data)
    same = [_deflate_server() for _ in range(4)]
    other = [_deflate_server(compression_level=9) for _ in range(3)]
    for p in same + other:
        prepared.send_to(p)
    assert prepared.builds == 2
    for p in same + other:
        (f,) = sent_frames(p)
        assert f.rsv == 0x40 and len(f.payload) < len(data)
        assert _inflate(f.payload) == data


def test_below_the_threshold_and_compress_false_go_plain() -> None:
    prepared = PreparedMessage(b"tiny")
    p = _deflate_server()
    prepared.send_to(p)
    (f,) = sent_frames(p)
    assert f.rsv == 0 and f.payload == b"tiny"
    off = PreparedMessage(b"abc" * 1000, compress=False)
    for proto in (_deflate_server(), server()):
        off.send_to(proto)
        (f,) = sent_frames(proto)
        assert f.rsv == 0 and f.payload == b"abc" * 1000
    assert off.builds == 1  # the plain frame serves both


def test_context_takeover_and_clients_build_their_own() -> None:
    data = b"abc" * 1000
    prepared = PreparedMessage(data)
    kept = server()
    kept.extensions = [PerMessageDeflate(local_no_context_takeover=False)]
    assert prepared.frame_for(kept) is None
    assert prepared.frame_for(client()) is None
    # Each then sends through its own protocol, as any send does.
    assert prepared.send_to(kept) == 0
    (f,) = sent_frames(kept)
    assert f.rsv == 0x40 and _inflate(f.payload, 15) == data
    c = client()
    prepared.send_to(c)
    (f,) = sent_frames(c)
    assert f.masked and f.payload == data
    assert prepared.builds == 0


def test_send_prepared_keeps_the_state_checks() -> None:
    frame = PreparedMessage("hi").frame_for(server())
    assert frame is not None
    closed = Protocol(Side.SERVER, state=State.CLOSED)
    with pytest.raises(ConnectionClosed):
        closed.send_prepared(frame)
    with pytest.raises(ConnectionClosed):
        PreparedMessage("hi").send_to(closed)
    with pytest.raises(ValueError, match="only a server"):
        client().send_prepared(frame)


def test_a_fragmented_compressed_message_in_progress_is_not_shared() -> None:
    p = _deflate_server()
    key = p.extensions[0].shared_key  # type: ignore[attr-defined]
    assert key is not None
    p.send_frame(BINARY, b"a" * 500, False)
    assert p.extensions[0].shared_key is None  # type: ignore[attr-defined]
    assert PreparedMessage(b"b" * 500).frame_for(p) is None
    p.send_frame(0, b"a" * 500, True)  # its last frame: shared again
    assert p.extensions[0].shared_key is key  # type: ignore[attr-defined]
    p.send_frame(BINARY, b"c" * 10)  # below the threshold: sent as it is
    assert p.extensions[0].shared_key is key  # type: ignore[attr-defined]


def test_equal_settings_share_one_key_object_and_one_frame() -> None:
    # A broadcast tells connections alike by the identity of their key.
    a, b = _deflate_server(), _deflate_server()
    other = _deflate_server(compress_threshold=0)
    key_a = a.extensions[0].shared_key  # type: ignore[attr-defined]
    assert key_a is b.extensions[0].shared_key  # type: ignore[attr-defined]
    assert key_a != other.extensions[0].shared_key  # type: ignore[attr-defined]
    prepared = PreparedMessage(b"x" * 300)
    frame_a = prepared.frame_for(a)
    assert frame_a is not None and prepared.frame_for(b) is frame_a
    frame_other = prepared.frame_for(other)
    assert frame_other is not None and frame_other is not frame_a
    assert prepared.frame_for(a) is frame_a  # the kept frame, after another key
    assert prepared.builds == 2
    assert _inflate(parse_frames(frame_a)[0].payload) == b"x" * 300


def test_policy_arguments_are_checked() -> None:
    check_policy("skip", 0, 1008)
    check_policy("queue", 10, 1013)
    with pytest.raises(ValueError, match="slow must be"):
        check_policy("drop", 0, 1008)
    with pytest.raises(ValueError, match="max_queued"):
        check_policy("queue", -1, 1008)
    with pytest.raises(ValueError, match="close_code"):
        check_policy("close", 0, 1000)
    assert BroadcastResult() == (0, 0, 0, 0)
