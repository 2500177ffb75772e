"""The exceptions of blazews: one tree under :class:`BlazeWSError`.

.. code-block:: text

    BlazeWSError
    ├── ConnectionClosed            the connection is closed; carries both close frames
    │   ├── ConnectionClosedOK      ... with 1000, 1001 or 1005 (no code) both ways
    │   └── ConnectionClosedError   ... with anything else (its __cause__ says why)
    ├── ProtocolError               a frame or message broke RFC 6455; carries close_code
    │   └── MessageTooBig           ... the message exceeded max_message_size (1009)
    ├── InvalidHandshake            the opening handshake failed; carries an HTTP status
    │   ├── InvalidStatus           the server answered with something other than 101
    │   ├── InvalidHeader           a header is missing, duplicated or malformed
    │   ├── InvalidRedirect         a redirect refused (loop, too many, wss -> ws); the chain
    │   └── NegotiationError        a subprotocol or extension could not be agreed
    ├── InvalidProxy                a proxy refused the tunnel or closed; carries status
    ├── InvalidURI                  the URL is not a ws:// or wss:// URL
    ├── BufferTooSmall              read_message_into got a buffer too small; carries needed
    ├── ConcurrencyError            two coroutines or threads read (or wrote) at once
    └── HubUnavailable              a hub's backend (Redis) cannot be reached

A peer's protocol error never raises out of the sans-I/O core's ``receive_data``:
the core records it, fails the connection with the close code it carries, and the
front end raises :class:`ConnectionClosedError` from it (``raise ... from error``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sansio.frames import Close
    from .sansio.http11 import Response

__all__ = [
    "BlazeWSError",
    "BufferTooSmall",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HubUnavailable",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidProxy",
    "InvalidRedirect",
    "InvalidStatus",
    "InvalidURI",
    "MessageTooBig",
    "NegotiationError",
    "ProtocolError",
]


class BlazeWSError(Exception):
    """Root of every exception blazews raises on purpose."""


class ConnectionClosed(BlazeWSError):
    """Raised when using a connection that is closed or closing.

    Attributes:
        rcvd: The close frame received from the peer, or ``None`` if none arrived.
        sent: The close frame sent to the peer, or ``None`` if none was sent.
        rcvd_then_sent: ``True`` if the peer closed first, ``False`` if we did,
            ``None`` if the handshake did not complete.
    """

    def __init__(
        self,
        rcvd: Close | None,
        sent: Close | None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if self.rcvd is None:
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"

    @property
    def code(self) -> int:
        """The close code received, 1005 if the frame had none, 1006 if no frame came."""
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """The close reason received, ``""`` if none."""
        return "" if self.rcvd is None else self.rcvd.reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000, 1001 or an empty close frame, both ways)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error, or without a complete close handshake.

    When blazews itself failed the connection because the peer broke the protocol,
    ``__cause__`` is the :class:`ProtocolError` that says what happened.
    """


OK_CLOSE_CODES = (1000, 1001, 1005)
"""Close codes of a normal closure (an empty close frame, 1005, is one too): what
:class:`ConnectionClosedOK` is raised for."""


def _closed(
    rcvd: Close | None,
    sent: Close | None,
    rcvd_then_sent: bool | None,
    cause: BaseException | None,
) -> ConnectionClosed:
    """The exception for a connection closed with these close frames: OK when both
    went and both are of a normal closure, else an error, caused by ``cause`` (the
    protocol error that failed the connection) if any."""
    ok = (
        rcvd is not None
        and sent is not None
        and rcvd.code in OK_CLOSE_CODES
        and sent.code in OK_CLOSE_CODES
    )
    exc = (ConnectionClosedOK if ok else ConnectionClosedError)(rcvd, sent, rcvd_then_sent)
    if cause is not None:
        exc.__cause__ = cause
    return exc


class ProtocolError(BlazeWSError):
    """The peer (or the caller) broke RFC 6455.

    Attributes:
        close_code: The close code the connection was (or will be) failed with:
            1002 protocol error, 1007 invalid payload data, 1009 message too big,
            1011 internal error.
    """

    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


class MessageTooBig(ProtocolError):
    """A message exceeded ``max_message_size`` or the fragment budget (close code 1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


class InvalidHandshake(BlazeWSError):
    """The opening handshake failed.

    Attributes:
        status: The HTTP status a server answers with (400, 403, 405, 414, 426, 431...).
        headers: Extra response headers the server adds (e.g. ``Sec-WebSocket-Version``).
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class InvalidStatus(InvalidHandshake):
    """The server answered the opening handshake with a status other than 101.

    Attributes:
        response: The server's response, body included.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(
            f"server rejected WebSocket connection: HTTP {response.status_code}",
            response.status_code,
        )
        self.response = response


class InvalidHeader(InvalidHandshake):
    """A handshake header is missing, repeated or malformed.

    Attributes:
        name: The header's name.
    """

    def __init__(
        self,
        name: str,
        message: str,
        status: int = 400,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, status, headers)
        self.name = name


class InvalidRedirect(InvalidHandshake):
    """The client refused to follow a redirect of the opening handshake: a loop, more
    than ``max_redirects`` hops, a ``wss://`` to ``ws://`` downgrade, no ``Location``.

    Attributes:
        chain: The URLs of the redirects, the one given first, the refused one last.
    """

    def __init__(self, message: str, status: int, chain: list[str]) -> None:
        super().__init__(message, status)
        self.chain = chain


class NegotiationError(InvalidHandshake):
    """A subprotocol or an extension could not be negotiated."""


class InvalidProxy(BlazeWSError):
    """A proxy refused to open the tunnel, botched its answer, or closed the connection.

    Attributes:
        status: The proxy's HTTP status (407 authentication required, 403 forbidden,
            502 bad gateway...), or ``None`` when it gave none (it closed, or a SOCKS
            proxy refused).
        response: The proxy's HTTP answer, when it gave one.
        transient: Whether trying again later may succeed: a 5xx or 429, a proxy that
            closed, a SOCKS proxy that could not reach the server (general failure,
            unreachable, refused, TTL expired); not a refusal of the client (407,
            403, failed SOCKS authentication, a ruleset). Reconnecting retries those.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        response: Response | None = None,
        *,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.response = response
        if transient is None:
            transient = status is None or status >= 500 or status == 429
        self.transient = transient


class InvalidURI(BlazeWSError):
    """The URL is not a valid ``ws://`` or ``wss://`` URL."""


class BufferTooSmall(BlazeWSError):
    """``read_message_into`` got a buffer smaller than the next message.

    The message stays queued: call again with a buffer of at least ``needed`` bytes.

    Attributes:
        needed: The size of the message, in bytes.
    """

    def __init__(self, needed: int, size: int) -> None:
        super().__init__(f"buffer of {size} bytes too small: message needs {needed} bytes")
        self.needed = needed


class ConcurrencyError(BlazeWSError, RuntimeError):
    """Two coroutines or threads called a read (or a write) method at the same time."""


class HubUnavailable(BlazeWSError):
    """A :class:`~blazews.RedisHub` could not reach its Redis server.

    Raised by ``publish`` after the message was delivered to this process's own
    subscribers: only the other processes missed it. The hub reconnects on its own,
    with backoff.
    """
