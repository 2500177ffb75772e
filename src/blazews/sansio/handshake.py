"""The WebSocket opening handshake (RFC 6455 section 4): build and check both sides.

Server side: :func:`check_request` validates a parsed request and returns the client's
key; :func:`build_response` answers with a 101, :func:`reject_response` with an error.
Client side: :func:`build_request` makes the GET, :func:`check_response` validates the
answer. Header grammars: comma-separated token lists (``Connection``), ``Upgrade``,
``Sec-WebSocket-Extensions`` (RFC 6455 section 9.1, RFC 7692) and
``Sec-WebSocket-Protocol``.

Headers the functions set themselves may not be repeated in ``extra_headers``
(``ValueError``), except the defaults ``User-Agent``, ``Server`` and ``Content-Type``,
which a caller's own value replaces.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from http import HTTPStatus
from typing import TypeAlias

from ..exceptions import InvalidHandshake, InvalidHeader, InvalidStatus
from .http11 import Headers, HeadersLike, Request, Response

__all__ = [
    "GUID",
    "USER_AGENT",
    "ExtensionItem",
    "ExtensionParameter",
    "accept_key",
    "build_request",
    "build_response",
    "check_request",
    "check_response",
    "generate_key",
    "parse_extension_header",
    "parse_subprotocol_header",
    "parse_token_list",
    "reject_response",
    "serialize_extension_header",
    "serialize_subprotocols",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The magic string RFC 6455 appends to the key to compute the accept value."""

USER_AGENT = "blazews/0.1.0"
"""Default ``User-Agent`` of clients and ``Server`` of servers."""

ExtensionParameter: TypeAlias = tuple[str, str | None]
"""One extension parameter: ``(name, value)``, value ``None`` for a bare name."""

ExtensionItem: TypeAlias = tuple[str, list[ExtensionParameter]]
"""One extension offer or response: ``(name, parameters)``."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = re.compile(r"[ \t]*")
# RFC 7230 section 3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE.
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
# RFC 7230 section 6.7: protocol = protocol-name ["/" protocol-version].
_PROTOCOL = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:/[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?")


def generate_key() -> str:
    """Return a fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value answering ``key``.

    Args:
        key: The client's ``Sec-WebSocket-Key``.

    Returns:
        The base64 of the SHA-1 of ``key`` followed by :data:`GUID`.
    """
    digest = hashlib.sha1((key + GUID).encode("utf-8"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def _parse_list(values: list[str], name: str, element: re.Pattern[str]) -> list[str]:
    """Parse RFC 7230 ``#element`` lists spread over header lines.

    Empty elements are allowed and ignored; surrounding OWS is dropped.
    """
    result: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if not item:
                continue
            if not element.fullmatch(item):
                raise InvalidHeader(name, f"invalid element {item!r} in header {name}")
            result.append(item)
    return result


def parse_token_list(values: list[str], *, name: str = "Connection") -> list[str]:
    """Parse a comma-separated token list header such as ``Connection``.

    Args:
        values: Every value of the header, one per header line.
        name: The header's name, for error reports.

    Returns:
        The tokens, in order, in their original case; empty elements are skipped.

    Raises:
        InvalidHeader: If an element is not a token.
    """
    return _parse_list(values, name, _TOKEN)


def _has_token(headers: Headers, name: str, wanted: str, element: re.Pattern[str]) -> bool:
    return any(t.lower() == wanted for t in _parse_list(headers.get_all(name), name, element))


def _check_upgrade_headers(headers: Headers) -> None:
    if not _has_token(headers, "Connection", "upgrade", _TOKEN):
        raise InvalidHeader("Connection", "Connection header lacks the upgrade token")
    if not _has_token(headers, "Upgrade", "websocket", _PROTOCOL):
        raise InvalidHeader("Upgrade", "Upgrade header lacks the websocket token")


def _single(
    headers: Headers, name: str, status: int = 400, extra: list[tuple[str, str]] | None = None
) -> str:
    """Return the value of a header that must appear exactly once."""
    values = headers.get_all(name)
    if not values:
        raise InvalidHeader(name, f"missing {name} header", status, extra)
    if len(values) > 1:
        raise InvalidHeader(name, f"more than one {name} header", status, extra)
    return values[0]


def check_request(request: Request) -> str:
    """Validate a client's opening handshake (server side).

    Checks, in this order: method, ``Host``, ``Connection``, ``Upgrade``,
    ``Sec-WebSocket-Version`` (before the key, so that a client speaking another
    version learns which one to use), ``Sec-WebSocket-Key``.

    Args:
        request: The parsed request.

    Returns:
        The client's ``Sec-WebSocket-Key``.

    Raises:
        InvalidHandshake: With status 405 and ``Allow: GET`` if the method is not GET.
        InvalidHeader: With status 400 if ``Host`` is missing or repeated, ``Connection``
            lacks ``upgrade``, ``Upgrade`` lacks ``websocket``, or the key is missing,
            repeated or not the base64 of 16 bytes, or the request has a body
            (``Content-Length`` other than 0, ``Transfer-Encoding``); with status 426 and
            ``Sec-WebSocket-Version: 13`` if the version is missing, repeated or not 13.
    """
    if request.method != "GET":
        raise InvalidHandshake(f"unsupported HTTP method {request.method}", 405, [("Allow", "GET")])
    headers = request.headers
    _single(headers, "Host")
    _check_upgrade_headers(headers)
    supported = [("Sec-WebSocket-Version", "13")]
    version = _single(headers, "Sec-WebSocket-Version", 426, supported)
    if version != "13":
        raise InvalidHeader(
            "Sec-WebSocket-Version", f"unsupported WebSocket version {version!r}", 426, supported
        )
    key = _single(headers, "Sec-WebSocket-Key")
    if headers.get_all("Transfer-Encoding") or any(
        length != "0" for length in headers.get_all("Content-Length")
    ):
        # The bytes after the head are frames: an upgrade request has no body.
        raise InvalidHandshake("unsupported request body")
    try:
        valid = len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise InvalidHeader("Sec-WebSocket-Key", f"invalid Sec-WebSocket-Key {key!r}")
    return key


def check_response(response: Response, key: str) -> None:
    """Validate the server's answer to the opening handshake (client side).

    Args:
        response: The parsed response.
        key: The ``Sec-WebSocket-Key`` the client sent.

    Raises:
        InvalidStatus: If the status is not 101.
        InvalidHeader: If ``Upgrade`` lacks ``websocket``, ``Connection`` lacks
            ``upgrade``, or ``Sec-WebSocket-Accept`` is missing, repeated or wrong.
    """
    if response.status_code != 101:
        raise InvalidStatus(response)
    headers = response.headers
    _check_upgrade_headers(headers)
    accept = _single(headers, "Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise InvalidHeader("Sec-WebSocket-Accept", f"wrong Sec-WebSocket-Accept {accept!r}")


def _ext_error(message: str) -> InvalidHeader:
    return InvalidHeader("Sec-WebSocket-Extensions", message)


def _token_at(value: str, pos: int, what: str) -> tuple[str, int]:
    match = _TOKEN.match(value, pos)
    if match is None:
        raise _ext_error(f"expected {what} at position {pos} in {value!r}")
    return match.group(), match.end()


def _skip_ows(value: str, pos: int) -> int:
    match = _OWS.match(value, pos)
    assert match is not None  # [ \t]* always matches
    return match.end()


def _parse_extension_line(value: str, result: list[ExtensionItem]) -> None:
    pos, end = 0, len(value)
    while True:
        pos = _skip_ows(value, pos)
        if pos == end:
            return
        if value[pos] == ",":  # empty list element
            pos += 1
            continue
        name, pos = _token_at(value, pos, "an extension name")
        params: list[ExtensionParameter] = []
        pos = _skip_ows(value, pos)
        while pos < end and value[pos] == ";":
            pos = _skip_ows(value, pos + 1)
            param, pos = _token_at(value, pos, "a parameter name")
            pos = _skip_ows(value, pos)
            arg: str | None = None
            if pos < end and value[pos] == "=":
                pos = _skip_ows(value, pos + 1)
                quoted = _QUOTED.match(value, pos)
                if quoted is not None:
                    arg = _ESCAPE.sub(r"\1", quoted.group(1))
                    pos = quoted.end()
                    # RFC 6455 section 9.1: once unquoted, the value must be a token.
                    if not _TOKEN.fullmatch(arg):
                        raise _ext_error(f"quoted value {arg!r} of {param} is not a token")
                else:
                    arg, pos = _token_at(value, pos, f"a value for {param}")
                pos = _skip_ows(value, pos)
            params.append((param, arg))
        result.append((name, params))
        if pos == end:
            return
        if value[pos] != ",":
            raise _ext_error(f"unexpected {value[pos]!r} at position {pos} in {value!r}")
        pos += 1


def parse_extension_header(values: list[str]) -> list[ExtensionItem]:
    """Parse ``Sec-WebSocket-Extensions`` (RFC 6455 section 9.1).

    Args:
        values: Every value of the header, one per header line.

    Returns:
        The extensions, in order: ``[(name, [(param, value or None), ...]), ...]``.
        Quoted values are unquoted and unescaped. Empty list elements are skipped.

    Raises:
        InvalidHeader: If the header is malformed, including a quoted value that is
            not a token once unquoted (RFC 6455 requires it).
    """
    result: list[ExtensionItem] = []
    for value in values:
        _parse_extension_line(value, result)
    return result


def serialize_extension_header(extensions: list[ExtensionItem]) -> str:
    """Return a ``Sec-WebSocket-Extensions`` value, e.g. ``a; x; y=1, b``.

    Args:
        extensions: ``[(name, [(param, value or None), ...]), ...]``.

    Raises:
        ValueError: If a name, parameter or value is not a token.
    """
    items = []
    for name, params in extensions:
        parts = [name]
        for param, arg in params:
            parts.append(param if arg is None else f"{param}={arg}")
        for part in parts:
            for token in part.split("=", 1):
                if not _TOKEN.fullmatch(token):
                    raise ValueError(f"invalid token {token!r} in extension {name!r}")
        items.append("; ".join(parts))
    return ", ".join(items)


def parse_subprotocol_header(values: list[str]) -> list[str]:
    """Parse ``Sec-WebSocket-Protocol``: comma-separated tokens over several lines.

    Raises:
        InvalidHeader: If an element is not a token.
    """
    return _parse_list(values, "Sec-WebSocket-Protocol", _TOKEN)


def serialize_subprotocols(subprotocols: list[str]) -> str:
    """Return a ``Sec-WebSocket-Protocol`` value from subprotocol names.

    Raises:
        ValueError: If the list is empty or a name is not a token.
    """
    if not subprotocols:
        raise ValueError("no subprotocols to serialize")
    for subprotocol in subprotocols:
        if not _TOKEN.fullmatch(subprotocol):
            raise ValueError(f"invalid subprotocol {subprotocol!r}")
    return ", ".join(subprotocols)


def _merge(headers: Headers, extra: HeadersLike | None, defaults: list[tuple[str, str]]) -> None:
    """Append ``defaults`` the caller did not give, then the caller's ``extra`` headers."""
    given = Headers(extra)
    for name in given:
        if name in headers:
            raise ValueError(f"extra header {name} would repeat a header set by blazews")
    for name, value in defaults:
        if name not in given:
            headers.add(name, value)
    for name, value in given.items():
        headers.add(name, value)


def build_request(
    host: str,
    path: str,
    key: str,
    *,
    subprotocols: list[str] | None = None,
    extensions_header: str | None = None,
    extra_headers: HeadersLike | None = None,
    origin: str | None = None,
) -> Request:
    """Build a client's opening handshake request.

    Args:
        host: The ``Host`` value, with the port when it is not the default one.
        path: The request target, e.g. ``/chat?room=1``.
        key: The ``Sec-WebSocket-Key``, from :func:`generate_key`.
        subprotocols: Subprotocols to offer, if any.
        extensions_header: A ``Sec-WebSocket-Extensions`` value, if any.
        extra_headers: More headers, sent last; a ``User-Agent`` here replaces
            :data:`USER_AGENT`.
        origin: An ``Origin`` value, if any.

    Returns:
        The request; :meth:`Request.serialize` validates it when sending.

    Raises:
        ValueError: If a subprotocol is not a token, or an extra header repeats one
            set here.
    """
    headers = Headers(
        [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ]
    )
    if subprotocols:
        headers.add("Sec-WebSocket-Protocol", serialize_subprotocols(subprotocols))
    if extensions_header is not None:
        headers.add("Sec-WebSocket-Extensions", extensions_header)
    if origin is not None:
        headers.add("Origin", origin)
    _merge(headers, extra_headers, [("User-Agent", USER_AGENT)])
    return Request(path, headers)


def build_response(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions_header: str | None = None,
    extra_headers: HeadersLike | None = None,
) -> Response:
    """Build a server's 101 answer to a valid opening handshake.

    Args:
        key: The client's ``Sec-WebSocket-Key``, as returned by :func:`check_request`.
        subprotocol: The chosen subprotocol, if any.
        extensions_header: The accepted ``Sec-WebSocket-Extensions`` value, if any.
        extra_headers: More headers, sent last; a ``Server`` here replaces
            :data:`USER_AGENT`.

    Raises:
        ValueError: If the subprotocol is not a token, or an extra header repeats one
            set here.
    """
    headers = Headers(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
    )
    if subprotocol is not None:
        headers.add("Sec-WebSocket-Protocol", serialize_subprotocols([subprotocol]))
    if extensions_header is not None:
        headers.add("Sec-WebSocket-Extensions", extensions_header)
    _merge(headers, extra_headers, [("Server", USER_AGENT)])
    return Response(101, "Switching Protocols", headers)


def reject_response(
    status: int, body: bytes | str = b"", headers: HeadersLike | None = None
) -> Response:
    """Build a server's error answer to an opening handshake; the connection then closes.

    Args:
        status: The HTTP status, e.g. ``InvalidHandshake.status``.
        body: The body; a ``str`` is sent as UTF-8 with
            ``Content-Type: text/plain; charset=utf-8``.
        headers: More headers, e.g. ``InvalidHandshake.headers``; a ``Server`` or
            ``Content-Type`` here replaces the default one.

    Returns:
        The response with the standard reason phrase (empty for a status
        :class:`http.HTTPStatus` does not know), ``Content-Length`` and
        ``Connection: close``.

    Raises:
        ValueError: If the status is not in 100-599, or a header repeats
            ``Content-Length`` or ``Connection``.
    """
    if not 100 <= status <= 599:
        raise ValueError(f"invalid status code {status}")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    defaults = [("Server", USER_AGENT)]
    if isinstance(body, str):
        body = body.encode("utf-8")
        defaults.append(("Content-Type", "text/plain; charset=utf-8"))
    response_headers = Headers([("Content-Length", str(len(body))), ("Connection", "close")])
    _merge(response_headers, headers, defaults)
    return Response(status, reason, response_headers, body)
