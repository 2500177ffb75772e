"""The client side of the protocol: the opening handshake, then frames.

The front end calls :meth:`ClientProtocol.connect` for the request, sends it with
:meth:`ClientProtocol.send_request`, then feeds bytes. The response appears as a
:class:`~blazews.sansio.http11.Response` event; :attr:`ClientProtocol.handshake_exc`
says whether it was accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..exceptions import InvalidHandshake, NegotiationError
from .extensions import ClientExtensionFactory, Extension
from .handshake import (
    build_request,
    check_response,
    generate_key,
    parse_extension_header,
    parse_subprotocol_header,
    serialize_extension_header,
)
from .http11 import Headers, Request, Response, ResponseParser
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, Protocol, Side, State
from .uri import WebSocketURI

__all__ = ["ClientProtocol"]


class ClientProtocol(Protocol):
    """The sans-I/O client: handshake and frames.

    Args:
        uri: Where to connect.
        origin: An ``Origin`` header to send, if any.
        subprotocols: Subprotocols to offer, in order of preference.
        extensions: Factories of the extensions to offer, in order of preference.
        additional_headers: Extra request headers.
        max_message_size: Largest received message (see :class:`Protocol`).
        max_line: Longest status or header line accepted in the response.
        max_headers: Most response headers accepted.
    """

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        extensions: Sequence[ClientExtensionFactory] = (),
        additional_headers: Iterable[tuple[str, str]] | Headers | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_line: int = 8192,
        max_headers: int = 128,
    ) -> None:
        super().__init__(Side.CLIENT, state=State.CONNECTING, max_message_size=max_message_size)
        self.uri = uri
        self.origin = origin
        self.offered_subprotocols = list(subprotocols or ())
        self.extension_factories = list(extensions)
        self.additional_headers = additional_headers
        self.key = generate_key()
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: str | None = None
        self.handshake_exc: InvalidHandshake | None = None
        self._parser = ResponseParser(max_line=max_line, max_headers=max_headers)

    def connect(self) -> Request:
        """Build the opening handshake request."""
        ext_header = None
        if self.extension_factories:
            ext_header = serialize_extension_header(
                [(f.name, f.get_request_params()) for f in self.extension_factories]
            )
        return build_request(
            self.uri.host_header,
            self.uri.resource_name,
            self.key,
            subprotocols=self.offered_subprotocols or None,
            extensions_header=ext_header,
            extra_headers=self.additional_headers,
            origin=self.origin,
        )

    def send_request(self, request: Request) -> None:
        """Queue the handshake request for sending."""
        self.request = request
        self._write(request.serialize())

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        try:
            response = self._parser.feed(data)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return b""
        if response is None:
            return b""
        return self._process_response(response)

    def _handshake_eof(self) -> None:
        if self.handshake_exc is not None or self.response is not None:
            return
        try:
            response = self._parser.feed_eof()
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self._process_response(response)

    def _process_response(self, response: Response) -> bytes:
        self.response = response
        try:
            check_response(response, self.key)
            subprotocol = self._check_subprotocol(response.headers)
            extensions = self._check_extensions(response.headers)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            self._handshake_event(response)
            return b""
        self.subprotocol = subprotocol
        self._set_extensions(extensions)
        self.state = State.OPEN
        self._handshake_event(response)
        return self._parser.leftover

    def _handshake_failed(self, exc: InvalidHandshake) -> None:
        self.handshake_exc = exc
        self.state = State.CLOSED
        self._stop_receiving()

    def _check_subprotocol(self, headers: Headers) -> str | None:
        values = parse_subprotocol_header(headers.get_all("Sec-WebSocket-Protocol"))
        if not values:
            return None
        if len(values) > 1:
            raise NegotiationError(f"server selected several subprotocols: {', '.join(values)}")
        if values[0] not in self.offered_subprotocols:
            raise NegotiationError(
                f"server selected subprotocol {values[0]!r}, which was not offered"
            )
        return values[0]

    def _check_extensions(self, headers: Headers) -> list[Extension]:
        values = headers.get_all("Sec-WebSocket-Extensions")
        if not values:
            return []
        accepted: list[Extension] = []
        for name, params in parse_extension_header(values):
            refusal: NegotiationError | None = None
            for factory in self.extension_factories:
                if factory.name != name:
                    continue
                try:
                    extension = factory.process_response_params(params, accepted)
                except NegotiationError as exc:
                    refusal = exc
                    continue
                accepted.append(extension)
                break
            else:
                if refusal is not None:
                    raise NegotiationError(
                        f"server answered extension {name!r} with parameters not offered: {refusal}"
                    ) from refusal
                raise NegotiationError(f"server accepted extension {name!r}, which was not offered")
        return accepted
