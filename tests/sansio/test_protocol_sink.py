"""The sans-I/O state machine handing messages over as it parses them: ``message_sink``
and ``MessageCallback``, with borrowed views and what they may do.
"""

from __future__ import annotations

import pytest

from blazews.sansio.protocol import MessageCallback, State
from tests.helpers import (
    BINARY,
    CONT,
    PING,
    PONG,
    SIDES,
    TEXT,
    assert_failed,
    describe,
    incoming,
    sent_frames,
)

# -- message_sink: messages handed over as they are parsed -----------------------------


@SIDES
def test_message_sink_receives_messages_in_order_without_events(make):
    proto = make()
    got: list[tuple[int, bytes]] = []
    proto.message_sink = lambda kind, data: got.append((kind, bytes(data)))
    data = (
        incoming(proto, TEXT, b"one")
        + incoming(proto, BINARY, b"tw", fin=False)
        + incoming(proto, CONT, b"o", fin=True)
        + incoming(proto, BINARY, b"three")
    )
    proto.receive_data(data)
    assert got == [(TEXT, b"one"), (BINARY, b"two"), (BINARY, b"three")]
    assert proto.events_received() == []


@SIDES
def test_message_sink_keeps_order_behind_a_waiting_event(make):
    proto = make()
    got: list[bytes] = []
    proto.message_sink = lambda kind, data: got.append(bytes(data))
    proto.receive_data(
        incoming(proto, BINARY, b"a") + incoming(proto, PING, b"p") + incoming(proto, BINARY, b"b")
    )
    # "a" went to the sink; the ping waits as an event, so "b" queues behind it.
    assert got == [b"a"]
    assert describe(proto.events_received()) == [("ping", None, b"p"), ("message", BINARY, b"b")]
    proto.receive_data(incoming(proto, BINARY, b"c"))  # nothing waits: sink again
    assert got == [b"a", b"c"]


@SIDES
def test_message_sink_gets_borrowed_views_and_may_send(make):
    proto = make()
    seen: list[tuple[str, bytes]] = []

    def sink(kind: int, data: object) -> None:
        assert isinstance(data, memoryview)
        seen.append((type(data).__name__, bytes(data)))
        proto.send_binary(bytes(data).upper())  # answering from the sink is allowed
        data.release()

    proto.message_sink = sink
    buf = bytearray(incoming(proto, BINARY, b"hi") + incoming(proto, BINARY, b"yo"))
    assert proto.receive_into_buffer(buf, 0, len(buf), True) == len(buf)
    assert seen == [("memoryview", b"hi"), ("memoryview", b"yo")]
    assert [f.payload for f in sent_frames(proto)] == [b"HI", b"YO"]


@SIDES
def test_message_sink_does_not_see_invalid_messages(make):
    proto = make()
    got: list[bytes] = []
    proto.message_sink = lambda kind, data: got.append(bytes(data))
    proto.receive_data(incoming(proto, TEXT, b"ok") + incoming(proto, TEXT, b"\xff"))
    assert got == [b"ok"]
    assert_failed(proto, 1007)


@SIDES
def test_with_a_sink_only_what_the_sink_takes_is_lent(make):
    proto = make()
    taken: list[object] = []

    def sink(kind: int, data: object) -> None:
        taken.append(type(data))
        if isinstance(data, memoryview):
            data.release()

    proto.message_sink = sink
    buf = bytearray(
        incoming(proto, BINARY, b"a") + incoming(proto, PONG, b"") + incoming(proto, BINARY, b"b")
    )
    proto.receive_into_buffer(buf, 0, len(buf), True)
    assert taken == [memoryview]
    (_, message) = proto.events_received()
    assert type(message.data) is bytes and message.data == b"b"  # it waits: a copy


@SIDES
def test_stop_lending_makes_the_rest_of_the_call_bytes(make):
    proto = make()
    taken: list[object] = []

    def sink(kind: int, data: object) -> None:
        taken.append(type(data))
        proto.stop_lending()

    proto.message_sink = sink
    buf = bytearray(b"".join(incoming(proto, BINARY, bytes([i])) for i in range(3)))
    proto.receive_into_buffer(buf, 0, len(buf), True)
    assert taken == [memoryview, bytes, bytes]
    buf = bytearray(incoming(proto, BINARY, b"z"))
    proto.receive_into_buffer(buf, 0, len(buf), True)  # a new call lends again
    assert taken[-1] is memoryview


@SIDES
def test_message_callback_calls_with_views_and_releases_them(make):
    proto = make()
    seen: list[tuple[object, str, bytes]] = []
    views: list[memoryview] = []

    def callback(arg: object, kind: str, payload: memoryview) -> None:
        assert isinstance(payload, memoryview)
        seen.append((arg, kind, bytes(payload)))
        views.append(payload)

    proto.message_sink = MessageCallback(callback, "handle", ("", "text", "binary"), list)
    buf = bytearray(
        incoming(proto, TEXT, b"hi")
        + incoming(proto, BINARY, b"ab", fin=False)
        + incoming(proto, CONT, b"c")
    )
    proto.receive_into_buffer(buf, 0, len(buf), True)
    assert seen == [("handle", "text", b"hi"), ("handle", "binary", b"abc")]
    for view in views:  # released once the callback returned
        with pytest.raises(ValueError):
            bytes(view)


@SIDES
def test_message_callback_leaves_the_buffer_free_when_nothing_was_kept(make):
    # Views the callback did not keep are not released by a call (compiled: they go
    # with the core's references), but nothing may still export the buffer after.
    proto = make()
    sizes: list[int] = []
    derived: list[memoryview] = []

    def callback(arg: object, kind: str, payload: memoryview) -> None:
        sizes.append(len(payload))
        if len(sizes) == 2:
            derived.append(payload[1:])  # a view made of it: valid, and exports buf

    proto.message_sink = MessageCallback(callback, None, ("", "text", "binary"), list)
    buf = bytearray(incoming(proto, BINARY, b"abc") + incoming(proto, BINARY, b"xyz"))
    proto.receive_into_buffer(buf, 0, len(buf), True)
    assert sizes == [3, 3] and bytes(derived[0]) == b"yz"
    with pytest.raises(BufferError):
        buf.append(0)  # the derived view still exports it
    derived.pop().release()
    buf.append(0)  # nothing exports it any more: it may be resized
    buf2 = bytearray(incoming(proto, BINARY, b"abc"))
    proto.receive_into_buffer(buf2, 0, len(buf2), True)
    buf2.append(0)


@SIDES
def test_message_callback_reports_an_exception_once_then_stops(make):
    import sys

    proto = make()
    calls: list[bytes] = []
    errors: list[object] = []

    def callback(arg: object, kind: object, payload: memoryview) -> None:
        calls.append(bytes(payload))
        raise RuntimeError("bug")

    sink = MessageCallback(callback, None, (0, 1, 2), lambda: errors.append(sys.exc_info()[1]))
    proto.message_sink = sink
    proto.receive_data(incoming(proto, BINARY, b"1") + incoming(proto, BINARY, b"2"))
    assert calls == [b"1"] and sink.failed
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert proto.state is State.OPEN  # the core goes on; the front end decides
