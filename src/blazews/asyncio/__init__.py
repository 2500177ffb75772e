"""The asyncio front end: :func:`connect`, :func:`serve` and :class:`Connection`."""

from .client import ClientConnection, connect
from .connection import Connection
from .server import Server, ServerConnection, serve

__all__ = ["ClientConnection", "Connection", "Server", "ServerConnection", "connect", "serve"]
