"""Following a server's redirects of the opening handshake, without I/O.

A 301, 302, 303, 307 or 308 answer with a ``Location`` sends the client to another
URL (relative ones are resolved against the current URL; ``http://`` and ``https://``
are read as ``ws://`` and ``wss://``), up to ``max_redirects`` hops (10; with 0, a
redirect is raised as the :class:`~blazews.exceptions.InvalidStatus` it is). Refused, with
:class:`~blazews.exceptions.InvalidRedirect` carrying the chain of URLs: a ``wss://`` to
``ws://`` downgrade, a loop, one hop too many, a redirect without ``Location``. A hop to
another origin (scheme, host or port) drops what the application added to the request
(``additional_headers``, ``Authorization`` among them) for the rest of the chain.
"""

from __future__ import annotations

import urllib.parse

from ..exceptions import InvalidRedirect, InvalidStatus
from .uri import WebSocketURI, parse_uri

__all__ = ["REDIRECT_STATUSES", "Redirects"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_AS_WS = {"http": "ws", "https": "wss"}


class Redirects:
    """The redirects of one connection attempt.

    Args:
        uri: The URL the client was given.
        max_redirects: The most hops followed.

    Attributes:
        chain: The URLs visited, the given one first.
        cross_origin: Whether a hop left the first URL's origin (the application's
            headers are then no longer sent).
    """

    def __init__(self, uri: str, max_redirects: int = 10) -> None:
        self.chain = [uri]
        self.max_redirects = max_redirects
        self.cross_origin = False
        self._first = parse_uri(uri)

    def follow(self, exc: InvalidStatus) -> WebSocketURI | None:
        """Where a refusal of the handshake redirects to, if it is a redirect.

        Returns:
            The next URL, or ``None`` when ``exc`` is no redirect (raise it).

        Raises:
            InvalidRedirect: The redirect is refused (see the module's docstring).
            InvalidURI: The ``Location`` is no WebSocket URL.
        """
        status = exc.status
        if status not in REDIRECT_STATUSES or not self.max_redirects:
            return None
        current = self.chain[-1]
        location = exc.response.headers.get("Location")
        if not location:
            raise InvalidRedirect(f"HTTP {status} redirect without Location", status, self.chain)
        target = urllib.parse.urljoin(_as_http(current), location.strip())
        scheme, rest = target.split(":", 1) if ":" in target else ("", target)
        target = _AS_WS.get(scheme.lower(), scheme) + ":" + rest
        chain = [*self.chain, target]
        if len(self.chain) > self.max_redirects:
            raise InvalidRedirect(
                f"more than {self.max_redirects} redirects: {' -> '.join(chain)}", status, chain
            )
        if target in self.chain:
            raise InvalidRedirect(f"redirect loop: {' -> '.join(chain)}", status, chain)
        uri = parse_uri(target)
        if parse_uri(current).secure and not uri.secure:
            raise InvalidRedirect(
                f"redirect from wss:// to ws:// refused: {' -> '.join(chain)}", status, chain
            )
        first = self._first
        if (uri.secure, uri.host, uri.port) != (first.secure, first.host, first.port):
            self.cross_origin = True
        self.chain = chain
        return uri

    @property
    def url(self) -> str:
        """The URL of the current hop."""
        return self.chain[-1]


def _as_http(uri: str) -> str:
    """``urljoin`` resolves relative references only for schemes it knows."""
    scheme, rest = uri.split(":", 1)
    return {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme) + ":" + rest
