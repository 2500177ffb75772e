"""The asyncio front end: :func:`connect`, :func:`serve` and :class:`Connection`; the
callback fast path :class:`Listener`, :func:`serve_listener`, :func:`connect_listener`."""

from .broadcast import broadcast
from .client import ClientConnection, connect
from .connection import Connection
from .listener import Listener, ListenerConnection, connect_listener, serve_listener
from .server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Listener",
    "ListenerConnection",
    "Server",
    "ServerConnection",
    "broadcast",
    "connect",
    "connect_listener",
    "serve",
    "serve_listener",
]
