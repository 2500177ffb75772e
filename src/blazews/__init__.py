"""blazews: fast, conformant WebSockets for Python (RFC 6455).

The public API lives here; everything else is an implementation detail.

asyncio::

    import blazews

    async def echo(conn):
        async for message in conn:
            await conn.send(message)

    async with blazews.serve(echo, "127.0.0.1", 8765) as server:
        await server.serve_forever()

Blocking: :mod:`blazews.sync` has the same API without ``await``.
"""

from . import sync
from ._impl import apply_mask, cpu_features, mask_bytes, simd_level, summary, validate_utf8
from ._impl import report as implementation_report
from .asyncio import (
    ClientConnection,
    Connection,
    Listener,
    ListenerConnection,
    Server,
    ServerConnection,
    broadcast,
    connect,
    connect_listener,
    serve,
    serve_listener,
)
from .buffers import DEFAULT_BUFFER_POOL, BufferPool, PoolStats
from .exceptions import (
    BlazeWSError,
    BufferTooSmall,
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HubUnavailable,
    InvalidHandshake,
    InvalidHeader,
    InvalidProxy,
    InvalidRedirect,
    InvalidStatus,
    InvalidURI,
    MessageTooBig,
    NegotiationError,
    ProtocolError,
)
from .hub import Hub, RedisHub
from .options import ClientOptions, ConnectionOptions, ServerOptions
from .sansio.broadcast import BroadcastResult
from .sansio.client import ClientProtocol
from .sansio.door import BasicAuth, Router
from .sansio.extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from .sansio.frames import Close, CloseCode, Frame, MaskLater, MessageType, Opcode
from .sansio.http11 import Headers, Request, Response
from .sansio.protocol import DEFAULT_MAX_MESSAGE_SIZE, Message, Ping, Pong, Protocol, Side, State
from .sansio.server import ServerProtocol

__version__ = "0.1.0"

IMPLEMENTATION = summary()
"""What runs: ``"compiled"`` (the C kernels and every Cython-compiled module),
``"python"`` (pure Python: ``BLAZEWS_NO_EXTENSIONS=1``, or a build without a C
compiler) or ``"partial"`` (some extensions only); :func:`implementation_report` says
which module runs which way."""

__all__ = [
    "DEFAULT_BUFFER_POOL",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "IMPLEMENTATION",
    "BasicAuth",
    "BlazeWSError",
    "BroadcastResult",
    "BufferPool",
    "BufferTooSmall",
    "ClientConnection",
    "ClientExtensionFactory",
    "ClientOptions",
    "ClientProtocol",
    "Close",
    "CloseCode",
    "ConcurrencyError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionOptions",
    "Extension",
    "Frame",
    "Headers",
    "Hub",
    "HubUnavailable",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidProxy",
    "InvalidRedirect",
    "InvalidStatus",
    "InvalidURI",
    "Listener",
    "ListenerConnection",
    "MaskLater",
    "Message",
    "MessageTooBig",
    "MessageType",
    "NegotiationError",
    "Opcode",
    "Ping",
    "Pong",
    "PoolStats",
    "Protocol",
    "ProtocolError",
    "RedisHub",
    "Request",
    "Response",
    "Router",
    "Server",
    "ServerConnection",
    "ServerExtensionFactory",
    "ServerOptions",
    "ServerProtocol",
    "Side",
    "State",
    "apply_mask",
    "broadcast",
    "connect",
    "connect_listener",
    "cpu_features",
    "implementation_report",
    "mask_bytes",
    "serve",
    "serve_listener",
    "simd_level",
    "sync",
    "validate_utf8",
]
