"""The asyncio client: :func:`connect`."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

from ..buffers import _MASK_PIECE
from ..sansio.client import ClientProtocol
from ..sansio.extensions import ClientExtensionFactory, with_compression
from ..sansio.http11 import Headers, Response
from ..sansio.protocol import DEFAULT_MAX_MESSAGE_SIZE
from ..sansio.uri import parse_uri
from .connection import COMPRESS_IN_THREAD, Connection

__all__ = ["ClientConnection", "connect"]


class ClientConnection(Connection):
    """The client end of a connection; see :class:`Connection` for its API."""

    __slots__ = ("_handshake_done",)

    protocol: ClientProtocol

    def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        protocol.mask_later = _MASK_PIECE + 1  # large payloads: see ._send
        self._handshake_done: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.request = self.protocol.request
        self._process()  # writes the request, queued before connecting

    def _other_event(self, event: Any) -> None:
        if isinstance(event, Response):
            self.response = event
            if not self._handshake_done.done():
                self._handshake_done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._handshake_done.done():
            self._handshake_done.set_result(None)


class connect:
    """Open a WebSocket connection: ``await connect(url)`` or ``async with connect(url)``.

    Args:
        uri: A ``ws://`` or ``wss://`` URL.
        origin: An ``Origin`` header to send.
        subprotocols: Subprotocols to offer, in order of preference.
        extensions: Extension factories to offer.
        compression: ``"deflate"`` (the default) also offers permessage-deflate with the
            default policy of :mod:`blazews.sansio.extensions.permessage_deflate`,
            unless ``extensions`` has a permessage-deflate factory; ``None``: no
            compression.
        additional_headers: Extra request headers (values may not contain CR, LF or NUL).
        ssl: An :class:`ssl.SSLContext` for ``wss://`` (a default context when omitted).
        server_hostname: Host name for TLS verification, if not the URL's.
        sock: An already connected socket to use instead of opening one.
        unix_path: Connect to this Unix socket path instead of the URL's host.
        open_timeout: Seconds allowed for TCP connect, TLS and the handshake, or ``None``.
        ping_interval: Seconds between keepalive pings, or ``None`` for none.
        ping_timeout: Seconds a keepalive ping may wait for its pong before the
            connection fails with 1011, or ``None``.
        close_timeout: Seconds the closing handshake may take before the connection
            is dropped, or ``None``.
        max_message_size: Largest received message in bytes (1009 beyond), or ``None``.
        max_queue: Received messages buffered before reading pauses.
        write_limit: High-water mark of the write buffer, or ``(high, low)``.
        compress_in_thread: With permessage-deflate, messages of at least this many
            bytes are compressed in the loop's default executor instead of on the
            loop (128 KiB by default); ``None``: always on the loop.

    Raises:
        InvalidURI: The URL is not a WebSocket URL.
        InvalidHandshake: The server refused or botched the handshake.
        TimeoutError: ``open_timeout`` elapsed.
        OSError: The TCP connection failed.
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        extensions: Sequence[ClientExtensionFactory] = (),
        compression: str | None = "deflate",
        additional_headers: Iterable[tuple[str, str]] | Headers | None = None,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        sock: Any = None,
        unix_path: str | None = None,
        open_timeout: float | None = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float | None = 10.0,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_queue: int = 16,
        write_limit: int | tuple[int, int | None] = 65536,
        compress_in_thread: int | None = COMPRESS_IN_THREAD,
    ) -> None:
        self.uri = parse_uri(uri)
        extensions = with_compression(compression, extensions, client=True)
        if ssl is not None and not self.uri.secure:
            raise ValueError("ssl given for a ws:// URL; use wss://")
        self.ssl = ssl_module.create_default_context() if self.uri.secure and ssl is None else ssl
        self.server_hostname = server_hostname
        self.sock = sock
        self.unix_path = unix_path
        self.open_timeout = open_timeout
        self.protocol_options: dict[str, Any] = dict(
            origin=origin,
            subprotocols=subprotocols,
            extensions=extensions,
            additional_headers=additional_headers,
            max_message_size=max_message_size,
        )
        self.connection_options: dict[str, Any] = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
            compress_in_thread=compress_in_thread,
        )
        self.connection: ClientConnection | None = None

    def _connection(self, protocol: ClientProtocol) -> ClientConnection:
        return ClientConnection(protocol, **self.connection_options)

    async def _open(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        protocol = ClientProtocol(self.uri, **self.protocol_options)
        # Serializing first refuses bad headers (CR, LF, NUL) before connecting.
        protocol.send_request(protocol.connect())

        def factory() -> ClientConnection:
            return self._connection(protocol)

        kwargs: dict[str, Any] = {}
        if self.ssl is not None:
            kwargs["ssl"] = self.ssl
            kwargs["server_hostname"] = self.server_hostname or (
                None if self.sock is not None or self.unix_path is not None else self.uri.host
            )
            if kwargs["server_hostname"] is None:
                kwargs["server_hostname"] = self.uri.host
        if self.unix_path is not None:
            _, conn = await loop.create_unix_connection(factory, self.unix_path, **kwargs)
        elif self.sock is not None:
            _, conn = await loop.create_connection(factory, sock=self.sock, **kwargs)
        else:
            _, conn = await loop.create_connection(factory, self.uri.host, self.uri.port, **kwargs)
        try:
            await conn._handshake_done
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        exc = conn.protocol.handshake_exc
        if exc is not None or conn.response is None:
            if conn.transport is not None:
                conn.transport.close()
            if exc is None:
                raise conn.protocol.close_exc()
            raise exc
        conn._start_keepalive()
        return conn

    async def _create(self) -> ClientConnection:
        if self.open_timeout is None:
            conn = await self._open()
        else:
            conn = await asyncio.wait_for(self._open(), self.open_timeout)
        self.connection = conn
        return conn

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._create().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._create()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.connection is not None:
            await self.connection.close()
