"""What every connection tells about itself, whatever its front end.

:class:`ConnectionInfo` is a mixin of the asyncio and blocking connections: the state,
the close code and reason, the subprotocol and the handshake's headers, all read
from the core (``protocol``) and the handshake (``request``, ``response``). A front
end says only whether its transport has closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._logging import ConnectionLog, base_logger

if TYPE_CHECKING:
    from .options import ConnectionOptions
    from .sansio.http11 import Headers, Request, Response
    from .sansio.protocol import Protocol, State

__all__ = ["ConnectionInfo"]


class ConnectionInfo:
    """The read-only facts of a connection (a mixin: no state of its own)."""

    __slots__ = ()

    if TYPE_CHECKING:
        protocol: Protocol
        request: Request | None
        response: Response | None
        options: ConnectionOptions
        id: int

    @property
    def logger(self) -> ConnectionLog:
        """This connection's logger: the ``logger`` option, else ``blazews.client`` or
        ``blazews.server``, its records tagged with the connection's :attr:`id`."""
        return ConnectionLog(base_logger(self.options.logger, self.protocol.side), self.id)

    def _transport_closed(self) -> bool:
        """Whether the TCP connection has closed (the front end knows)."""
        raise NotImplementedError

    @property
    def state(self) -> State:
        """The connection's :class:`~blazews.State`."""
        return self.protocol.state

    @property
    def close_code(self) -> int | None:
        """The close code received (1005 if the frame had none); 1006 once the
        connection closed without a close frame; ``None`` while neither happened.
        Set as soon as the peer's close frame arrives."""
        close = self.protocol.received_close(self._transport_closed())
        return None if close is None else close.code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``""`` once closed without one; ``None`` before."""
        close = self.protocol.received_close(self._transport_closed())
        return None if close is None else close.reason

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return getattr(self.protocol, "subprotocol", None)

    @property
    def request_headers(self) -> Headers | None:
        """The opening request's headers."""
        return None if self.request is None else self.request.headers

    @property
    def response_headers(self) -> Headers | None:
        """The opening response's headers."""
        return None if self.response is None else self.response.headers
