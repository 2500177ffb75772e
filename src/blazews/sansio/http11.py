"""HTTP/1.1 for the opening handshake: headers, request and response, incremental parsers.

Only what the WebSocket upgrade needs (RFC 7230, RFC 6455 section 4): a server reads
one request head, a client reads one response (a 101 head, or a rejection with its
body). Everything is sans-I/O: the parsers take bytes and return objects.

Parsing rules, chosen to be strict and to fail early:

- Lines end with CRLF. A bare LF is refused (400): accepting it opens the door to
  request smuggling between peers that disagree on line ends.
- Bounds are checked as bytes arrive, before a line is complete: a request line longer
  than ``max_line`` is a 414, a header line longer than ``max_line`` or more than
  ``max_headers`` headers is a 431. Everything else malformed is a 400: a request line
  that is not exactly ``METHOD SP TARGET SP HTTP/1.x``, empty lines before it, a header
  name that is not a token or is followed by whitespace, a line without a colon,
  obs-fold continuation lines, control characters other than HTAB in a value.
- ``HTTP/1.0`` cannot upgrade: it is refused with 400. A major version other than 1
  (``HTTP/2.0`` in an HTTP/1 request line) is refused with 505.
- Header values are decoded as latin-1 and stripped of surrounding SP and HTAB.
- The request target is kept as sent (origin-form, absolute-form, ...) in
  :attr:`Request.path`; it must be visible ASCII.

Parsing is linear: each parser keeps one buffer and the position where its last search
for a line end stopped, so a head fed one byte at a time costs O(n) in total.

A client's :class:`ResponseParser` reads the body of a rejection (any status but 101):
by ``Content-Length``, by decoding ``Transfer-Encoding: chunked`` (trailers are read
and dropped), or, with neither, until :meth:`ResponseParser.feed_eof`. 1xx (other than
101), 204 and 304 responses have no body. The body is bounded by ``max_body``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeAlias, TypeVar, overload

from ..exceptions import InvalidHandshake

__all__ = [
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "check_header",
]

_T = TypeVar("_T")

# RFC 7230 section 3.2.6: token = 1*tchar.
_TOKEN_STR = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_START = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
# field-content: VCHAR, obs-text, SP, HTAB. Anything else (CR, LF, NUL, other controls,
# DEL, characters beyond latin-1) must never be sent.
_BAD_VALUE_STR = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
_BAD_VALUE_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# request-target: visible ASCII only; no whitespace, no controls.
_TARGET_STR = re.compile(r"[\x21-\x7e]+")
_TARGET_BYTES = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_STATUS_CODE = re.compile(rb"[0-9]{3}")
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class MultipleValuesError(KeyError):
    """A header looked up as a single value appears more than once.

    Attributes:
        name: The header's name, as looked up.
        count: How many times it appears.
    """

    def __init__(self, name: str, count: int) -> None:
        super().__init__(name)
        self.name = name
        self.count = count

    def __str__(self) -> str:
        return f"header {self.name} appears {self.count} times"


class Headers:
    """Case-insensitive multi-dict of HTTP headers.

    Keeps every ``(name, value)`` pair in insertion order with the name's original
    case; lookups ignore case. Iteration and :func:`len` see each distinct name once
    (in the case and at the place of its first occurrence); :meth:`items` sees every
    pair. Two instances are equal when they hold the same values, in the same order,
    for each name, whatever the case of the names and the interleaving of different
    names.

    Args:
        items: Initial headers: another :class:`Headers`, a mapping, or an iterable of
            ``(name, value)`` pairs.
    """

    __slots__ = ("_flat", "_index")

    def __init__(self, items: HeadersLike | None = None) -> None:
        # Names and values alternating, [name0, value0, name1, value1, ...]: one list
        # and no tuple per pair, since a connection keeps its handshake's headers.
        self._flat: list[str] = []
        # Lowercased name -> values, built on the first lookup; _drop_index() lets it
        # go (a handshake's headers, kept for the life of a connection, then cost
        # only their pairs: ~1.3 KiB less per idle connection).
        self._index: dict[str, list[str]] | None = None
        if items is None:
            return
        pairs: Iterable[tuple[str, str]] = (
            items.items() if isinstance(items, (Headers, Mapping)) else items
        )
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a header, keeping those already there with the same name."""
        self._flat += (name, value)
        if self._index is not None:
            self._index.setdefault(name.lower(), []).append(value)

    def _idx(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = self._index = {}
            for name, value in self._pairs():
                index.setdefault(name.lower(), []).append(value)
        return index

    def _pairs(self) -> Iterator[tuple[str, str]]:
        flat = self._flat
        return zip(flat[0::2], flat[1::2], strict=True)

    def _drop_index(self) -> None:
        """Free the lookup index (rebuilt on the next lookup)."""
        self._index = None

    def get_all(self, name: str) -> list[str]:
        """Return every value of header ``name``, in order; ``[]`` if absent."""
        return list(self._idx().get(name.lower(), ()))

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: _T) -> str | _T: ...

    def get(self, name: str, default: object = None) -> object:
        """Return the single value of header ``name``, or ``default`` if absent.

        Raises:
            MultipleValuesError: If the header appears more than once: a repeated
                header is never silently reduced to one of its values.
        """
        values = self._idx().get(name.lower())
        if values is None:
            return default
        if len(values) > 1:
            raise MultipleValuesError(name, len(values))
        return values[0]

    def __getitem__(self, name: str) -> str:
        """Return the single value of header ``name``.

        Raises:
            KeyError: If the header is absent.
            MultipleValuesError: If it appears more than once.
        """
        values = self._idx()[name.lower()]
        if len(values) > 1:
            raise MultipleValuesError(name, len(values))
        return values[0]

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every value of header ``name`` with ``value``.

        The new pair takes the place of the first existing one, or goes at the end.
        """
        key = name.lower()
        index = self._idx()
        if key not in index:
            self.add(name, value)
            return
        flat: list[str] = []
        placed = False
        for pair in self._pairs():
            if pair[0].lower() != key:
                flat += pair
            elif not placed:
                flat += (name, value)
                placed = True
        self._flat = flat
        index[key] = [value]

    def __delitem__(self, name: str) -> None:
        """Remove every value of header ``name``.

        Raises:
            KeyError: If the header is absent.
        """
        key = name.lower()
        del self._idx()[key]
        self._flat = [x for pair in self._pairs() if pair[0].lower() != key for x in pair]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._idx()

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name in self._flat[0::2]:
            key = name.lower()
            if key not in seen:
                seen.add(key)
                yield name

    def __len__(self) -> int:
        return len(self._idx())

    def items(self) -> list[tuple[str, str]]:
        """Return every ``(name, value)`` pair, in insertion order."""
        return list(self._pairs())

    def copy(self) -> Headers:
        """Return an independent copy."""
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._idx() == other._idx()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


HeadersLike: TypeAlias = Headers | Mapping[str, str] | Iterable[tuple[str, str]]
"""What APIs taking headers accept: :class:`Headers`, a mapping or ``(name, value)`` pairs."""


def check_header(name: str, value: str) -> None:
    """Check that a header can be sent as is.

    Args:
        name: The header's name; must be an RFC 7230 token.
        value: The header's value; must hold no CR, LF, NUL or other control
            character except HTAB, and only latin-1 characters. This is the defence
            against header injection.

    Raises:
        ValueError: If the name or the value cannot be sent.
    """
    if not _TOKEN_STR.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    bad = _BAD_VALUE_STR.search(value)
    if bad is not None:
        raise ValueError(f"invalid character {bad.group()!r} in the value of header {name}")


def _serialize_headers(parts: list[bytes], headers: Headers) -> None:
    for name, value in headers.items():
        check_header(name, value)
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    parts.append(b"\r\n")


@dataclass
class Request:
    """An HTTP request head: a client's opening handshake.

    Attributes:
        path: The request target as sent, e.g. ``/chat?room=1``.
        headers: The request headers.
        method: The request method.
    """

    path: str
    headers: Headers
    method: str = "GET"

    def serialize(self) -> bytes:
        """Return the request as bytes to send.

        Raises:
            ValueError: If the method or a header name is not a token, the path is
                empty or holds whitespace, controls or non-ASCII characters, or a header
                value holds CR, LF, NUL or another control character.
        """
        if not _TOKEN_STR.fullmatch(self.method):
            raise ValueError(f"invalid request method {self.method!r}")
        if not _TARGET_STR.fullmatch(self.path):
            raise ValueError(f"invalid request path {self.path!r}")
        parts = [f"{self.method} {self.path} HTTP/1.1\r\n".encode("ascii")]
        _serialize_headers(parts, self.headers)
        return b"".join(parts)


@dataclass
class Response:
    """An HTTP response: a server's answer to the opening handshake.

    Attributes:
        status_code: The status code, e.g. 101.
        reason_phrase: The reason phrase, e.g. ``"Switching Protocols"``.
        headers: The response headers.
        body: The response body; empty for a 101.
    """

    status_code: int
    reason_phrase: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """Return the response as bytes to send: head, then body.

        Nothing is added implicitly: a body needs its ``Content-Length`` header from
        the caller.

        Raises:
            ValueError: If the status code is not in 100-999, the reason phrase holds
                controls other than HTAB, a header name is not a token, or a header
                value holds CR, LF, NUL or another control character.
        """
        if not 100 <= self.status_code <= 999:
            raise ValueError(f"invalid status code {self.status_code}")
        if _BAD_VALUE_STR.search(self.reason_phrase):
            raise ValueError(f"invalid reason phrase {self.reason_phrase!r}")
        parts = [f"HTTP/1.1 {self.status_code} {self.reason_phrase}\r\n".encode("latin-1")]
        _serialize_headers(parts, self.headers)
        parts.append(bytes(self.body))
        return b"".join(parts)


def _show(data: bytes | bytearray) -> str:
    """Render untrusted bytes for an error message, shortened."""
    text = repr(bytes(data[:40]))
    return text + "..." if len(data) > 40 else text


class _Parser:
    """Shared machinery: one buffer, a line start and a scan position."""

    def __init__(self, max_line: int, max_headers: int) -> None:
        self.max_line = max_line
        self.max_headers = max_headers
        self.leftover = b""
        self._buf = bytearray()
        self._line_start = 0
        self._scan = 0
        self._headers = Headers()
        self._header_count = 0
        self._finished = False
        self._error: InvalidHandshake | None = None

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise RuntimeError("parser already finished")

    def _fail(self, exc: InvalidHandshake) -> InvalidHandshake:
        self._error = exc
        self._buf = bytearray()
        return exc

    def _line_too_long(self) -> InvalidHandshake:
        raise NotImplementedError

    def _next_line(self) -> bytearray | None:
        """Return the next complete line without its CRLF, or None if more bytes are needed.

        Searches only the bytes not searched yet, and checks the line's length bound
        before the line is complete.
        """
        buf = self._buf
        end = buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(buf)
            # max_line bytes of content plus the CR of a CRLF still missing its LF.
            if self._scan - self._line_start > self.max_line + 1:
                raise self._line_too_long()
            return None
        start = self._line_start
        if end == start or buf[end - 1] != 0x0D:
            raise InvalidHandshake("line ends with a bare LF instead of CRLF")
        if end - 1 - start > self.max_line:
            raise self._line_too_long()
        self._line_start = self._scan = end + 1
        return buf[start : end - 1]

    def _header_line(self, line: bytearray, headers: Headers) -> None:
        if line.startswith((b" ", b"\t")):
            raise InvalidHandshake("obs-fold continuation lines are not supported")
        colon = line.find(b":")
        if colon < 0:
            raise InvalidHandshake(f"header line without a colon: {_show(line)}")
        name = line[:colon]
        if not _TOKEN_BYTES.fullmatch(name):
            if name.endswith((b" ", b"\t")):
                raise InvalidHandshake(f"whitespace before the colon in header {_show(name)}")
            raise InvalidHandshake(f"invalid header name {_show(name)}")
        value = line[colon + 1 :].strip(b" \t")
        if _BAD_VALUE_BYTES.search(value):
            raise InvalidHandshake(
                f"control character in the value of header {name.decode('ascii')}"
            )
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise InvalidHandshake("too many headers", 431)
        # Names, and short values other than the key, repeat from one request to
        # the next: interned, every connection shares one copy of each.
        text = value.decode("latin-1")
        if len(text) <= 32 and name.lower() != b"sec-websocket-key":
            text = sys.intern(text)
        headers.add(sys.intern(name.decode("ascii")), text)


class RequestParser(_Parser):
    """Incremental parser of an opening handshake request (server side).

    Args:
        max_line: Longest request line or header line, in bytes, CRLF excluded.
        max_headers: Most header lines.

    Attributes:
        leftover: Bytes received after the end of the head, once it is complete. A
            client must wait for the 101 before sending frames, so these are usually
            empty; they belong to the WebSocket stream.
    """

    def __init__(self, max_line: int = 8192, max_headers: int = 128) -> None:
        super().__init__(max_line, max_headers)
        self._method = ""
        self._target = ""
        self._in_headers = False

    def _line_too_long(self) -> InvalidHandshake:
        if self._in_headers:
            return InvalidHandshake("header line too long", 431)
        return InvalidHandshake("request line too long", 414)

    def feed(self, data: bytes | bytearray | memoryview) -> Request | None:
        """Add received bytes; return the request once its head is complete.

        Args:
            data: The bytes just received.

        Returns:
            The request when its head is complete, else ``None`` (more bytes needed).

        Raises:
            InvalidHandshake: If the request is malformed or exceeds a bound; its
                ``status`` (400, 414, 431, 505) is the one to answer with.
            RuntimeError: If the parser already returned a request.
        """
        self._check_usable()
        self._buf += data
        try:
            return self._parse()
        except InvalidHandshake as exc:
            raise self._fail(exc) from None

    def feed_eof(self) -> Request:
        """Signal that the peer closed the connection.

        Raises:
            InvalidHandshake: Always, unless the parser already finished: the
                connection closed before the request was complete.
            RuntimeError: If the parser already returned a request.
        """
        self._check_usable()
        raise self._fail(InvalidHandshake("connection closed during handshake"))

    def _parse(self) -> Request | None:
        while True:
            line = self._next_line()
            if line is None:
                if not self._in_headers:
                    self._check_method_start()
                return None
            if not self._in_headers:
                self._request_line(line)
                self._in_headers = True
            elif line:
                self._header_line(line, self._headers)
            else:
                self._finished = True
                self.leftover = bytes(self._buf[self._line_start :])
                self._buf = bytearray()
                return Request(self._target, self._headers, self._method)

    def _check_method_start(self) -> None:
        """Refuse at once bytes that cannot begin a request line (a TLS ClientHello,
        binary noise), instead of holding the connection for the open timeout: up to
        its first space, a request line is a method, a token."""
        buf = self._buf
        start = self._line_start
        found = _TOKEN_START.match(buf, start)
        end = found.end() if found is not None else start
        if end < len(buf) and (buf[end] != 0x20 or end == start):
            raise InvalidHandshake(f"not an HTTP request: {_show(buf[start : start + 16])}")

    def _request_line(self, line: bytearray) -> None:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise InvalidHandshake(f"malformed request line: {_show(line)}")
        method, target, version = parts
        if not _TOKEN_BYTES.fullmatch(method):
            raise InvalidHandshake(f"invalid request method {_show(method)}")
        if not _TARGET_BYTES.fullmatch(target):
            raise InvalidHandshake(f"invalid request target {_show(target)}")
        match = _VERSION.fullmatch(version)
        if match is None:
            raise InvalidHandshake(f"invalid HTTP version {_show(version)}")
        if match.group(1) != b"1":
            raise InvalidHandshake(f"unsupported HTTP version {version.decode('ascii')}", 505)
        if match.group(2) == b"0":
            raise InvalidHandshake("HTTP/1.0 cannot upgrade to WebSocket: HTTP/1.1 required")
        self._method = method.decode("ascii")
        self._target = target.decode("ascii")


# ResponseParser states.
_STATUS = 0  # status line
_HEADERS = 1  # header lines, up to an empty line
_BODY_LENGTH = 2  # body delimited by Content-Length
_BODY_EOF = 3  # body delimited by the end of the connection
_CHUNK_SIZE = 4  # chunked body: chunk-size line
_CHUNK_DATA = 5  # chunked body: chunk data
_CHUNK_END = 6  # chunked body: CRLF after the data
_TRAILERS = 7  # chunked body: trailer lines, up to an empty line


class ResponseParser(_Parser):
    """Incremental parser of the server's answer to the opening handshake (client side).

    A 101 completes at the end of its head. Any other status is a rejection whose body
    is read too (see the module docstring), so that it can be shown to the user.

    Args:
        max_line: Longest status line, header line or chunk-size line, CRLF excluded.
        max_headers: Most header lines (trailers are counted apart).
        max_body: Largest body of a rejection, in bytes.
        tunnel: The answer to a ``CONNECT``: a 2xx completes at the end of its head
            (RFC 9110 section 9.3.6: what follows is the tunnel's).

    Attributes:
        leftover: Bytes received after the end of the response, once it is complete.
            After a 101 they are the start of the WebSocket stream (a server may send
            its first frame in the same segment as its 101).
    """

    def __init__(
        self,
        max_line: int = 8192,
        max_headers: int = 128,
        max_body: int = 65536,
        *,
        tunnel: bool = False,
    ) -> None:
        super().__init__(max_line, max_headers)
        self.max_body = max_body
        self.tunnel = tunnel
        self._state = _STATUS
        self._status_code = 0
        self._reason = ""
        self._body = bytearray()
        self._remaining = 0  # bytes left in a Content-Length body or in a chunk

    def _line_too_long(self) -> InvalidHandshake:
        what = {_STATUS: "status line", _CHUNK_SIZE: "chunk size line"}.get(
            self._state, "header line"
        )
        return InvalidHandshake(f"{what} too long", 431 if self._state == _HEADERS else 400)

    def feed(self, data: bytes | bytearray | memoryview) -> Response | None:
        """Add received bytes; return the response once it is complete.

        Args:
            data: The bytes just received.

        Returns:
            The response when complete (a 101 at the end of its head, another status
            at the end of its body), else ``None`` (more bytes needed).

        Raises:
            InvalidHandshake: If the response is malformed or exceeds a bound.
            RuntimeError: If the parser already returned a response.
        """
        self._check_usable()
        try:
            if self._state == _BODY_LENGTH or self._state == _BODY_EOF:
                return self._body_bytes(data)
            self._buf += data
            return self._parse()
        except InvalidHandshake as exc:
            raise self._fail(exc) from None

    def feed_eof(self) -> Response:
        """Signal that the server closed the connection.

        Returns:
            The response, if its head is complete. Its body holds what arrived: all
            of it for a body delimited by the end of the connection, possibly a
            truncated one if ``Content-Length`` or chunked framing promised more.

        Raises:
            InvalidHandshake: If the connection closed before the end of the head.
            RuntimeError: If the parser already returned a response.
        """
        self._check_usable()
        if self._state == _STATUS or self._state == _HEADERS:
            raise self._fail(InvalidHandshake("connection closed during handshake"))
        return self._finish(b"")

    def _finish(self, leftover: bytes | bytearray | memoryview) -> Response:
        self._finished = True
        self.leftover = bytes(leftover)
        self._buf = bytearray()
        return Response(self._status_code, self._reason, self._headers, bytes(self._body))

    def _add_body(self, data: bytes | bytearray | memoryview) -> None:
        if len(self._body) + len(data) > self.max_body:
            raise InvalidHandshake(f"response body exceeds {self.max_body} bytes")
        self._body += data

    def _body_bytes(self, data: bytes | bytearray | memoryview) -> Response | None:
        if self._state == _BODY_EOF:
            self._add_body(data)
            return None
        take = min(self._remaining, len(data))
        self._body += data[:take]
        self._remaining -= take
        if self._remaining:
            return None
        return self._finish(data[take:])

    def _parse(self) -> Response | None:
        while self._state == _STATUS or self._state == _HEADERS:
            line = self._next_line()
            if line is None:
                return None
            if self._state == _STATUS:
                self._status_line(line)
                self._state = _HEADERS
            elif line:
                self._header_line(line, self._headers)
            else:
                return self._end_of_head()
        return self._chunked()

    def _status_line(self, line: bytearray) -> None:
        # The reason phrase may be empty; tolerate a missing SP before an empty one.
        parts = line.split(b" ", 2)
        if len(parts) < 2:
            raise InvalidHandshake(f"malformed status line: {_show(line)}")
        version, code = parts[0], parts[1]
        reason = parts[2] if len(parts) == 3 else b""
        match = _VERSION.fullmatch(version)
        if match is None or match.group(1) != b"1":
            raise InvalidHandshake(f"unsupported HTTP version in status line: {_show(line)}")
        if not _STATUS_CODE.fullmatch(code) or code[:1] == b"0":
            raise InvalidHandshake(f"invalid status code {_show(code)}")
        if _BAD_VALUE_BYTES.search(reason):
            raise InvalidHandshake("control character in the reason phrase")
        self._status_code = int(code)
        if self._status_code == 101 and match.group(2) == b"0":
            raise InvalidHandshake("HTTP/1.0 cannot switch protocols")
        self._reason = reason.decode("latin-1")

    def _end_of_head(self) -> Response | None:
        rest = self._buf[self._line_start :]
        code = self._status_code
        if code < 200 or code == 204 or code == 304 or (self.tunnel and code < 300):
            return self._finish(rest)
        headers = self._headers
        codings = ",".join(headers.get_all("Transfer-Encoding"))
        if codings:
            if codings.rsplit(",", 1)[-1].strip(" \t").lower() == "chunked":
                self._state = _CHUNK_SIZE
                self._header_count = 0
                self._buf = rest
                self._line_start = self._scan = 0
                return self._chunked()
            self._state = _BODY_EOF
        else:
            lengths = headers.get_all("Content-Length")
            if not lengths:
                self._state = _BODY_EOF
            else:
                if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0].encode("latin-1")):
                    raise InvalidHandshake(f"invalid Content-Length: {', '.join(lengths)}")
                digits = lengths[0].lstrip("0")
                if len(digits) > 18 or int(digits or "0") > self.max_body:
                    raise InvalidHandshake(f"response body exceeds {self.max_body} bytes")
                self._remaining = int(digits or "0")
                self._state = _BODY_LENGTH
        self._buf = bytearray()
        return self._body_bytes(rest)

    def _chunked(self) -> Response | None:
        buf = self._buf
        if self._line_start:
            # Drop what was consumed; deleting a bytearray's prefix is cheap in CPython.
            del buf[: self._line_start]
            self._scan -= self._line_start
            self._line_start = 0
        while True:
            if self._state == _CHUNK_SIZE:
                line = self._next_line()
                if line is None:
                    return None
                size = line.split(b";", 1)[0].rstrip(b" \t")
                if not _HEX.fullmatch(size):
                    raise InvalidHandshake(f"invalid chunk size {_show(size)}")
                size = size.lstrip(b"0")
                if len(size) > 16 or len(self._body) + int(size or b"0", 16) > self.max_body:
                    raise InvalidHandshake(f"response body exceeds {self.max_body} bytes")
                self._remaining = int(size or b"0", 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif self._state == _CHUNK_DATA:
                start = self._line_start
                take = min(self._remaining, len(buf) - start)
                self._body += buf[start : start + take]
                self._remaining -= take
                self._line_start = self._scan = start + take
                if self._remaining:
                    return None
                self._state = _CHUNK_END
            elif self._state == _CHUNK_END:
                start = self._line_start
                if len(buf) - start < 2:
                    return None
                if buf[start : start + 2] != b"\r\n":
                    raise InvalidHandshake("chunk data not followed by CRLF")
                self._line_start = self._scan = start + 2
                self._state = _CHUNK_SIZE
            else:  # _TRAILERS: header lines, dropped, up to an empty line.
                line = self._next_line()
                if line is None:
                    return None
                if not line:
                    return self._finish(buf[self._line_start :])
                self._header_line(line, Headers())
