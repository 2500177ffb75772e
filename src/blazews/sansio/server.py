"""The server side of the protocol: the opening handshake, then frames.

The front end feeds bytes; once the request is parsed it appears as a
:class:`~blazews.sansio.http11.Request` event. The front end then calls
:meth:`ServerProtocol.accept` (or :meth:`ServerProtocol.reject`), may let the
application change the response, and sends it with
:meth:`ServerProtocol.send_response`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Sequence

from ..exceptions import InvalidHandshake, NegotiationError
from .extensions import Extension, ExtensionParams, ServerExtensionFactory
from .handshake import (
    build_response,
    check_request,
    parse_extension_header,
    parse_subprotocol_header,
    reject_response,
    serialize_extension_header,
)
from .http11 import Headers, Request, RequestParser, Response
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, Protocol, Side, State

__all__ = ["ServerProtocol", "SubprotocolSelector"]

MAX_EARLY_DATA = 65536
"""Bytes a client may send after its request, before the response, kept for later."""

SubprotocolSelector = (
    Callable[[Sequence[str], Request], "str | None"] | Callable[[Sequence[str]], "str | None"]
)
"""A policy that picks a subprotocol from the client's offer, or ``None``:
``select(offered, request)``, given the request (its ``path`` and ``headers``) as well;
or ``select(offered)`` (a selector that takes one positional argument)."""


def _takes_request(selector: Callable[..., object]) -> bool:
    """Whether a selector takes the request as its second argument (looked up once
    per selector, not per connection, when it is hashable)."""
    try:
        return _takes_request_cached(selector)
    except TypeError:  # unhashable
        return _arity_says_request(selector)


@functools.lru_cache(maxsize=256)
def _takes_request_cached(selector: Callable[..., object]) -> bool:
    return _arity_says_request(selector)


def _arity_says_request(selector: Callable[..., object]) -> bool:
    try:
        params = inspect.signature(selector).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return True
    positional = 0
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            return True
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


class ServerProtocol(Protocol):
    """The sans-I/O server: handshake and frames.

    Args:
        subprotocols: Subprotocols the server supports, in no particular order.
        select_subprotocol: The policy choosing one from the client's offer (in the
            client's order of preference): ``select(offered, request)``, or
            ``select(offered)``; it returns one of ``offered`` or ``None`` (no
            subprotocol). Given, it decides alone: ``subprotocols`` is then not
            consulted (it is what the default policy picks from). The default picks
            the first offered one the server supports; no match means no subprotocol.
        extensions: Factories for the extensions the server accepts.
        max_message_size: Largest received message (see :class:`Protocol`).
        max_line: Longest request line (414 beyond) or header line (431 beyond).
        max_headers: Most request headers (431 beyond).
        origins: The ``Origin`` header values allowed (``None`` in it allows a request
            without one); any other request is refused with 403. ``None``: no check.
            The defence against cross-site WebSocket hijacking: a browser sends the
            page's origin, which a hostile page cannot forge.
    """

    __slots__ = (
        "_leftover",
        "_parser",
        "_pending_extensions",
        "_pending_subprotocol",
        "_select_takes_request",
        "available_subprotocols",
        "extension_factories",
        "handshake_exc",
        "origins",
        "request",
        "response",
        "select_subprotocol",
        "subprotocol",
    )

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SubprotocolSelector | None = None,
        extensions: Sequence[ServerExtensionFactory] = (),
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_line: int = 8192,
        max_headers: int = 128,
        origins: Collection[str | None] | None = None,
    ) -> None:
        super().__init__(Side.SERVER, state=State.CONNECTING, max_message_size=max_message_size)
        self.origins = origins
        self.available_subprotocols = tuple(subprotocols or ())  # shared, not copied
        # (None: _default_select; not a bound method kept by every connection)
        self.select_subprotocol: Callable[..., str | None] | None = select_subprotocol
        self._select_takes_request = select_subprotocol is not None and _takes_request(
            select_subprotocol
        )
        self.extension_factories = tuple(extensions)
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: str | None = None
        self.handshake_exc: InvalidHandshake | None = None
        # Dropped once the request is parsed: an open connection keeps no parser.
        self._parser: RequestParser | None = RequestParser(
            max_line=max_line, max_headers=max_headers
        )
        self._leftover = b""
        self._pending_extensions: Sequence[Extension] = ()
        self._pending_subprotocol: str | None = None

    def _default_select(self, offered: Sequence[str]) -> str | None:
        for name in offered:
            if name in self.available_subprotocols:
                return name
        return None

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        if self.request is not None:
            # Bytes sent before our response; they are frames, parsed once we accept.
            # A client should wait for the response, so a little is plenty.
            self._leftover += bytes(data)
            if len(self._leftover) > MAX_EARLY_DATA:
                self.handshake_exc = InvalidHandshake("client sent too much before the response")
                self.state = State.CLOSED
                self._stop_receiving()
                self._leftover = b""
            return b""
        parser = self._parser
        assert parser is not None  # dropped only once the request is parsed
        try:
            request = parser.feed(data)
        except InvalidHandshake as exc:
            self.handshake_exc = exc
            self.send_response(self.reject(exc.status, f"{exc}\n", exc.headers))
            return b""
        if request is None:
            return b""
        self.request = request
        self._leftover = parser.leftover
        self._parser = None
        self._handshake_event(request)
        return b""

    def _handshake_eof(self) -> None:
        if self.handshake_exc is None and self.response is None:
            self.handshake_exc = InvalidHandshake("connection closed during the opening handshake")

    def accept(self, request: Request) -> Response:
        """Check the request and build the 101 response, or a rejection.

        Negotiates the subprotocol and the extensions. A request that breaks RFC 6455
        gets the matching error status (400, 405, 426...) and sets
        :attr:`handshake_exc`.
        """
        try:
            key = check_request(request)
            headers = request.headers
            if self.origins is not None:
                self._check_origin(headers)
            subprotocol = None
            offered = parse_subprotocol_header(headers.get_all("Sec-WebSocket-Protocol"))
            if offered:
                select = self.select_subprotocol
                if select is None:
                    subprotocol = self._default_select(offered)
                elif self._select_takes_request:
                    subprotocol = select(offered, request)
                else:
                    subprotocol = select(offered)
                if subprotocol is not None and subprotocol not in offered:
                    raise NegotiationError(f"selected subprotocol {subprotocol!r} was not offered")
            ext_header, extensions = self._negotiate_extensions(headers)
        except InvalidHandshake as exc:
            self.handshake_exc = exc
            return self.reject(
                exc.status, f"Failed to open a WebSocket connection: {exc}.\n", exc.headers
            )
        self._pending_subprotocol = subprotocol
        self._pending_extensions = extensions
        return build_response(key, subprotocol=subprotocol, extensions_header=ext_header)

    def _check_origin(self, headers: Headers) -> None:
        values = headers.get_all("Origin")
        if len(values) > 1:
            raise InvalidHandshake("more than one Origin header")
        origin = values[0] if values else None
        if self.origins is not None and origin not in self.origins:
            raise InvalidHandshake(
                "no Origin header" if origin is None else f"origin {origin!r} is not allowed",
                403,
            )

    def _negotiate_extensions(self, headers: Headers) -> tuple[str | None, list[Extension]]:
        values = headers.get_all("Sec-WebSocket-Extensions")
        if not values or not self.extension_factories:
            return None, []
        offers = parse_extension_header(values)
        accepted: list[Extension] = []
        answers: list[tuple[str, ExtensionParams]] = []
        for name, params in offers:
            for factory in self.extension_factories:
                if factory.name != name or any(ext.name == name for ext in accepted):
                    continue
                try:
                    response_params, extension = factory.process_request_params(params, accepted)
                except NegotiationError:
                    continue
                accepted.append(extension)
                answers.append((name, response_params))
                break
        if not answers:
            return None, []
        return serialize_extension_header(answers), accepted

    def reject(
        self,
        status: int,
        body: bytes | str = b"",
        headers: Sequence[tuple[str, str]] | None = None,
    ) -> Response:
        """Build an HTTP error response to send instead of upgrading."""
        return reject_response(status, body, list(headers or ()))

    def agree_subprotocol(self, subprotocol: str | None) -> None:
        """Set the subprotocol that the next 101 response opens the connection with.

        For a front end that writes the ``Sec-WebSocket-Protocol`` header of the
        response itself (an ASGI application names it in ``websocket.accept``);
        :meth:`accept` sets it from ``select_subprotocol`` otherwise.

        Args:
            subprotocol: The subprotocol named in the response, or ``None``.
        """
        self._pending_subprotocol = subprotocol

    def send_response(self, response: Response) -> None:
        """Send the handshake response; a 101 opens the connection, anything else ends it."""
        self.response = response
        self._write(response.serialize())
        if response.status_code == 101:
            self.subprotocol = self._pending_subprotocol
            self._set_extensions(self._pending_extensions)
            self._pending_extensions = ()
            # The handshake is over: the request and response stay readable, their
            # lookup indexes go (rebuilt if the application looks headers up).
            if self.request is not None:
                self.request.headers._drop_index()
            response.headers._drop_index()
            self.state = State.OPEN
            leftover, self._leftover = self._leftover, b""
            if leftover:
                self.receive_data(leftover)
        else:
            if self.handshake_exc is None:
                self.handshake_exc = InvalidHandshake(
                    f"connection rejected with HTTP {response.status_code}", response.status_code
                )
            self.state = State.CLOSED
            self._stop_receiving()
