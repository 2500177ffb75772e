"""The sans-I/O state machine closing: close codes and reasons, who closes first, what
may still be sent and received, when the transport goes, and failing the connection.
"""

from __future__ import annotations

import pytest

from blazews.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ProtocolError,
)
from blazews.sansio.extensions import Extension
from blazews.sansio.frames import Close
from blazews.sansio.protocol import State
from tests.helpers import (
    BINARY,
    CLOSE,
    PING,
    SIDES,
    TEXT,
    assert_failed,
    client,
    close_payload,
    describe,
    incoming,
    sent_frames,
    server,
)

# -- closing handshake ---------------------------------------------------------------

ACCEPTED_CODES = [
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    3000,
    3999,
    4000,
    4999,
]
REFUSED_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@SIDES
@pytest.mark.parametrize("code", ACCEPTED_CODES)
def test_valid_close_code_is_echoed(make, code):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, close_payload(code, b"why")))
    assert proto.protocol_error is None
    assert proto.close_rcvd == Close(code, "why")
    (reply,) = sent_frames(proto)
    assert (reply.opcode, reply.payload[:2]) == (CLOSE, close_payload(code))
    assert proto.close_sent is not None and proto.close_sent.code == code
    assert proto.close_rcvd_then_sent is True
    assert proto.state is State.CLOSING
    assert not proto.receiving


@SIDES
@pytest.mark.parametrize("code", REFUSED_CODES)
def test_invalid_close_code_is_answered_with_1002(make, code):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, close_payload(code)))
    assert proto.close_rcvd is None
    assert_failed(proto, 1002)


@SIDES
def test_one_byte_close_payload_fails_1002(make):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, b"\x03"))
    assert_failed(proto, 1002)


@SIDES
def test_empty_close_payload_is_1005_and_answered_empty(make):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, b""))
    assert proto.protocol_error is None
    assert proto.close_rcvd == Close(1005, "")
    (reply,) = sent_frames(proto)
    assert (reply.opcode, reply.payload) == (CLOSE, b"")
    assert proto.close_exc().code == 1005


@SIDES
@pytest.mark.parametrize("reason", [b"\xff", b"ok\xed\xa0\x80", b"\xe2\x82"])
def test_close_reason_not_utf8_fails_1007(make, reason):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000, reason)))
    assert proto.close_rcvd is None
    assert_failed(proto, 1007)


@SIDES
def test_close_reason_utf8_is_kept(make):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, close_payload(4001, "fermé €".encode())))
    assert proto.close_rcvd == Close(4001, "fermé €")
    exc = proto.close_exc()
    assert (exc.code, exc.reason) == (4001, "fermé €")


@SIDES
def test_peer_closes_first(make):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000, b"done")))
    assert proto.close_rcvd == Close(1000, "done")
    assert proto.close_sent == Close(1000, "")
    assert proto.close_rcvd_then_sent is True
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.rcvd, exc.sent, exc.rcvd_then_sent) == (proto.close_rcvd, proto.close_sent, True)


@SIDES
def test_we_close_first(make):
    proto = make()
    proto.send_close(1001, "leaving")
    assert proto.state is State.CLOSING
    assert proto.close_sent == Close(1001, "leaving")
    assert proto.close_rcvd is None
    (sent,) = sent_frames(proto)
    assert sent.payload == close_payload(1001, b"leaving")
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))
    assert sent_frames(proto) == []  # no second close frame
    assert proto.close_rcvd == Close(1000, "")
    assert proto.close_rcvd_then_sent is False
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.rcvd.code, exc.sent.code, exc.rcvd_then_sent) == (1000, 1001, False)


@SIDES
@pytest.mark.parametrize("code", [1002, 1003, 1011, 4000])
def test_close_with_error_code_gives_connection_closed_error(make, code):
    proto = make()
    proto.receive_data(incoming(proto, CLOSE, close_payload(code)))
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.__cause__ is None
    assert exc.code == code


@SIDES
@pytest.mark.parametrize(("sent", "rcvd"), [(1011, 1000), (1000, 1002), (1001, 4000)])
def test_close_exchange_with_an_error_code_gives_connection_closed_error(make, sent, rcvd):
    proto = make()
    proto.send_close(sent)
    proto.receive_data(incoming(proto, CLOSE, close_payload(rcvd)))
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.sent.code, exc.rcvd.code) == (sent, rcvd)


@SIDES
def test_data_still_delivered_after_we_sent_close(make):
    proto = make()
    proto.send_close()
    proto.receive_data(
        incoming(proto, BINARY, b"late") + incoming(proto, CLOSE, close_payload(1000))
    )
    assert describe(proto.events_received()) == [("message", 2, b"late")]


@SIDES
def test_nothing_parsed_after_close_received(make):
    proto = make()
    proto.receive_data(
        incoming(proto, BINARY, b"before")
        + incoming(proto, CLOSE, close_payload(1000))
        + incoming(proto, BINARY, b"after")
        + incoming(proto, PING, b"p")
        + b"\xff\xff garbage"
    )
    assert describe(proto.events_received()) == [("message", 2, b"before")]
    assert [f.opcode for f in sent_frames(proto)] == [CLOSE]
    assert proto.buffered == 0
    proto.receive_data(incoming(proto, BINARY, b"x" * 100_000) + b"\x00")
    assert proto.events_received() == []
    assert proto.data_to_send() == []
    assert proto.buffered == 0
    assert proto.protocol_error is None


@SIDES
def test_close_received_while_message_unfinished(make):
    proto = make()
    proto.receive_data(
        incoming(proto, TEXT, b"partial", fin=False) + incoming(proto, CLOSE, close_payload(1000))
    )
    assert proto.events_received() == []
    assert proto.close_rcvd == Close(1000, "")
    assert proto.protocol_error is None


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 0])
def test_send_close_with_invalid_code_raises_value_error(code):
    proto = client()
    with pytest.raises(ValueError):
        proto.send_close(code)
    assert proto.state is State.OPEN
    assert proto.data_to_send() == []


@pytest.mark.parametrize("reason", ["x" * 124, "é" * 62, "€" * 42])
def test_send_close_with_too_long_reason_raises_value_error(reason):
    proto = server()
    with pytest.raises(ValueError):
        proto.send_close(1000, reason)
    assert proto.state is State.OPEN


@pytest.mark.parametrize("reason", ["x" * 123, "é" * 61 + "x", "€" * 41])
def test_send_close_with_longest_reason(reason):
    proto = server()
    proto.send_close(1000, reason)
    (sent,) = sent_frames(proto)
    assert len(sent.payload) == 125
    assert sent.payload[2:].decode() == reason


def _closed_by_send(proto):
    proto.send_close()


def _closed_by_peer(proto):
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))


def _closed_by_error(proto):
    proto.receive_data(incoming(proto, 0x3))


def _closed_by_eof(proto):
    proto.receive_eof()


@SIDES
@pytest.mark.parametrize(
    "how", [_closed_by_send, _closed_by_peer, _closed_by_error, _closed_by_eof]
)
@pytest.mark.parametrize(
    "action",
    [
        lambda p: p.send_text("x"),
        lambda p: p.send_binary(b"x"),
        lambda p: p.send_data("x"),
        lambda p: p.send_continuation(b"x", fin=True),
        lambda p: p.send_frame(BINARY, b"x"),
        lambda p: p.send_ping(b""),
        lambda p: p.send_pong(b""),
        lambda p: p.send_close(),
    ],
    ids=["text", "binary", "data", "continuation", "frame", "ping", "pong", "close"],
)
def test_sending_after_close_raises_connection_closed(make, how, action):
    proto = make()
    how(proto)
    proto.data_to_send()
    with pytest.raises(ConnectionClosed):
        action(proto)
    assert proto.data_to_send() == []


def test_server_close_transport_after_close_frames_went_both_ways():
    proto = server()
    assert not proto.close_transport()
    proto.send_close()
    assert not proto.close_transport()
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))
    assert proto.close_transport()


def test_server_close_transport_after_replying_to_close():
    proto = server()
    proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))
    assert proto.close_transport()


@pytest.mark.parametrize("peer_first", [True, False])
def test_client_waits_for_the_server_to_close_the_transport(peer_first):
    proto = client()
    if peer_first:
        proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))
    else:
        proto.send_close()
        assert not proto.close_transport()
        proto.receive_data(incoming(proto, CLOSE, close_payload(1000)))
    assert proto.close_sent is not None and proto.close_rcvd is not None
    assert not proto.close_transport()
    proto.receive_eof()
    assert proto.close_transport()
    assert proto.state is State.CLOSED
    assert isinstance(proto.close_exc(), ConnectionClosedOK)


@SIDES
def test_close_transport_after_failure(make):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"x", rsv=0x20))
    assert proto.close_transport()


@SIDES
def test_fail_drops_a_partly_received_frame(make):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"x" * 1000)[:500])
    assert proto.buffered == 500
    proto.fail(1001)
    assert proto.buffered == 0


@SIDES
def test_fail_called_by_the_front_end(make):
    proto = make()
    proto.fail(1011, "internal")
    (sent,) = sent_frames(proto)
    assert sent.payload == close_payload(1011, b"internal")
    assert proto.close_transport()
    assert not proto.receiving
    proto.receive_data(incoming(proto, BINARY, b"ignored"))
    assert proto.events_received() == []
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.sent == Close(1011, "internal")


@SIDES
@pytest.mark.parametrize(
    "reason", ["é" * 100, "x" * 300, "€" * 60 + "x"], ids=["e-acute", "ascii", "euro"]
)
def test_fail_never_writes_a_close_frame_over_125_bytes(make, reason):
    proto = make()
    proto.fail(1011, reason)
    (sent,) = sent_frames(proto)
    assert sent.opcode == CLOSE
    assert len(sent.payload) <= 125
    assert reason.startswith(sent.payload[2:].decode())  # cut on a character boundary


class _RaisingExtension(Extension):
    """An extension whose decode fails with a long, non-ASCII message."""

    name = "x-raise"
    rsv_bits = 0x40

    def decode(self, opcode, fin, rsv, payload, max_size):
        raise ProtocolError("données corrompues " * 20, 1007)


@SIDES
def test_protocol_error_with_long_message_still_sends_a_valid_close_frame(make):
    proto = make(extensions=[_RaisingExtension()])
    proto.receive_data(incoming(proto, BINARY, b"abc", rsv=0x40))
    assert_failed(proto, 1007)  # checks the close payload is at most 125 bytes
