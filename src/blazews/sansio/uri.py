"""WebSocket URIs (RFC 6455 §3): ``ws://`` and ``wss://``."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from ..exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed WebSocket URI.

    Attributes:
        secure: ``True`` for ``wss://``.
        host: The host name or address (IPv6 without brackets).
        port: The port, defaulted to 80 or 443.
        resource_name: The path and query sent in the request line.
    """

    secure: bool
    host: str
    port: int
    resource_name: str

    @property
    def host_header(self) -> str:
        """The value of the ``Host`` header: the port only when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == (443 if self.secure else 80):
            return host
        return f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and check a ``ws://`` or ``wss://`` URI.

    Raises:
        InvalidURI: The scheme is not ws/wss, the host is missing, the URI has a
            fragment, or the port is not a number.
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(f"{uri!r} is not a ws:// or wss:// URI")
    if parsed.fragment:
        raise InvalidURI(f"{uri!r} has a fragment, which WebSocket URIs may not have")
    if not parsed.hostname:
        raise InvalidURI(f"{uri!r} has no host")
    secure = parsed.scheme == "wss"
    try:
        port = parsed.port or (443 if secure else 80)
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} has an invalid port") from exc
    resource = parsed.path or "/"
    if parsed.query:
        resource += "?" + parsed.query
    for ch in resource:
        if ch in " \r\n\x00":
            raise InvalidURI(f"{uri!r} has whitespace or control characters in its path")
    return WebSocketURI(secure, parsed.hostname, port, resource)
