"""The sans-I/O state machine receiving: messages, UTF-8, size limits, ping/pong, errors.

The closing handshake is in test_protocol_closing.py, messages handed to a sink or a
callback in test_protocol_sink.py; frame-level rules (opcodes, lengths, masking, RSV
bits) are in test_frames.py; the opening handshake is in test_client_server.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blazews.exceptions import ConnectionClosedError, MessageTooBig
from blazews.sansio.frames import Close
from blazews.sansio.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    FRAGMENT_OVERHEAD,
    Protocol,
    Side,
    State,
)
from tests.helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    SIDES,
    TEXT,
    MiB,
    assert_failed,
    client,
    close_payload,
    describe,
    frame,
    incoming,
    sent_frames,
    server,
)

# -- fragmentation and reassembly ----------------------------------------------------


@SIDES
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_fragmented_message_with_interleaved_control_frames(make, opcode):
    proto = make()
    data = (
        incoming(proto, opcode, b"ab", fin=False)
        + incoming(proto, PING, b"1")
        + incoming(proto, CONT, b"", fin=False)
        + incoming(proto, PONG, b"2")
        + incoming(proto, CONT, b"cd", fin=False)
        + incoming(proto, PING, b"3")
        + incoming(proto, CONT, b"ef", fin=True)
        + incoming(proto, opcode, b"gh")
    )
    proto.receive_data(data)
    assert describe(proto.events_received()) == [
        ("ping", None, b"1"),
        ("pong", None, b"2"),
        ("ping", None, b"3"),
        ("message", opcode, b"abcdef"),
        ("message", opcode, b"gh"),
    ]
    assert [(f.opcode, f.payload) for f in sent_frames(proto)] == [(PONG, b"1"), (PONG, b"3")]
    assert proto.protocol_error is None


@SIDES
def test_fragmented_message_fed_in_pieces(make):
    proto = make()
    data = b"".join(
        incoming(proto, BINARY if i == 0 else CONT, bytes([i]) * 300, fin=(i == 9))
        for i in range(10)
    )
    for i in range(0, len(data), 7):
        proto.receive_data(data[i : i + 7])
    assert describe(proto.events_received()) == [
        ("message", 2, b"".join(bytes([i]) * 300 for i in range(10)))
    ]


@SIDES
@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_message_fails_1002(make, fin):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"done") + incoming(proto, CONT, b"x", fin=fin))
    assert describe(proto.events_received()) == [("message", 2, b"done")]
    assert_failed(proto, 1002)


@SIDES
@pytest.mark.parametrize("first", [TEXT, BINARY])
@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("fin", [True, False])
def test_new_data_frame_inside_fragmented_message_fails_1002(make, first, second, fin):
    proto = make()
    proto.receive_data(incoming(proto, first, b"a", fin=False))
    proto.receive_data(incoming(proto, second, b"b", fin=fin))
    assert proto.events_received() == []
    assert_failed(proto, 1002)


# -- UTF-8 ---------------------------------------------------------------------------


@SIDES
@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"abc\x80",
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    ],
    ids=["ff", "overlong", "surrogate", "above-10ffff", "lone-continuation", "autobahn-6.3.1"],
)
def test_invalid_utf8_text_fails_1007(make, payload):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, payload))
    assert proto.events_received() == []
    assert_failed(proto, 1007)


@SIDES
def test_invalid_utf8_is_fine_in_binary(make):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"\xff\xfe"))
    assert describe(proto.events_received()) == [("message", 2, b"\xff\xfe")]


@SIDES
def test_code_points_split_across_fragments_are_valid(make):
    proto = make()
    text = "κόσμε €𝄞".encode()
    data = incoming(proto, TEXT, text[:1], fin=False)
    for i in range(1, len(text)):
        data += incoming(proto, CONT, text[i : i + 1], fin=(i == len(text) - 1))
    proto.receive_data(data)
    assert describe(proto.events_received()) == [("message", 1, text)]


@SIDES
def test_invalid_fragment_fails_before_the_final_fragment(make):
    """Incremental validation: the second fragment alone is enough to fail."""
    proto = make()
    proto.receive_data(incoming(proto, TEXT, "héllo".encode(), fin=False))
    assert proto.protocol_error is None
    proto.receive_data(incoming(proto, CONT, b"ok\xff", fin=False))
    assert proto.events_received() == []
    assert_failed(proto, 1007)


@SIDES
@pytest.mark.parametrize(
    ("first", "second", "third"),
    [(b"a\xed", b"\xa0", b"\x80"), (b"a\xf4", b"\x90", b"\x80\x80"), (b"\xe0", b"\x80", b"\x80")],
    ids=["surrogate", "above-10ffff", "overlong"],
)
def test_invalid_sequence_cut_between_fragments_fails_before_the_end(make, first, second, third):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, first, fin=False))
    assert proto.protocol_error is None
    proto.receive_data(incoming(proto, CONT, second, fin=False))
    proto.receive_data(incoming(proto, CONT, third, fin=False))
    assert_failed(proto, 1007)


@SIDES
@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(b"a\xed", b"\xa0", id="surrogate"),
        pytest.param(b"a\xf4", b"\x90", id="above-10ffff"),
        pytest.param(b"\xe0", b"\x80", id="overlong"),
    ],
)
def test_invalid_sequence_cut_between_fragments_fails_on_its_second_byte(make, first, second):
    """The prefix is already invalid: fail on the fragment that completes it."""
    proto = make()
    proto.receive_data(incoming(proto, TEXT, first, fin=False))
    assert proto.protocol_error is None
    proto.receive_data(incoming(proto, CONT, second, fin=False))
    assert_failed(proto, 1007)


@SIDES
def test_invalid_first_fragment_fails_immediately(make):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, b"\xff", fin=False))
    assert_failed(proto, 1007)


@SIDES
def test_text_ending_mid_sequence_fails_at_the_final_fragment(make):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, b"abc\xe2\x82", fin=False))
    proto.receive_data(incoming(proto, PING, b""))
    assert proto.protocol_error is None
    proto.receive_data(incoming(proto, CONT, b"", fin=True))
    assert describe(proto.events_received()) == [("ping", None, b"")]
    assert_failed(proto, 1007)


@SIDES
def test_validator_state_does_not_leak_between_messages(make):
    proto = make()
    proto.receive_data(incoming(proto, TEXT, b"\xe2\x82", fin=False))
    proto.receive_data(incoming(proto, CONT, b"\xac", fin=True))
    proto.receive_data(incoming(proto, BINARY, b"\xe2", fin=False))
    proto.receive_data(incoming(proto, CONT, b"\x82", fin=True))
    proto.receive_data(incoming(proto, TEXT, b"ok", fin=False))
    proto.receive_data(incoming(proto, CONT, b"!", fin=True))
    assert describe(proto.events_received()) == [
        ("message", 1, "€".encode()),
        ("message", 2, b"\xe2\x82"),
        ("message", 1, b"ok!"),
    ]


# -- message size and fragment budget ------------------------------------------------


def test_default_max_message_size_is_1_mib():
    assert MiB == DEFAULT_MAX_MESSAGE_SIZE
    assert Protocol(Side.SERVER).max_message_size == MiB


@SIDES
def test_default_limit_accepts_1_mib_and_refuses_one_byte_more(make):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"\x00" * MiB))
    assert [len(e.data) for e in proto.events_received()] == [MiB]
    proto.receive_data(incoming(proto, BINARY, length=MiB + 1, with_payload=False))
    assert_failed(proto, 1009)


@SIDES
def test_message_of_exactly_the_limit_is_accepted_single_frame(make):
    proto = make(max_message_size=1000)
    proto.receive_data(incoming(proto, BINARY, b"x" * 1000))
    proto.receive_data(incoming(proto, TEXT, b"y" * 1000))
    assert [(e.type, len(e.data)) for e in proto.events_received()] == [(2, 1000), (1, 1000)]
    assert proto.protocol_error is None


@SIDES
def test_one_byte_over_the_limit_is_refused_single_frame(make):
    proto = make(max_message_size=1000)
    proto.receive_data(incoming(proto, BINARY, b"x" * 1001))
    assert proto.events_received() == []
    assert_failed(proto, 1009)
    assert isinstance(proto.protocol_error, MessageTooBig)


@SIDES
@pytest.mark.parametrize("pieces", [2, 10, 1000 // FRAGMENT_OVERHEAD])
def test_message_of_exactly_the_limit_is_accepted_fragmented(make, pieces):
    limit = 1000
    proto = make(max_message_size=limit)
    sizes = [limit // pieces] * pieces
    sizes[-1] += limit - sum(sizes)
    data = b"".join(
        incoming(proto, TEXT if i == 0 else CONT, b"z" * n, fin=(i == pieces - 1))
        for i, n in enumerate(sizes)
    )
    proto.receive_data(data)
    assert [len(e.data) for e in proto.events_received()] == [limit]
    assert proto.protocol_error is None


@SIDES
def test_one_byte_over_the_limit_is_refused_fragmented(make):
    proto = make(max_message_size=1000)
    proto.receive_data(incoming(proto, BINARY, b"z" * 500, fin=False))
    proto.receive_data(incoming(proto, CONT, b"z" * 499, fin=False))
    proto.receive_data(incoming(proto, CONT, b"zz", fin=True))
    assert proto.events_received() == []
    assert_failed(proto, 1009)


@SIDES
def test_limit_applies_per_message(make):
    proto = make(max_message_size=1000)
    for _ in range(5):
        proto.receive_data(incoming(proto, BINARY, b"a" * 600, fin=False))
        proto.receive_data(incoming(proto, CONT, b"b" * 400, fin=True))
    assert [len(e.data) for e in proto.events_received()] == [1000] * 5
    assert proto.protocol_error is None


def test_legal_4_mib_message_in_65536_fragments_of_64_bytes_passes():
    proto = client(max_message_size=16 * MiB)
    chunk = bytes(range(64))
    first = frame(BINARY, chunk, fin=False)
    middle = frame(CONT, chunk, fin=False)
    data = first + middle * 65534 + frame(CONT, chunk, fin=True)
    proto.receive_data(data)
    (message,) = proto.events_received()
    assert message.data == chunk * 65536
    assert len(message.data) == 4 * MiB
    assert proto.protocol_error is None


@SIDES
@pytest.mark.parametrize("limit", [1024, MiB])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_flood_of_empty_fragments_fails_1009(make, limit, opcode):
    """A message of empty fragments is bounded by the fragment budget: it fails after
    at most 2 * max / FRAGMENT_OVERHEAD fragments, and not before a legal message of
    max bytes in 64-byte fragments could have ended."""
    proto = make(max_message_size=limit)
    bound = 2 * limit // FRAGMENT_OVERHEAD
    proto.receive_data(incoming(proto, opcode, fin=False))
    empty = incoming(proto, CONT, fin=False)
    count = 1
    while proto.protocol_error is None and count <= bound + 10:
        proto.receive_data(empty)
        count += 1
    assert limit // 64 < count <= bound + 1  # `count` counts the failing fragment
    assert proto.events_received() == []
    assert_failed(proto, 1009)
    assert isinstance(proto.protocol_error, MessageTooBig)


@SIDES
def test_fragment_flood_stops_at_the_documented_budget(make):
    """2 * max / FRAGMENT_OVERHEAD empty fragments are accepted; one more is not."""
    limit = 1024
    proto = make(max_message_size=limit)
    bound = 2 * limit // FRAGMENT_OVERHEAD
    proto.receive_data(incoming(proto, BINARY, fin=False))
    for _ in range(bound - 1):
        proto.receive_data(incoming(proto, CONT, fin=False))
    assert proto.protocol_error is None
    proto.receive_data(incoming(proto, CONT, fin=False))
    assert_failed(proto, 1009)


@SIDES
def test_no_limit_when_max_message_size_is_none(make):
    proto = make(max_message_size=None)
    proto.receive_data(incoming(proto, BINARY, b"\x01" * (2 * MiB)))
    proto.receive_data(
        incoming(proto, BINARY, fin=False)
        + incoming(proto, CONT, fin=False) * 40000
        + incoming(proto, CONT, b"!")
    )
    assert [len(e.data) for e in proto.events_received()] == [2 * MiB, 1]
    assert proto.protocol_error is None


@SIDES
def test_fragment_budget_is_per_message(make):
    """Each message gets the whole budget: the fragment count starts again at zero."""
    limit = 1024
    proto = make(max_message_size=limit)
    count = 2 * limit // FRAGMENT_OVERHEAD - 2  # most of the budget
    for _ in range(3):
        data = incoming(proto, BINARY, b"a", fin=False)
        data += incoming(proto, CONT, fin=False) * (count - 2)
        data += incoming(proto, CONT, b"b", fin=True)
        proto.receive_data(data)
    assert describe(proto.events_received()) == [("message", 2, b"ab")] * 3
    assert proto.protocol_error is None


def test_negative_max_message_size_is_refused():
    with pytest.raises(ValueError):
        Protocol(Side.SERVER, max_message_size=-1)


# -- ping / pong ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"abc", bytes(range(125))])
def test_server_answers_ping_with_same_payload(payload):
    proto = server()
    proto.receive_data(frame(PING, payload, mask=b"\x9a\x01\xfe\x33"))
    assert describe(proto.events_received()) == [("ping", None, payload)]
    raw = b"".join(proto.data_to_send())
    assert raw == bytes((0x8A, len(payload))) + payload  # unmasked, exact bytes


@pytest.mark.parametrize("payload", [b"", b"abc", bytes(range(125))])
def test_client_answers_ping_with_same_payload_masked(payload):
    proto = client()
    proto.receive_data(frame(PING, payload))
    assert describe(proto.events_received()) == [("ping", None, payload)]
    raw = b"".join(proto.data_to_send())
    assert raw[0] == 0x8A
    assert raw[1] == 0x80 | len(payload)
    key = raw[2:6]
    unmasked = bytes(b ^ key[i % 4] for i, b in enumerate(raw[6:]))
    assert unmasked == payload


@SIDES
def test_pong_is_not_answered(make):
    proto = make()
    proto.receive_data(incoming(proto, PONG, b"x"))
    assert describe(proto.events_received()) == [("pong", None, b"x")]
    assert proto.data_to_send() == []


@SIDES
def test_many_pings_many_pongs_in_order(make):
    proto = make()
    proto.receive_data(b"".join(incoming(proto, PING, str(i).encode()) for i in range(50)))
    assert [f.payload for f in sent_frames(proto)] == [str(i).encode() for i in range(50)]


@SIDES
def test_no_pong_after_our_close_was_sent(make):
    proto = make()
    proto.send_close()
    proto.data_to_send()
    proto.receive_data(incoming(proto, PING, b"late"))
    assert describe(proto.events_received()) == [("ping", None, b"late")]
    assert proto.data_to_send() == []


@SIDES
def test_no_pong_after_failure(make):
    proto = make()
    proto.receive_data(incoming(proto, 0x4) + incoming(proto, PING, b"x"))
    assert [f.opcode for f in sent_frames(proto)] == [CLOSE]


# -- protocol errors -----------------------------------------------------------------


def _errors(proto):
    """(name, bytes, code): ways for the peer to break the protocol."""
    f = lambda *a, **k: incoming(proto, *a, **k)  # noqa: E731
    wrong_mask = proto.side is not Side.SERVER
    return [
        ("reserved-opcode", f(0x5), 1002),
        ("rsv", f(BINARY, b"x", rsv=0x10), 1002),
        ("wrong-mask", frame(BINARY, b"x", mask=wrong_mask), 1002),
        ("long-ping", f(PING, b"x" * 126), 1002),
        ("fragmented-ping", f(PING, fin=False), 1002),
        ("orphan-continuation", f(CONT, b"x"), 1002),
        ("nested-message", f(TEXT, fin=False) + f(BINARY), 1002),
        ("top-bit", f(BINARY, length=1 << 63, length_bits=64, with_payload=False), 1002),
        ("bad-close-code", f(CLOSE, close_payload(1005)), 1002),
        ("one-byte-close", f(CLOSE, b"\x03"), 1002),
        ("bad-utf8", f(TEXT, b"\xc3\x28"), 1007),
        ("bad-close-reason", f(CLOSE, close_payload(1000, b"\xc3")), 1007),
        ("too-big", f(BINARY, length=2000, with_payload=False), 1009),
        ("too-big-fragmented", f(TEXT, b"a" * 999, fin=False) + f(CONT, b"bc"), 1009),
    ]


ERROR_NAMES = [name for name, _, _ in _errors(server())]


@SIDES
@pytest.mark.parametrize("index", range(len(ERROR_NAMES)), ids=ERROR_NAMES)
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "byte-by-byte"])
def test_protocol_error_fails_connection_and_stops_everything(make, index, chunked):
    proto = make(max_message_size=1000)
    _name, data, code = _errors(proto)[index]
    if chunked:
        for i in range(len(data)):
            proto.receive_data(data[i : i + 1])  # never raises
    else:
        proto.receive_data(data)
    assert proto.events_received() == []
    assert_failed(proto, code)
    error = proto.protocol_error
    assert proto.state is State.CLOSING
    # Megabytes more: not parsed, not buffered, no events, nothing to send.
    junk = incoming(proto, BINARY, b"\x00" * 100) * 10 + b"\xff" * (2 * MiB)
    for _ in range(3):
        proto.receive_data(junk)
        assert proto.buffered == 0
    proto.receive_data(incoming(proto, PING, b"p"))
    assert proto.events_received() == []
    assert proto.data_to_send() == []
    assert proto.protocol_error is error
    proto.receive_eof()
    assert proto.state is State.CLOSED
    assert proto.close_exc().__cause__ is error


@SIDES
def test_protocol_error_after_we_sent_close_sends_no_second_close(make):
    proto = make()
    proto.send_close(1000)
    proto.data_to_send()
    proto.receive_data(incoming(proto, 0x6))
    assert proto.protocol_error.close_code == 1002
    assert proto.data_to_send() == []
    assert proto.close_transport()
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.__cause__ is proto.protocol_error


@SIDES
def test_events_before_the_error_are_kept(make):
    proto = make()
    proto.receive_data(
        incoming(proto, TEXT, b"one") + incoming(proto, PING, b"p") + incoming(proto, TEXT, b"\xff")
    )
    assert describe(proto.events_received()) == [("message", 1, b"one"), ("ping", None, b"p")]
    frames = sent_frames(proto)
    assert [(f.opcode, f.payload[:2]) for f in frames] == [
        (PONG, b"p"),
        (CLOSE, close_payload(1007)),
    ]


@SIDES
def test_eof_without_close_is_1006(make):
    proto = make()
    proto.receive_data(incoming(proto, BINARY, b"partial", fin=False) + b"\x82")
    proto.receive_eof()
    assert proto.state is State.CLOSED
    assert proto.close_transport()
    assert not proto.receiving
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == 1006
    assert exc.rcvd is None and exc.sent is None
    assert proto.events_received() == []
    assert proto.buffered == 0
    proto.receive_data(incoming(proto, BINARY, b"x"))
    assert proto.events_received() == []
    proto.receive_eof()  # idempotent


@SIDES
def test_eof_after_we_sent_close_is_1006(make):
    proto = make()
    proto.send_close()
    proto.receive_eof()
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == 1006
    assert exc.sent == Close(1000, "")


# -- any valid stream parses the same, however it is cut -----------------------------

_message = st.tuples(
    st.sampled_from(["text", "binary"]),
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=100).map(str.encode),
        # 7-, 16- and 64-bit lengths: up to 70,000 bytes, cheap to generate.
        st.integers(min_value=120, max_value=70_000).map(
            lambda n: bytes(range(97, 123)) * (n // 26)
        ),
    ),
    st.lists(st.integers(min_value=0, max_value=70_000), max_size=5),  # fragment cuts
    st.lists(st.binary(max_size=125), max_size=3),  # pings between fragments
)
_item = st.one_of(
    _message.map(lambda m: ("message", *m)),
    st.binary(max_size=125).map(lambda p: ("ping", p)),
    st.binary(max_size=125).map(lambda p: ("pong", p)),
)


def _serialize(items):
    """Have a client Protocol write the stream; return its bytes and the expected events."""
    sender = client()
    expected = []
    for item in items:
        if item[0] == "ping":
            sender.send_ping(item[1])
            expected.append(("ping", None, item[1]))
        elif item[0] == "pong":
            sender.send_pong(item[1])
            expected.append(("pong", None, item[1]))
        else:
            _, kind, payload, cuts, pings = item
            if kind == "text":
                payload = payload.decode("utf-8", "replace").encode()
            opcode = TEXT if kind == "text" else BINARY
            bounds = sorted({min(c, len(payload)) for c in cuts})
            pieces, start = [], 0
            for b in bounds:
                pieces.append(payload[start:b])
                start = b
            pieces.append(payload[start:])
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                if i == 0:
                    sender.send_frame(opcode, piece, fin=last)
                else:
                    sender.send_continuation(piece, fin=last)
                if not last and i < len(pings):
                    sender.send_ping(pings[i])
                    expected.append(("ping", None, pings[i]))
            expected.append(("message", opcode, payload))
    return b"".join(sender.data_to_send()), expected


def _receive(data, sizes):
    """Feed ``data`` in chunks whose sizes cycle through ``sizes`` (whole if empty)."""
    receiver = server(max_message_size=None)
    events = []
    pos, turn = 0, 0
    while pos < len(data):
        step = sizes[turn % len(sizes)] if sizes else len(data)
        receiver.receive_data(data[pos : pos + step])
        events += describe(receiver.events_received())
        pos += step
        turn += 1
    return events, b"".join(receiver.data_to_send()), receiver


def _check_same_events(items, sizes):
    stream, expected = _serialize(items)
    whole_events, whole_out, _ = _receive(stream, [])
    cut_events, cut_out, receiver = _receive(stream, sizes)
    assert whole_events == expected
    assert cut_events == whole_events
    assert cut_out == whole_out  # the same pongs
    assert receiver.protocol_error is None
    assert receiver.buffered == 0
    assert receiver.state is State.OPEN


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(_item, max_size=12),
    sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8),
)
def test_any_valid_stream_cut_anywhere_gives_the_same_events(items, sizes):
    _check_same_events(items, sizes)


_small_item = st.one_of(
    _message.filter(lambda m: len(m[1]) <= 300).map(lambda m: ("message", *m)),
    st.binary(max_size=125).map(lambda p: ("ping", p)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(_small_item, max_size=6))
def test_any_valid_stream_fed_byte_by_byte_gives_the_same_events(items):
    """Every possible cut at once: each header field split at every position."""
    _check_same_events(items, [1])
