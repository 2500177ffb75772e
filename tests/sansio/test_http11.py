"""Tests for blazews.sansio.http11: headers, serialization, incremental parsers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blazews.exceptions import InvalidHandshake
from blazews.sansio.http11 import (
    Headers,
    MultipleValuesError,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    check_header,
)

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

RESPONSE_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def parse_request(data: bytes, **kwargs: int) -> Request:
    request = RequestParser(**kwargs).feed(data)
    assert request is not None
    return request


def request_error(data: bytes, **kwargs: int) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        RequestParser(**kwargs).feed(data)
    return info.value


def response_error(data: bytes, **kwargs: int) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        parser = ResponseParser(**kwargs)
        parser.feed(data)
        parser.feed_eof()
    return info.value


def feed_bytewise(parser: RequestParser | ResponseParser, data: bytes) -> object:
    result: object = None
    for i in range(len(data)):
        result = parser.feed(data[i : i + 1])
        if result is not None:
            assert i == len(data) - 1 - len(parser.leftover)
            break
    return result


# Headers


class TestHeaders:
    def test_lookup_is_case_insensitive_and_keeps_case(self) -> None:
        h = Headers([("Content-Type", "text/plain")])
        assert h["content-type"] == "text/plain"
        assert h["CONTENT-TYPE"] == "text/plain"
        assert "content-TYPE" in h
        assert list(h) == ["Content-Type"]
        assert h.items() == [("Content-Type", "text/plain")]

    def test_missing_header(self) -> None:
        h = Headers()
        with pytest.raises(KeyError):
            h["Host"]
        assert h.get("Host") is None
        assert h.get("Host", "default") == "default"
        assert h.get_all("Host") == []
        assert "Host" not in h
        assert 42 not in h

    def test_multiple_values(self) -> None:
        h = Headers([("Connection", "keep-alive"), ("X", "1"), ("connection", "Upgrade")])
        assert h.get_all("CONNECTION") == ["keep-alive", "Upgrade"]
        with pytest.raises(MultipleValuesError) as info:
            h["Connection"]
        assert isinstance(info.value, KeyError)
        assert str(info.value) == "header Connection appears 2 times"
        with pytest.raises(MultipleValuesError):
            h.get("connection")

    def test_add_appends(self) -> None:
        h = Headers()
        h.add("Via", "a")
        h.add("via", "b")
        assert h.items() == [("Via", "a"), ("via", "b")]
        assert len(h) == 1
        assert list(h) == ["Via"]

    def test_setitem_replaces_all_values_in_place(self) -> None:
        h = Headers([("A", "1"), ("B", "2"), ("a", "3"), ("C", "4")])
        h["a"] = "new"
        assert h.items() == [("a", "new"), ("B", "2"), ("C", "4")]
        assert h["A"] == "new"
        h["D"] = "5"
        assert h.items()[-1] == ("D", "5")

    def test_delitem_removes_all_values(self) -> None:
        h = Headers([("A", "1"), ("B", "2"), ("a", "3")])
        del h["A"]
        assert h.items() == [("B", "2")]
        assert "a" not in h
        with pytest.raises(KeyError):
            del h["A"]

    def test_len_and_iter_count_distinct_names(self) -> None:
        h = Headers([("A", "1"), ("B", "2"), ("a", "3")])
        assert len(h) == 2
        assert list(h) == ["A", "B"]

    def test_constructors(self) -> None:
        pairs = [("A", "1"), ("B", "2")]
        assert Headers(pairs).items() == pairs
        assert Headers({"A": "1", "B": "2"}).items() == pairs
        assert Headers(Headers(pairs)).items() == pairs
        assert Headers(iter(pairs)).items() == pairs

    def test_copy_is_independent(self) -> None:
        h = Headers([("A", "1")])
        c = h.copy()
        c.add("A", "2")
        c["B"] = "3"
        assert h.items() == [("A", "1")]
        assert c.get_all("a") == ["1", "2"]

    def test_equality(self) -> None:
        assert Headers([("A", "1"), ("B", "2")]) == Headers([("b", "2"), ("a", "1")])
        assert Headers([("A", "1"), ("A", "2")]) != Headers([("A", "2"), ("A", "1")])
        assert Headers([("A", "1")]) != Headers([("A", "1"), ("A", "1")])
        assert Headers([("A", "x")]) != Headers([("A", "X")])
        assert Headers() != {}
        with pytest.raises(TypeError):
            hash(Headers())

    def test_repr(self) -> None:
        assert repr(Headers([("A", "1")])) == "Headers([('A', '1')])"


# Serialization


class TestSerialize:
    def test_request(self) -> None:
        request = Request("/chat", Headers([("Host", "example.com"), ("X-A", "b\tc")]))
        assert request.serialize() == (
            b"GET /chat HTTP/1.1\r\nHost: example.com\r\nX-A: b\tc\r\n\r\n"
        )

    def test_request_other_method(self) -> None:
        assert Request("*", Headers(), "OPTIONS").serialize() == b"OPTIONS * HTTP/1.1\r\n\r\n"

    def test_response_adds_nothing_implicitly(self) -> None:
        response = Response(403, "Forbidden", Headers([("Content-Length", "2")]), b"no")
        assert response.serialize() == (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        assert Response(101, "", Headers()).serialize() == b"HTTP/1.1 101 \r\n\r\n"

    def test_latin1_value(self) -> None:
        request = Request("/", Headers([("X", "caf\xe9")]))
        assert request.serialize().endswith(b"X: caf\xe9\r\n\r\n")

    @pytest.mark.parametrize(
        "value",
        ["a\r\nInjected: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb", "a\x01b", "\u20ac"],
    )
    def test_header_injection_refused(self, value: str) -> None:
        with pytest.raises(ValueError):
            check_header("X", value)
        with pytest.raises(ValueError):
            Request("/", Headers([("X", value)])).serialize()
        with pytest.raises(ValueError):
            Response(200, "OK", Headers([("X", value)])).serialize()

    @pytest.mark.parametrize("name", ["", "A B", "A:", "A\r\nB", "A\x00", "(A)", "\xe9"])
    def test_invalid_header_name_refused(self, name: str) -> None:
        with pytest.raises(ValueError):
            check_header(name, "v")
        with pytest.raises(ValueError):
            Request("/", Headers([(name, "v")])).serialize()

    def test_check_header_accepts_valid(self) -> None:
        check_header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        check_header("X", "")
        check_header("X", "a\tb c")

    @pytest.mark.parametrize("path", ["", "/a b", "/a\r\nX: y", "/a\nb", "/a\x00", "/\xe9", "/\t"])
    def test_invalid_path_refused(self, path: str) -> None:
        with pytest.raises(ValueError):
            Request(path, Headers()).serialize()

    def test_invalid_method_refused(self) -> None:
        with pytest.raises(ValueError):
            Request("/", Headers(), "G T").serialize()

    def test_invalid_status_line_refused(self) -> None:
        with pytest.raises(ValueError):
            Response(200, "OK\r\nX: y", Headers()).serialize()
        with pytest.raises(ValueError):
            Response(99, "", Headers()).serialize()
        with pytest.raises(ValueError):
            Response(1000, "", Headers()).serialize()

    def test_round_trip(self) -> None:
        request = parse_request(REQUEST)
        assert request.serialize() == REQUEST


# RequestParser


class TestRequestParser:
    def test_one_shot(self) -> None:
        parser = RequestParser()
        request = parser.feed(REQUEST)
        assert request is not None
        assert request.method == "GET"
        assert request.path == "/chat?room=1"
        assert request.headers["host"] == "server.example.com"
        assert request.headers["Sec-WebSocket-Key"] == "dGhlIHNhbXBsZSBub25jZQ=="
        assert len(request.headers) == 5
        assert parser.leftover == b""

    def test_byte_at_a_time(self) -> None:
        parser = RequestParser()
        assert feed_bytewise(parser, REQUEST) == parse_request(REQUEST)
        assert parser.leftover == b""

    def test_none_until_complete(self) -> None:
        parser = RequestParser()
        assert parser.feed(REQUEST[:-1]) is None
        assert parser.feed(b"") is None
        assert parser.feed(REQUEST[-1:]) is not None

    def test_leftover(self) -> None:
        parser = RequestParser()
        assert parser.feed(REQUEST + b"\x81\x00rest") is not None
        assert parser.leftover == b"\x81\x00rest"

    def test_buffer_types(self) -> None:
        for data in (bytearray(REQUEST), memoryview(REQUEST)):
            assert RequestParser().feed(data) == parse_request(REQUEST)

    def test_targets_kept_raw(self) -> None:
        absolute = b"GET ws://example.com/a?b=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n"
        assert parse_request(absolute).path == "ws://example.com/a?b=%20"
        assert parse_request(b"OPTIONS * HTTP/1.1\r\n\r\n").path == "*"

    def test_method_kept(self) -> None:
        assert parse_request(b"POST / HTTP/1.1\r\n\r\n").method == "POST"

    def test_http_1_x_accepted(self) -> None:
        assert parse_request(b"GET / HTTP/1.2\r\n\r\n").path == "/"

    def test_http_1_0_refused(self) -> None:
        assert request_error(b"GET / HTTP/1.0\r\n\r\n").status == 400

    def test_http_2_refused_with_505(self) -> None:
        assert request_error(b"GET / HTTP/2.0\r\n\r\n").status == 505

    @pytest.mark.parametrize(
        "line",
        [
            b"GET /",
            b"GET / HTTP/1.1 extra",
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b" GET / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"GET / HTTP/1",
            b"GET / HTTP/1.11",
            b"GET / http/1.1",
            b"GET / HTTPS/1.1",
            b"G(T / HTTP/1.1",
            b"GET /\x00 HTTP/1.1",
            b"GET /\xe9 HTTP/1.1",
            b"GET /\r HTTP/1.1",
            b"",
        ],
    )
    def test_malformed_request_line(self, line: bytes) -> None:
        assert request_error(line + b"\r\nHost: x\r\n\r\n").status == 400

    def test_request_line_too_long_414(self) -> None:
        line = b"GET /" + b"a" * 95 + b" HTTP/1.1"
        assert parse_request(line + b"\r\n\r\n", max_line=len(line)).path.startswith("/a")
        assert request_error(line + b"\r\n\r\n", max_line=len(line) - 1).status == 414

    def test_request_line_bound_checked_before_line_is_complete(self) -> None:
        parser = RequestParser(max_line=100)
        assert parser.feed(b"GET /" + b"a" * 96) is None  # 101 bytes: may be 100 + CR
        with pytest.raises(InvalidHandshake) as info:
            parser.feed(b"a")
        assert info.value.status == 414

    def test_header_line_too_long_431(self) -> None:
        header = b"X: " + b"v" * 97
        head = b"GET / HTTP/1.1\r\n" + header + b"\r\n\r\n"
        assert parse_request(head, max_line=100).headers["X"] == "v" * 97
        assert request_error(head, max_line=99).status == 431

    def test_header_line_bound_checked_before_line_is_complete(self) -> None:
        parser = RequestParser(max_line=100)
        assert parser.feed(b"GET / HTTP/1.1\r\nX: " + b"v" * 98) is None
        with pytest.raises(InvalidHandshake) as info:
            parser.feed(b"v")
        assert info.value.status == 431

    def test_too_many_headers_431(self) -> None:
        head = b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 4 + b"\r\n"
        assert parse_request(head, max_headers=4).headers.get_all("x") == ["1"] * 4
        assert request_error(head, max_headers=3).status == 431

    def test_too_many_headers_detected_without_end_of_head(self) -> None:
        parser = RequestParser(max_headers=3)
        with pytest.raises(InvalidHandshake) as info:
            parser.feed(b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 4)
        assert info.value.status == 431

    @pytest.mark.parametrize(
        "data",
        [
            b"GET / HTTP/1.1\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\n",
            b"GET / HTTP/1.1\n\n",
        ],
    )
    def test_bare_lf_refused(self, data: bytes) -> None:
        assert request_error(data).status == 400

    @pytest.mark.parametrize(
        "header",
        [
            b"Host",  # no colon
            b"Host : x",  # whitespace before colon
            b"Host\t: x",
            b": x",  # empty name
            b"Ho st: x",  # invalid token
            b"H(o)st: x",
            b"Host: a\x00b",  # NUL
            b"Host: a\rb",  # bare CR
            b"Host: a\x1bb",  # other control
            b"Host: a\x7fb",  # DEL
        ],
    )
    def test_bad_header_syntax_400(self, header: bytes) -> None:
        assert request_error(b"GET / HTTP/1.1\r\n" + header + b"\r\n\r\n").status == 400

    @pytest.mark.parametrize("fold", [b" folded", b"\tfolded"])
    def test_obs_fold_refused(self, fold: bytes) -> None:
        data = b"GET / HTTP/1.1\r\nX-Long: a\r\n" + fold + b"\r\n\r\n"
        error = request_error(data)
        assert error.status == 400
        assert "obs-fold" in str(error)

    def test_values_stripped_and_decoded(self) -> None:
        request = parse_request(
            b"GET / HTTP/1.1\r\nA: \t spaced \t \r\nB:\r\nC: tab\there\r\nD: caf\xe9\r\n\r\n"
        )
        assert request.headers["A"] == "spaced"
        assert request.headers["B"] == ""
        assert request.headers["C"] == "tab\there"
        assert request.headers["D"] == "caf\xe9"

    def test_feed_after_completion_is_an_error(self) -> None:
        parser = RequestParser()
        parser.feed(REQUEST)
        with pytest.raises(RuntimeError):
            parser.feed(b"more")
        with pytest.raises(RuntimeError):
            parser.feed_eof()

    def test_feed_after_error_raises_it_again(self) -> None:
        parser = RequestParser()
        with pytest.raises(InvalidHandshake) as first:
            parser.feed(b"GET / HTTP/1.0\r\n")
        with pytest.raises(InvalidHandshake) as second:
            parser.feed(b"Host: x\r\n\r\n")
        assert second.value is first.value

    @pytest.mark.parametrize("data", [b"", b"GET / HT", REQUEST[:-2]])
    def test_eof_before_end_of_request(self, data: bytes) -> None:
        parser = RequestParser()
        parser.feed(data)
        with pytest.raises(InvalidHandshake, match="connection closed during handshake"):
            parser.feed_eof()


# Linearity: count the bytes the parser searches and copies.


class CountingBuffer(bytearray):
    """A bytearray that counts the bytes its searches scan and its slices copy."""

    work = 0

    def find(self, sub: object, start: object = None, *args: object) -> int:  # type: ignore[override]
        begin = 0 if start is None else int(start)  # type: ignore[call-overload]
        found = super().find(sub, start, *args)  # type: ignore[arg-type]
        # A search stops at its first match: it scans up to there, or to the end.
        CountingBuffer.work += (found + 1 if found >= 0 else len(self)) - begin
        return found

    def __getitem__(self, index: object) -> object:  # type: ignore[override]
        result = super().__getitem__(index)  # type: ignore[index]
        if isinstance(index, slice):
            CountingBuffer.work += len(result)
        return result


def work_to_parse(data: bytes, chunk: int) -> int:
    parser = RequestParser(max_line=1 << 20, max_headers=1 << 20)
    parser._buf = CountingBuffer()
    CountingBuffer.work = 0
    result = None
    for i in range(0, len(data), chunk):
        result = parser.feed(data[i : i + chunk])
    assert result is not None
    return CountingBuffer.work


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"v" * 8192 + b"\r\n",  # one 8 KiB header
        b"X: v\r\n" * 20000,  # 120 kB of small headers
    ],
)
def test_byte_at_a_time_is_linear(headers: bytes) -> None:
    data = b"GET / HTTP/1.1\r\n" + headers + b"\r\n"
    one_shot = work_to_parse(data, len(data))
    bytewise = work_to_parse(data, 1)
    assert one_shot <= 3 * len(data)
    assert bytewise <= 3 * len(data)


# ResponseParser


def parse_response(data: bytes, **kwargs: int) -> tuple[Response, bytes]:
    parser = ResponseParser(**kwargs)
    response = parser.feed(data)
    assert response is not None
    return response, parser.leftover


class TestResponseParser:
    def test_101_completes_at_end_of_head(self) -> None:
        response, leftover = parse_response(RESPONSE_101)
        assert response.status_code == 101
        assert response.reason_phrase == "Switching Protocols"
        assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert response.body == b""
        assert leftover == b""

    def test_101_ignores_content_length(self) -> None:
        data = RESPONSE_101[:-2] + b"Content-Length: 10\r\n\r\n"
        response, leftover = parse_response(data + b"\x81\x02hi")
        assert response.body == b""
        assert leftover == b"\x81\x02hi"

    def test_first_frame_in_same_segment_is_leftover(self) -> None:
        response, leftover = parse_response(RESPONSE_101 + b"\x81\x05hello")
        assert response.status_code == 101
        assert leftover == b"\x81\x05hello"

    def test_byte_at_a_time(self) -> None:
        parser = ResponseParser()
        assert feed_bytewise(parser, RESPONSE_101) == parse_response(RESPONSE_101)[0]

    def test_empty_reason_phrase(self) -> None:
        assert parse_response(b"HTTP/1.1 101\r\n\r\n")[0].reason_phrase == ""
        assert parse_response(b"HTTP/1.1 101 \r\n\r\n")[0].reason_phrase == ""
        assert parse_response(b"HTTP/1.1 101 A  b\r\n\r\n")[0].reason_phrase == "A  b"

    def test_body_by_content_length(self) -> None:
        data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!extra"
        response, leftover = parse_response(data)
        assert response.status_code == 403
        assert response.body == b"nope!"
        assert leftover == b"extra"

    def test_body_by_content_length_bytewise(self) -> None:
        data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"
        parser = ResponseParser()
        response = feed_bytewise(parser, data)
        assert isinstance(response, Response)
        assert response.body == b"nope!"

    def test_zero_content_length(self) -> None:
        response, _ = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        assert response.body == b""

    def test_content_length_over_max_body(self) -> None:
        head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n"
        assert parse_response(head % 10 + b"x" * 10, max_body=10)[0].body == b"x" * 10
        with pytest.raises(InvalidHandshake, match="exceeds"):
            ResponseParser(max_body=10).feed(head % 11)
        with pytest.raises(InvalidHandshake, match="exceeds"):
            ResponseParser().feed(head.replace(b"%d", b"9" * 5000))  # no int() digit limit

    @pytest.mark.parametrize("value", [b"abc", b"-1", b"1, 1", b"+5", b"0x10", b""])
    def test_invalid_content_length(self, value: bytes) -> None:
        data = b"HTTP/1.1 400 Bad Request\r\nContent-Length: " + value + b"\r\n\r\n"
        with pytest.raises(InvalidHandshake, match="Content-Length"):
            ResponseParser().feed(data)

    def test_repeated_content_length(self) -> None:
        data = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
        with pytest.raises(InvalidHandshake, match="Content-Length"):
            ResponseParser().feed(data)

    def test_body_until_eof(self) -> None:
        parser = ResponseParser()
        assert parser.feed(b"HTTP/1.1 500 Internal Server Error\r\n\r\npart one") is None
        assert parser.feed(b", part two") is None
        response = parser.feed_eof()
        assert response.status_code == 500
        assert response.body == b"part one, part two"
        assert parser.leftover == b""

    def test_body_until_eof_over_max_body(self) -> None:
        parser = ResponseParser(max_body=10)
        assert parser.feed(b"HTTP/1.1 500 Oops\r\n\r\n0123456789") is None
        with pytest.raises(InvalidHandshake, match="exceeds"):
            parser.feed(b"a")

    def test_transfer_encoding_not_chunked_reads_until_eof(self) -> None:
        parser = ResponseParser()
        data = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nabc"
        assert parser.feed(data) is None
        assert parser.feed_eof().body == b"abc"

    CHUNKED = (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n"
        b"\r\n"
        b"5\r\nhello\r\n"
        b"7;name=value\r\n, world\r\n"
        b"000\r\n"
        b"Trailer: dropped\r\n"
        b"\r\n"
    )

    def test_chunked(self) -> None:
        response, leftover = parse_response(self.CHUNKED + b"after")
        assert response.body == b"hello, world"
        assert "Trailer" not in response.headers
        assert leftover == b"after"

    def test_chunked_bytewise(self) -> None:
        parser = ResponseParser()
        response = feed_bytewise(parser, self.CHUNKED)
        assert isinstance(response, Response)
        assert response.body == b"hello, world"

    def test_chunked_over_max_body(self) -> None:
        with pytest.raises(InvalidHandshake, match="exceeds"):
            ResponseParser(max_body=11).feed(self.CHUNKED)
        assert parse_response(self.CHUNKED, max_body=12)[0].body == b"hello, world"

    @pytest.mark.parametrize(
        "body",
        [
            b"x\r\n",  # not hex
            b"-5\r\n",
            b"5\r\nhelloXX",  # no CRLF after data
            b"5\nhello\r\n",  # bare LF
            b"1" * 20 + b"\r\n",  # absurd size
        ],
    )
    def test_chunked_malformed(self, body: bytes) -> None:
        head = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        with pytest.raises(InvalidHandshake):
            ResponseParser().feed(head + body)

    def test_chunked_truncated_at_eof(self) -> None:
        parser = ResponseParser()
        assert parser.feed(self.CHUNKED[:-40]) is None
        assert parser.feed_eof().body == b"hello"

    @pytest.mark.parametrize("code", [100, 103, 204, 304])
    def test_statuses_without_body(self, code: int) -> None:
        data = b"HTTP/1.1 %d X\r\nContent-Length: 3\r\n\r\nabc" % code
        response, leftover = parse_response(data)
        assert response.status_code == code
        assert response.body == b""
        assert leftover == b"abc"

    def test_eof_truncated_content_length(self) -> None:
        parser = ResponseParser()
        assert parser.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nabc") is None
        assert parser.feed_eof().body == b"abc"

    @pytest.mark.parametrize("data", [b"", b"HTTP/1.1 101 Switching", RESPONSE_101[:-2]])
    def test_eof_before_end_of_head(self, data: bytes) -> None:
        parser = ResponseParser()
        parser.feed(data)
        with pytest.raises(InvalidHandshake, match="connection closed during handshake"):
            parser.feed_eof()

    def test_feed_after_completion_is_an_error(self) -> None:
        parser = ResponseParser()
        parser.feed(RESPONSE_101)
        with pytest.raises(RuntimeError):
            parser.feed(b"\x81\x00")
        with pytest.raises(RuntimeError):
            parser.feed_eof()

    def test_status_line_too_long(self) -> None:
        parser = ResponseParser(max_line=50)
        assert parser.feed(b"HTTP/1.1 101 " + b"x" * 38) is None
        with pytest.raises(InvalidHandshake, match="status line too long"):
            parser.feed(b"x")

    def test_response_header_bounds(self) -> None:
        head = b"HTTP/1.1 101 OK\r\n" + b"X: 1\r\n" * 4 + b"\r\n"
        assert response_error(head, max_headers=3).status == 431
        assert response_error(b"HTTP/1.1 101 OK\r\nX: " + b"v" * 60, max_line=50)

    @pytest.mark.parametrize(
        "line",
        [
            b"HTTP/1.1",
            b"HTTP/2 101 Switching Protocols",
            b"HTTP/2.0 101 Switching Protocols",
            b"HTTP/1.1 1O1 Switching Protocols",
            b"HTTP/1.1 1010 Switching Protocols",
            b"HTTP/1.1 099 Nope",
            b"HTTP/1.1  101 Switching Protocols",
            b"ICY 200 OK",
            b"HTTP/1.1 101 Bad\x00Reason",
            b"HTTP/1.0 101 Switching Protocols",
        ],
    )
    def test_malformed_status_line(self, line: bytes) -> None:
        response_error(line + b"\r\n\r\n")

    def test_http_1_0_rejection_accepted(self) -> None:
        parser = ResponseParser()
        assert parser.feed(b"HTTP/1.0 403 Forbidden\r\n\r\nno") is None
        assert parser.feed_eof().status_code == 403

    @pytest.mark.parametrize(
        "header", [b" folded", b"NoColon", b"Bad : x", b"X: a\x00b", b"X: a\rb"]
    )
    def test_bad_header_syntax(self, header: bytes) -> None:
        response_error(b"HTTP/1.1 101 OK\r\nX: 1\r\n" + header + b"\r\n\r\n")


# Any split of the input parses to the one-shot result.


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(cuts=st.lists(st.integers(min_value=0), max_size=30), tail=st.binary(max_size=10))
def test_request_any_split_same_result(cuts: list[int], tail: bytes) -> None:
    expected = parse_request(REQUEST)
    parser = RequestParser()
    result = None
    for piece in split(REQUEST + tail, cuts):
        if result is None:
            result = parser.feed(piece)
            leftover = parser.leftover
        else:
            leftover += piece
    assert result == expected
    assert leftover == tail


@given(cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_chunked_response_any_split_same_result(cuts: list[int]) -> None:
    data = TestResponseParser.CHUNKED + b"tail"
    expected = parse_response(data)
    parser = ResponseParser()
    result = None
    for piece in split(data, cuts):
        if result is None:
            result = parser.feed(piece)
            leftover = parser.leftover
        else:
            leftover += piece
    assert (result, leftover) == expected


def test_headers_index_dropped_then_rebuilt_after_changes() -> None:
    headers = Headers([("Host", "a"), ("X-Two", "1"), ("x-two", "2")])
    assert headers.get_all("X-TWO") == ["1", "2"]
    headers._drop_index()
    headers.add("Upgrade", "websocket")  # while dropped: the rebuild must see it
    assert headers["upgrade"] == "websocket"
    headers._drop_index()
    headers["x-two"] = "3"
    assert headers.items() == [("Host", "a"), ("x-two", "3"), ("Upgrade", "websocket")]
    headers._drop_index()
    del headers["HOST"]
    assert "host" not in headers and len(headers) == 2
    assert list(headers) == ["x-two", "Upgrade"]
    headers._drop_index()
    assert headers == Headers({"X-Two": "3", "upgrade": "websocket"})


def test_parsed_header_names_and_short_values_are_shared() -> None:
    def parse() -> Headers:
        parser = RequestParser()
        request = parser.feed(
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert request is not None
        return request.headers

    a, b = parse().items(), parse().items()
    assert a == b
    assert a[1][0] is b[1][0] and a[1][1] is b[1][1]  # one "Upgrade", one "websocket"
    assert a[2][1] is not b[2][1]  # keys are unique: never interned
