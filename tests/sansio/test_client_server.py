"""The opening handshake as ClientProtocol and ServerProtocol run it together.

Bytes go from one object to the other in memory. The header grammars and the HTTP
parsers themselves are tested in test_handshake.py and test_http11.py; here it is the
flow: negotiation, rejections, bytes that arrive with the handshake, and frames after.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from blazews.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidHeader,
    InvalidStatus,
    NegotiationError,
    ProtocolError,
)
from blazews.sansio.client import ClientProtocol
from blazews.sansio.extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from blazews.sansio.frames import Close
from blazews.sansio.http11 import Request, Response
from blazews.sansio.protocol import Message, Ping, State
from blazews.sansio.server import ServerProtocol
from blazews.sansio.uri import parse_uri
from tests.helpers import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    assert_failed,
    describe,
    frame,
    parse_frames,
)

URI = parse_uri("ws://example.com:8080/chat?room=1")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key: str) -> str:
    """Sec-WebSocket-Accept computed by hand (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def raw_request(
    *,
    method: str = "GET",
    version: str | None = "13",
    key: str | None = KEY,
    extra: tuple[str, ...] = (),
) -> bytes:
    lines = [f"{method} /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket"]
    lines.append("Connection: Upgrade")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_response(key: str, *extra: str) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_for(key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def drain(proto) -> bytes:
    return b"".join(proto.data_to_send())


def start_client(**kwargs) -> tuple[ClientProtocol, bytes]:
    client = ClientProtocol(URI, **kwargs)
    client.send_request(client.connect())
    return client, drain(client)


def handshake(client_kwargs=None, server_kwargs=None) -> tuple[ClientProtocol, ServerProtocol]:
    client, request_bytes = start_client(**(client_kwargs or {}))
    server = ServerProtocol(**(server_kwargs or {}))
    server.receive_data(request_bytes)
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    client.receive_data(drain(server))
    (response,) = client.events_received()
    assert isinstance(response, Response)
    return client, server


# -- a complete connection -----------------------------------------------------------


def test_full_handshake_then_messages_both_ways_then_close():
    client, request_bytes = start_client()
    assert client.state is State.CONNECTING
    assert request_bytes.startswith(b"GET /chat?room=1 HTTP/1.1\r\n")
    assert b"\r\nHost: example.com:8080\r\n" in request_bytes

    server = ServerProtocol()
    assert server.state is State.CONNECTING
    server.receive_data(request_bytes)
    (request,) = server.events_received()
    assert isinstance(request, Request)
    assert request.path == "/chat?room=1"
    assert server.state is State.CONNECTING  # until the response is sent
    response = server.accept(request)
    assert response.status_code == 101
    server.send_response(response)
    assert server.state is State.OPEN
    response_bytes = drain(server)
    assert response_bytes.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert f"\r\nSec-WebSocket-Accept: {accept_for(client.key)}\r\n".encode() in response_bytes

    client.receive_data(response_bytes)
    (event,) = client.events_received()
    assert isinstance(event, Response) and event.status_code == 101
    assert client.state is State.OPEN
    assert client.handshake_exc is None and server.handshake_exc is None
    assert client.subprotocol is None and server.subprotocol is None

    client.send_text("héllo")
    client.send_binary(b"\x00\x01", fin=False)
    client.send_ping(b"are you there")
    client.send_continuation(b"\x02", fin=True)
    server.receive_data(drain(client))
    assert describe(server.events_received()) == [
        ("message", 1, "héllo".encode()),
        ("ping", None, b"are you there"),
        ("message", 2, b"\x00\x01\x02"),
    ]
    server.send_text("réponse")
    server.send_binary(b"\xff" * 70000)
    client.receive_data(drain(server))  # includes the pong
    assert describe(client.events_received()) == [
        ("pong", None, b"are you there"),
        ("message", 1, "réponse".encode()),
        ("message", 2, b"\xff" * 70000),
    ]

    client.send_close(1000, "done")
    server.receive_data(drain(client))
    assert server.close_rcvd == Close(1000, "done")
    assert server.close_transport()
    client.receive_data(drain(server))
    assert client.close_rcvd == Close(1000, "")
    assert not client.close_transport()
    client.receive_eof()
    assert client.close_transport()
    assert client.state is State.CLOSED


def test_handshake_fed_one_byte_at_a_time():
    client, request_bytes = start_client(subprotocols=["chat"])
    server = ServerProtocol(subprotocols=["chat"])
    for i in range(len(request_bytes)):
        assert server.events_received() == []
        server.receive_data(request_bytes[i : i + 1])
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    server.send_text("hi")
    response_bytes = drain(server)
    for i in range(len(response_bytes)):
        client.receive_data(response_bytes[i : i + 1])
    events = client.events_received()
    assert isinstance(events[0], Response)
    assert describe(events[1:]) == [("message", 1, b"hi")]
    assert client.subprotocol == "chat"


# -- subprotocols --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "supported", "expected"),
    [
        (["chat.v2", "chat"], ["chat", "chat.v2"], "chat.v2"),
        (["a", "b", "c"], ["c", "b"], "b"),
        (["a"], ["a"], "a"),
        (["a"], ["x"], None),
        ([], ["x"], None),
        (["a"], [], None),
    ],
)
def test_default_subprotocol_policy_picks_the_first_offer_supported(offered, supported, expected):
    client, server = handshake({"subprotocols": offered}, {"subprotocols": supported})
    assert client.subprotocol == expected
    assert server.subprotocol == expected
    assert client.response.headers.get("Sec-WebSocket-Protocol") == expected
    if offered:
        assert client.request.headers["Sec-WebSocket-Protocol"] == ", ".join(offered)
    else:
        assert "Sec-WebSocket-Protocol" not in client.request.headers
    assert client.state is State.OPEN


def test_custom_subprotocol_selector():
    seen = []

    def last(offered):
        seen.append(list(offered))
        return offered[-1]

    client, server = handshake({"subprotocols": ["a", "b", "c"]}, {"select_subprotocol": last})
    assert seen == [["a", "b", "c"]]  # in the client's order of preference
    assert client.subprotocol == server.subprotocol == "c"


def test_custom_subprotocol_selector_declining():
    client, server = handshake(
        {"subprotocols": ["a", "b"]},
        {"subprotocols": ["a"], "select_subprotocol": lambda offered: None},
    )
    assert client.subprotocol is None and server.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in client.response.headers
    assert client.state is State.OPEN


def test_custom_subprotocol_selector_choosing_something_not_offered_is_rejected():
    _client, request_bytes = start_client(subprotocols=["a"])
    server = ServerProtocol(select_subprotocol=lambda offered: "zzz")
    server.receive_data(request_bytes)
    (request,) = server.events_received()
    response = server.accept(request)
    assert response.status_code == 400
    assert isinstance(server.handshake_exc, NegotiationError)
    server.send_response(response)
    assert server.state is State.CLOSED
    assert server.close_transport()


def test_a_front_end_that_writes_the_subprotocol_header_agrees_on_it():
    # An ASGI app names its subprotocol in websocket.accept: the front end adds the
    # header to the 101 and tells the core, which the connection then runs with.
    client, request_bytes = start_client(subprotocols=["a", "b"])
    server = ServerProtocol()  # (no subprotocols of its own: accept picks none)
    server.receive_data(request_bytes)
    (request,) = server.events_received()
    response = server.accept(request)
    assert "Sec-WebSocket-Protocol" not in response.headers
    response.headers["Sec-WebSocket-Protocol"] = "b"
    server.agree_subprotocol("b")
    server.send_response(response)
    assert server.state is State.OPEN and server.subprotocol == "b"
    client.receive_data(b"".join(server.data_to_send()))
    assert client.state is State.OPEN and client.subprotocol == "b"


@pytest.mark.parametrize(
    ("offered", "answer"),
    [(["a"], "b"), ([], "a"), (["a", "b"], "a, b")],
    ids=["not-offered", "none-offered", "two"],
)
def test_client_fails_on_a_subprotocol_it_did_not_offer(offered, answer):
    client, _ = start_client(subprotocols=offered)
    client.receive_data(
        raw_response(client.key, f"Sec-WebSocket-Protocol: {answer}") + frame(TEXT, b"x")
    )
    assert isinstance(client.handshake_exc, NegotiationError)
    assert isinstance(client.handshake_exc, InvalidHandshake)
    assert client.state is State.CLOSED
    assert client.close_transport()
    assert client.subprotocol is None
    events = client.events_received()
    assert [type(e) for e in events] == [Response]  # the frame after it is not parsed
    with pytest.raises(ConnectionClosed):
        client.send_text("nope")


# -- extensions ----------------------------------------------------------------------


def _flip(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


class FlipExtension(Extension):
    """A made-up extension: every data frame's payload is inverted and carries RSV1."""

    name = "x-flip"
    rsv_bits = 0x40

    def __init__(self, side: str) -> None:
        self.side = side

    def encode(self, opcode, fin, payload, compress=True):
        return 0x40, _flip(bytes(payload))

    def decode(self, opcode, fin, rsv, payload, max_size):
        if not rsv & 0x40:
            raise ProtocolError("x-flip frame without RSV1")
        return _flip(payload)


class FlipClientFactory(ClientExtensionFactory):
    name = "x-flip"

    def __init__(self) -> None:
        self.answers: list[object] = []

    def get_request_params(self):
        return [("mode", "invert"), ("client_flag", None)]

    def process_response_params(self, params, accepted):
        self.answers.append(params)
        if params != [("mode", "invert")]:
            raise NegotiationError(f"unexpected x-flip parameters {params}")
        return FlipExtension("client")


class FlipServerFactory(ServerExtensionFactory):
    name = "x-flip"

    def __init__(self, accept: bool = True) -> None:
        self.offers: list[object] = []
        self.accept = accept

    def process_request_params(self, params, accepted):
        self.offers.append(params)
        if not self.accept:
            raise NegotiationError("declined")
        return [("mode", "invert")], FlipExtension("server")


def test_extension_negotiated_and_used_both_ways():
    client_factory, server_factory = FlipClientFactory(), FlipServerFactory()
    client, server = handshake({"extensions": [client_factory]}, {"extensions": [server_factory]})
    assert client.request.headers["Sec-WebSocket-Extensions"] == "x-flip; mode=invert; client_flag"
    assert client.response.headers["Sec-WebSocket-Extensions"] == "x-flip; mode=invert"
    assert server_factory.offers == [[("mode", "invert"), ("client_flag", None)]]
    assert client_factory.answers == [[("mode", "invert")]]
    assert [(type(e), e.side) for e in client.extensions] == [(FlipExtension, "client")]
    assert [(type(e), e.side) for e in server.extensions] == [(FlipExtension, "server")]

    client.send_text("héllo")
    client.send_binary(b"ab", fin=False)
    client.send_continuation(b"cd", fin=True)
    wire = drain(client)
    frames = parse_frames(wire)
    assert [(f.rsv, f.payload) for f in frames] == [
        (0x40, _flip("héllo".encode())),
        (0x40, _flip(b"ab")),
        (0x40, _flip(b"cd")),
    ]
    server.receive_data(wire)
    assert describe(server.events_received()) == [
        ("message", 1, "héllo".encode()),
        ("message", 2, b"abcd"),
    ]
    assert server.protocol_error is None

    server.send_binary(b"\x00\x01")
    client.receive_data(drain(server))
    assert describe(client.events_received()) == [("message", 2, b"\x00\x01")]

    # The extension's own rule: a data frame without RSV1 is a protocol error.
    server.receive_data(frame(BINARY, _flip(b"x"), mask=True))
    assert_failed(server, 1002)


def test_extension_declined_by_server_leaves_rsv_bits_forbidden():
    client, server = handshake(
        {"extensions": [FlipClientFactory()]}, {"extensions": [FlipServerFactory(accept=False)]}
    )
    assert "Sec-WebSocket-Extensions" not in client.response.headers
    assert client.extensions == [] and server.extensions == []
    server.receive_data(frame(BINARY, b"x", rsv=0x40, mask=True))
    assert_failed(server, 1002)
    client.receive_data(frame(BINARY, b"x", rsv=0x40))
    assert_failed(client, 1002)


def test_server_without_extension_support_ignores_the_offer():
    client, server = handshake({"extensions": [FlipClientFactory()]}, {})
    assert "Sec-WebSocket-Extensions" not in client.response.headers
    assert client.extensions == [] and server.extensions == []


@pytest.mark.parametrize(
    ("factories", "answer"),
    [
        ([], "x-flip; mode=invert"),
        ([FlipClientFactory], "x-other"),
        ([FlipClientFactory], "x-flip; mode=other"),
    ],
    ids=["nothing-offered", "other-name", "bad-params"],
)
def test_client_fails_on_an_extension_it_did_not_offer(factories, answer):
    client, _ = start_client(extensions=[f() for f in factories])
    client.receive_data(raw_response(client.key, f"Sec-WebSocket-Extensions: {answer}"))
    assert isinstance(client.handshake_exc, NegotiationError)
    assert client.state is State.CLOSED
    assert client.close_transport()
    assert client.extensions == []
    assert [type(e) for e in client.events_received()] == [Response]


# -- rejections ----------------------------------------------------------------------


def _serve(request_bytes: bytes) -> tuple[ServerProtocol, bytes]:
    server = ServerProtocol()
    server.receive_data(request_bytes)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    return server, drain(server)


@pytest.mark.parametrize(
    ("request_bytes", "status", "header"),
    [
        (raw_request(version="8"), b"426", b"\r\nSec-WebSocket-Version: 13\r\n"),
        (raw_request(version=None), b"426", b"\r\nSec-WebSocket-Version: 13\r\n"),
        (raw_request(method="POST"), b"405", b"\r\nAllow: GET\r\n"),
        (raw_request(key=None), b"400", b"\r\nContent-Length: "),
        (raw_request(key="short"), b"400", b"\r\nConnection: close\r\n"),
    ],
    ids=["version-8", "no-version", "post", "no-key", "bad-key"],
)
def test_server_rejects_bad_requests(request_bytes, status, header):
    server, answer = _serve(request_bytes + frame(TEXT, b"never parsed", mask=True))
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert header in answer
    assert isinstance(server.handshake_exc, InvalidHandshake)
    assert server.handshake_exc.status == int(status)
    assert server.state is State.CLOSED
    assert server.close_transport()
    assert not server.receiving
    assert server.events_received() == []
    server.receive_data(frame(TEXT, b"ignored", mask=True))
    assert server.events_received() == []
    assert server.data_to_send() == []


def test_client_sees_the_rejection():
    client, request_bytes = start_client()
    server = ServerProtocol()
    server.receive_data(request_bytes)
    server.events_received()
    server.send_response(server.reject(403, "go away\n"))
    assert server.state is State.CLOSED
    client.receive_data(drain(server))
    assert isinstance(client.handshake_exc, InvalidStatus)
    assert client.handshake_exc.response.status_code == 403
    assert client.handshake_exc.response.body == b"go away\n"
    assert client.state is State.CLOSED
    assert client.close_transport()


def test_client_rejects_a_wrong_accept_key():
    client, _ = start_client()
    client.receive_data(raw_response(KEY))  # answers another key
    assert isinstance(client.handshake_exc, InvalidHeader)
    assert client.state is State.CLOSED
    assert client.close_transport()


def test_client_eof_before_the_response():
    client, _ = start_client()
    client.receive_data(b"HTTP/1.1 101 Switching")
    client.receive_eof()
    assert isinstance(client.handshake_exc, InvalidHandshake)
    assert client.state is State.CLOSED
    assert client.close_transport()


def test_server_eof_before_the_request():
    server = ServerProtocol()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n")
    server.receive_eof()
    assert isinstance(server.handshake_exc, InvalidHandshake)
    assert server.state is State.CLOSED
    assert server.close_transport()
    assert server.events_received() == []


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 300, b"414"),
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 300, b"431"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(20)), b"431"),
    ],
    ids=["request-line", "request-line-complete", "header-line", "header-count"],
)
def test_oversized_request_is_answered_automatically(data, status):
    server = ServerProtocol(max_line=200, max_headers=10)
    server.receive_data(data)
    answer = drain(server)
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert server.handshake_exc is not None and server.handshake_exc.status == int(status)
    assert server.events_received() == []
    assert server.state is State.CLOSED
    assert server.close_transport()
    server.receive_data(b"more" * 1000)
    assert server.data_to_send() == []


# -- bytes that arrive along with the handshake --------------------------------------


def test_frames_sent_right_after_the_request_are_parsed_once_accepted():
    early = frame(TEXT, b"early", mask=True) + frame(PING, b"p", mask=True)
    later = frame(BINARY, b"later", mask=True)
    server = ServerProtocol()
    server.receive_data(raw_request() + early[:9])  # the request and part of a frame
    (request,) = server.events_received()
    server.receive_data(early[9:] + later)  # before the response is sent
    assert server.events_received() == []
    assert server.data_to_send() == []
    server.send_response(server.accept(request))
    assert server.state is State.OPEN
    events = server.events_received()
    assert describe(events) == [
        ("message", 1, b"early"),
        ("ping", None, b"p"),
        ("message", 2, b"later"),
    ]
    written = drain(server)
    assert written.startswith(b"HTTP/1.1 101 ")
    pong = written[written.index(b"\r\n\r\n") + 4 :]
    assert [(f.opcode, f.payload) for f in parse_frames(pong)] == [(PONG, b"p")]


def test_bad_frame_sent_right_after_the_request_fails_once_accepted():
    server = ServerProtocol()
    server.receive_data(raw_request() + frame(TEXT, b"unmasked"))
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    assert server.events_received() == []
    written = drain(server)
    close = parse_frames(written[written.index(b"\r\n\r\n") + 4 :])
    assert [(f.opcode, f.payload[:2]) for f in close] == [(CLOSE, b"\x03\xea")]
    assert server.protocol_error is not None and server.protocol_error.close_code == 1002
    assert server.close_transport()


def test_frames_in_the_same_segment_as_the_101_are_parsed_by_the_client():
    client, request_bytes = start_client()
    server = ServerProtocol()
    server.receive_data(request_bytes)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    server.send_text("welcome")
    server.send_ping(b"hb")
    server.send_binary(b"z" * 300)
    segment = drain(server)
    client.receive_data(segment[:-100])  # the 101, two frames and part of the third
    events = client.events_received()
    assert isinstance(events[0], Response)
    assert describe(events[1:]) == [("message", 1, b"welcome"), ("ping", None, b"hb")]
    client.receive_data(segment[-100:])
    assert describe(client.events_received()) == [("message", 2, b"z" * 300)]
    pong = parse_frames(drain(client))
    assert [(f.opcode, f.masked, f.payload) for f in pong] == [(PONG, True, b"hb")]


def test_client_cannot_send_before_the_handshake_completes():
    client, _ = start_client()
    with pytest.raises(ConnectionClosed):
        client.send_text("too early")


def test_events_are_in_order_handshake_first():
    client, server = handshake()
    server.send_text("a")
    client.receive_data(drain(server))
    (message,) = client.events_received()
    assert isinstance(message, Message)
    server.send_ping()
    client.receive_data(drain(server))
    assert [type(e) for e in client.events_received()] == [Ping]
