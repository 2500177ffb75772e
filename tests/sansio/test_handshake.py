"""Tests for blazews.sansio.handshake: keys, header grammars, request and response checks."""

from __future__ import annotations

import base64

import pytest

from blazews.exceptions import InvalidHandshake, InvalidHeader, InvalidStatus
from blazews.sansio.handshake import (
    GUID,
    USER_AGENT,
    accept_key,
    build_request,
    build_response,
    check_request,
    check_response,
    generate_key,
    parse_extension_header,
    parse_subprotocol_header,
    parse_token_list,
    reject_response,
    serialize_extension_header,
    serialize_subprotocols,
)
from blazews.sansio.http11 import Headers, Request, RequestParser, Response, ResponseParser

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

VALID = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def request_with(*, drop: tuple[str, ...] = (), add: tuple[tuple[str, str], ...] = ()) -> Request:
    headers = Headers((n, v) for n, v in VALID if n not in drop)
    for name, value in add:
        headers.add(name, value)
    return Request("/chat", headers)


def request_error(request: Request) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        check_request(request)
    return info.value


def response_with(*, drop: tuple[str, ...] = (), add: tuple[tuple[str, str], ...] = ()) -> Response:
    response = build_response(KEY)
    for name in drop:
        del response.headers[name]
    for name, value in add:
        response.headers.add(name, value)
    return response


# Keys


def test_rfc6455_example_key() -> None:
    assert accept_key(KEY) == ACCEPT


def test_guid() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_generate_key() -> None:
    key = generate_key()
    assert len(key) == 24
    assert len(base64.b64decode(key, validate=True)) == 16
    assert generate_key() != key
    check_request(request_with(drop=("Sec-WebSocket-Key",), add=(("Sec-WebSocket-Key", key),)))


# Token lists


class TestTokenList:
    def test_tokens_over_several_lines(self) -> None:
        assert parse_token_list(["keep-alive, Upgrade", "close"]) == [
            "keep-alive",
            "Upgrade",
            "close",
        ]

    def test_empty_elements_ignored(self) -> None:
        assert parse_token_list([",, a ,\t, b,", "", " "]) == ["a", "b"]

    @pytest.mark.parametrize("value", ["a b", "a;b", "a/b", '"a"', "a, (b)", "caf\xe9"])
    def test_malformed(self, value: str) -> None:
        with pytest.raises(InvalidHeader) as info:
            parse_token_list([value], name="Connection")
        assert info.value.name == "Connection"
        assert info.value.status == 400


# check_request


class TestCheckRequest:
    def test_valid(self) -> None:
        assert check_request(request_with()) == KEY

    def test_parsed_request(self) -> None:
        request = build_request("server.example.com", "/chat", KEY)
        parsed = RequestParser().feed(request.serialize())
        assert parsed is not None
        assert check_request(parsed) == KEY

    @pytest.mark.parametrize("method", ["POST", "HEAD", "get", "OPTIONS"])
    def test_method_not_get_405(self, method: str) -> None:
        request = request_with()
        request.method = method
        error = request_error(request)
        assert type(error) is InvalidHandshake
        assert error.status == 405
        assert error.headers == [("Allow", "GET")]

    def test_missing_host_400(self) -> None:
        error = request_error(request_with(drop=("Host",)))
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Host", 400)

    def test_repeated_host_400(self) -> None:
        error = request_error(request_with(add=(("Host", "evil.example.com"),)))
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Host", 400)

    @pytest.mark.parametrize(
        "connections",
        [
            ["keep-alive, Upgrade"],  # Firefox
            ["upgrade"],
            ["UPGRADE"],
            ["keep-alive", "Upgrade"],  # spread over several headers
            [", Upgrade ,"],
        ],
    )
    def test_connection_with_upgrade_accepted(self, connections: list[str]) -> None:
        request = request_with(
            drop=("Connection",), add=tuple(("Connection", c) for c in connections)
        )
        assert check_request(request) == KEY

    @pytest.mark.parametrize(
        "connections", [[], ["keep-alive"], ["Upgrades"], ["close, keep-alive"], ["Up grade"]]
    )
    def test_connection_without_upgrade_400(self, connections: list[str]) -> None:
        request = request_with(
            drop=("Connection",), add=tuple(("Connection", c) for c in connections)
        )
        error = request_error(request)
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Connection", 400)

    @pytest.mark.parametrize(
        "upgrades", [["WebSocket"], ["h2c, websocket"], ["HTTP/2.0", "websocket"]]
    )
    def test_upgrade_with_websocket_accepted(self, upgrades: list[str]) -> None:
        request = request_with(drop=("Upgrade",), add=tuple(("Upgrade", u) for u in upgrades))
        assert check_request(request) == KEY

    @pytest.mark.parametrize(
        "upgrades", [[], ["h2c"], ["websockets"], ["websocket/13"], ["web socket"]]
    )
    def test_upgrade_without_websocket_400(self, upgrades: list[str]) -> None:
        request = request_with(drop=("Upgrade",), add=tuple(("Upgrade", u) for u in upgrades))
        error = request_error(request)
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Upgrade", 400)

    @pytest.mark.parametrize(
        "keys",
        [
            [],
            [KEY, KEY],
            ["dGhlIHNhbXBsZSBub25jZQ"],  # no padding
            ["dGhlIHNhbXBsZSBub25jZQ==="],
            ["dGhlIHNhbXBsZSBub25jZQ=\n"],
            ["dGhlIHNhbXBsZSBub25jZ!=="],  # not base64
            ["dGhl IHNhbXBsZSBub25jZQ="],
            [base64.b64encode(b"x" * 15).decode() + "===="],  # 15 bytes, padded to 24
            [base64.b64encode(b"x" * 17).decode()],
            [""],
        ],
    )
    def test_bad_key_400(self, keys: list[str]) -> None:
        request = request_with(
            drop=("Sec-WebSocket-Key",), add=tuple(("Sec-WebSocket-Key", k) for k in keys)
        )
        error = request_error(request)
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Sec-WebSocket-Key", 400)

    @pytest.mark.parametrize("versions", [[], ["13", "13"], ["8"], ["14"], ["13, 8"], [" 13x"]])
    def test_bad_version_426(self, versions: list[str]) -> None:
        request = request_with(
            drop=("Sec-WebSocket-Version",),
            add=tuple(("Sec-WebSocket-Version", v) for v in versions),
        )
        error = request_error(request)
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Sec-WebSocket-Version", 426)
        assert error.headers == [("Sec-WebSocket-Version", "13")]

    def test_version_checked_before_key(self) -> None:
        request = request_with(
            drop=("Sec-WebSocket-Version", "Sec-WebSocket-Key"),
            add=(("Sec-WebSocket-Version", "8"),),
        )
        assert request_error(request).status == 426

    def test_malformed_connection_list_400(self) -> None:
        error = request_error(request_with(add=(("Connection", "a b"),)))
        assert isinstance(error, InvalidHeader)
        assert (error.name, error.status) == ("Connection", 400)


# check_response


class TestCheckResponse:
    def test_valid(self) -> None:
        check_response(build_response(KEY), KEY)

    def test_parsed_response(self) -> None:
        response = ResponseParser().feed(build_response(KEY).serialize())
        assert response is not None
        check_response(response, KEY)

    def test_not_101(self) -> None:
        response = reject_response(403, "go away")
        with pytest.raises(InvalidStatus) as info:
            check_response(response, KEY)
        assert info.value.response is response
        assert info.value.status == 403

    def test_case_and_lists_accepted(self) -> None:
        response = response_with(
            drop=("Upgrade", "Connection"),
            add=(("Upgrade", "WebSocket"), ("Connection", "keep-alive, upgrade")),
        )
        check_response(response, KEY)

    @pytest.mark.parametrize(
        ("name", "change"),
        [
            ("Upgrade", ()),
            ("Upgrade", (("Upgrade", "h2c"),)),
            ("Connection", ()),
            ("Connection", (("Connection", "keep-alive"),)),
            ("Sec-WebSocket-Accept", ()),
            ("Sec-WebSocket-Accept", (("Sec-WebSocket-Accept", ACCEPT),) * 2),
            ("Sec-WebSocket-Accept", (("Sec-WebSocket-Accept", ACCEPT.lower()),)),
            ("Sec-WebSocket-Accept", (("Sec-WebSocket-Accept", accept_key(generate_key())),)),
        ],
    )
    def test_bad_headers(self, name: str, change: tuple[tuple[str, str], ...]) -> None:
        response = response_with(drop=(name,), add=change)
        with pytest.raises(InvalidHeader) as info:
            check_response(response, KEY)
        assert info.value.name == name

    def test_accept_for_another_key(self) -> None:
        with pytest.raises(InvalidHeader):
            check_response(build_response(KEY), generate_key())


# Sec-WebSocket-Extensions


class TestExtensions:
    def test_simple(self) -> None:
        assert parse_extension_header(["permessage-deflate"]) == [("permessage-deflate", [])]

    def test_params_and_several_offers(self) -> None:
        header = (
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
            "permessage-deflate ;client_no_context_takeover , x-foo"
        )
        assert parse_extension_header([header]) == [
            (
                "permessage-deflate",
                [("client_max_window_bits", None), ("server_max_window_bits", "10")],
            ),
            ("permessage-deflate", [("client_no_context_takeover", None)]),
            ("x-foo", []),
        ]

    def test_quoted_values(self) -> None:
        header = 'permessage-deflate; server_max_window_bits="10"; x = "a\\bc" ;y="\\"'
        with pytest.raises(InvalidHeader):  # y is `"` once unquoted: not a token
            parse_extension_header([header])
        assert parse_extension_header([header.rsplit(";", 1)[0]]) == [
            ("permessage-deflate", [("server_max_window_bits", "10"), ("x", "abc")])
        ]

    def test_quoted_value_must_be_a_token_once_unquoted(self) -> None:
        with pytest.raises(InvalidHeader) as info:
            parse_extension_header(['ext; param="quoted value"'])
        assert info.value.name == "Sec-WebSocket-Extensions"

    def test_several_lines_and_empty_elements(self) -> None:
        assert parse_extension_header(["a; p=1", ", ,b", "", "  "]) == [
            ("a", [("p", "1")]),
            ("b", []),
        ]

    @pytest.mark.parametrize(
        "header",
        [
            "a;",  # parameter name missing
            "a; =1",
            "a; p=",  # value missing
            'a; p="unterminated',
            'a; p="1"x',
            "a b",
            "a; p=1 2",
            ";a",
            "a; p=@",
            "(a)",
            "a; p==1",
            'a; p="\x01"',
        ],
    )
    def test_malformed(self, header: str) -> None:
        with pytest.raises(InvalidHeader) as info:
            parse_extension_header([header])
        assert info.value.name == "Sec-WebSocket-Extensions"
        assert info.value.status == 400

    def test_serialize(self) -> None:
        extensions = [
            ("permessage-deflate", [("client_max_window_bits", None), ("x", "10")]),
            ("b", []),
        ]
        header = serialize_extension_header(extensions)
        assert header == "permessage-deflate; client_max_window_bits; x=10, b"
        assert parse_extension_header([header]) == extensions

    @pytest.mark.parametrize(
        "extensions",
        [
            [("a b", [])],
            [("a", [("p q", None)])],
            [("a", [("p", "1 2")])],
            [("a", [("p", "")])],
            [("a", [("p", "x\r\nInjected: 1")])],
        ],
    )
    def test_serialize_invalid(
        self, extensions: list[tuple[str, list[tuple[str, str | None]]]]
    ) -> None:
        with pytest.raises(ValueError):
            serialize_extension_header(extensions)


# Sec-WebSocket-Protocol


class TestSubprotocols:
    def test_parse(self) -> None:
        assert parse_subprotocol_header(["chat, superchat", "v2.bin"]) == [
            "chat",
            "superchat",
            "v2.bin",
        ]
        assert parse_subprotocol_header([", chat ,"]) == ["chat"]

    @pytest.mark.parametrize("value", ["a b", "a;b", '"chat"', "a/b"])
    def test_parse_malformed(self, value: str) -> None:
        with pytest.raises(InvalidHeader) as info:
            parse_subprotocol_header([value])
        assert info.value.name == "Sec-WebSocket-Protocol"

    def test_serialize(self) -> None:
        assert serialize_subprotocols(["chat", "superchat"]) == "chat, superchat"

    @pytest.mark.parametrize("subprotocols", [[], ["a b"], ["chat", ""], ["x\r\ny"]])
    def test_serialize_invalid(self, subprotocols: list[str]) -> None:
        with pytest.raises(ValueError):
            serialize_subprotocols(subprotocols)


# Builders


class TestBuildRequest:
    def test_minimal(self) -> None:
        request = build_request("example.com:8080", "/chat?x=1", KEY)
        assert request.method == "GET"
        assert request.path == "/chat?x=1"
        assert request.headers.items() == [
            ("Host", "example.com:8080"),
            *VALID[1:],
            ("User-Agent", USER_AGENT),
        ]
        assert request.serialize().startswith(
            b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
        )

    def test_all_options(self) -> None:
        request = build_request(
            "example.com",
            "/",
            KEY,
            subprotocols=["chat", "superchat"],
            extensions_header="permessage-deflate; client_max_window_bits",
            extra_headers=[("X-Token", "abc"), ("X-Token", "def")],
            origin="https://example.com",
        )
        assert request.headers.items()[5:] == [
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
            ("Origin", "https://example.com"),
            ("User-Agent", USER_AGENT),
            ("X-Token", "abc"),
            ("X-Token", "def"),
        ]

    def test_user_agent_from_caller(self) -> None:
        for extra in ([("user-agent", "mine/1.0")], Headers({"User-Agent": "mine/1.0"})):
            request = build_request("h", "/", KEY, extra_headers=extra)
            assert request.headers.get_all("User-Agent") == ["mine/1.0"]

    def test_extra_headers_mapping(self) -> None:
        request = build_request("h", "/", KEY, extra_headers={"X-A": "1"})
        assert request.headers["X-A"] == "1"

    def test_empty_subprotocols_sends_no_header(self) -> None:
        assert "Sec-WebSocket-Protocol" not in build_request("h", "/", KEY, subprotocols=[]).headers

    def test_extra_header_repeating_a_handshake_header(self) -> None:
        with pytest.raises(ValueError):
            build_request("h", "/", KEY, extra_headers=[("sec-websocket-key", KEY)])
        with pytest.raises(ValueError):
            build_request("h", "/", KEY, origin="o", extra_headers=[("Origin", "p")])

    def test_invalid_subprotocol(self) -> None:
        with pytest.raises(ValueError):
            build_request("h", "/", KEY, subprotocols=["a b"])

    def test_injection_refused_on_serialize(self) -> None:
        request = build_request("h\r\nX-Evil: 1", "/", KEY)
        with pytest.raises(ValueError):
            request.serialize()
        with pytest.raises(ValueError):
            build_request("h", "/ HTTP/1.1\r\nX: y", KEY).serialize()


class TestBuildResponse:
    def test_minimal(self) -> None:
        response = build_response(KEY)
        assert (response.status_code, response.reason_phrase) == (101, "Switching Protocols")
        assert response.body == b""
        assert response.serialize() == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Server: blazews/0.1.0\r\n"
            b"\r\n"
        )

    def test_all_options(self) -> None:
        response = build_response(
            KEY,
            subprotocol="chat",
            extensions_header="permessage-deflate",
            extra_headers=[("Server", "mine"), ("X-A", "1")],
        )
        assert response.headers.items()[3:] == [
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Server", "mine"),
            ("X-A", "1"),
        ]

    def test_invalid(self) -> None:
        with pytest.raises(ValueError):
            build_response(KEY, subprotocol="a, b")
        with pytest.raises(ValueError):
            build_response(KEY, extra_headers=[("Upgrade", "h2c")])


class TestRejectResponse:
    def test_text_body(self) -> None:
        response = reject_response(403, "forbidden \u2603")
        assert (response.status_code, response.reason_phrase) == (403, "Forbidden")
        body = "forbidden \u2603".encode()
        assert response.body == body
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Content-Length"] == str(len(body))
        assert response.headers["Connection"] == "close"
        assert response.headers["Server"] == USER_AGENT

    def test_bytes_body(self) -> None:
        response = reject_response(400, b"\x00bad")
        assert response.reason_phrase == "Bad Request"
        assert response.body == b"\x00bad"
        assert "Content-Type" not in response.headers
        assert response.headers["Content-Length"] == "4"

    def test_empty_body(self) -> None:
        response = reject_response(404)
        assert response.headers["Content-Length"] == "0"
        assert response.serialize().endswith(b"\r\n\r\n")

    def test_headers_from_exception(self) -> None:
        error = InvalidHeader(
            "Sec-WebSocket-Version", "bad", 426, [("Sec-WebSocket-Version", "13")]
        )
        response = reject_response(error.status, str(error), error.headers)
        assert response.reason_phrase == "Upgrade Required"
        assert response.headers["Sec-WebSocket-Version"] == "13"
        response = reject_response(405, b"", [("Allow", "GET")])
        assert response.reason_phrase == "Method Not Allowed"
        assert response.headers["Allow"] == "GET"

    def test_caller_content_type(self) -> None:
        response = reject_response(400, "{}", [("Content-Type", "application/json")])
        assert response.headers.get_all("Content-Type") == ["application/json"]

    def test_round_trip_through_parser(self) -> None:
        for status in (400, 414, 426, 431, 500):
            response = reject_response(status, f"error {status}")
            parsed = ResponseParser().feed(response.serialize())
            assert parsed == response

    def test_unknown_and_invalid_status(self) -> None:
        assert reject_response(499).reason_phrase == ""
        with pytest.raises(ValueError):
            reject_response(600)
        with pytest.raises(ValueError):
            reject_response(400, headers=[("Content-Length", "5")])


def test_full_handshake() -> None:
    key = generate_key()
    request = build_request("example.com", "/", key, subprotocols=["chat"])
    server_side = RequestParser().feed(request.serialize())
    assert server_side is not None
    response = build_response(check_request(server_side), subprotocol="chat")
    parser = ResponseParser()
    client_side = parser.feed(response.serialize() + b"\x81\x00")
    assert client_side is not None
    check_response(client_side, key)
    assert parser.leftover == b"\x81\x00"


# A request body: the bytes after an upgrade request's head are frames


@pytest.mark.parametrize(
    "header", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")], ids=["length", "chunked"]
)
def test_request_with_a_body_is_refused(header: tuple[str, str]) -> None:
    error = request_error(request_with(add=(header,)))
    assert error.status == 400
    assert "request body" in str(error)


def test_request_with_an_empty_body_is_accepted() -> None:
    assert check_request(request_with(add=(("Content-Length", "0"),))) == KEY
