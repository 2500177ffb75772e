"""The asyncio client: :func:`connect`."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from ..buffers import _MASK_PIECE
from ..exceptions import InvalidStatus
from ..options import SEND_WAITS, ClientKeywords, ClientOptions
from ..sansio.client import ClientProtocol
from ..sansio.http11 import Response
from ..sansio.protocol import State
from ..sansio.proxy import proxy_for
from ..sansio.reconnect import Reconnect
from ..sansio.redirect import Redirects
from ..sansio.uri import WebSocketURI, parse_uri
from ._proxy import open_through_proxy
from .base import BaseConnection
from .connection import Connection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ClientConnection", "connect"]


class _ClientRole(BaseConnection):
    """The client's part of a connection: the opening handshake. Mixed in before the
    connection class of an API: :class:`ClientConnection` (coroutines) or a Listener
    connection; their concrete classes hold its slots."""

    __slots__ = ()

    protocol: ClientProtocol

    def __init__(self, protocol: ClientProtocol, options: ClientOptions) -> None:
        super().__init__(protocol, options)
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


class ClientConnection(_ClientRole, Connection):
    """The client end of a connection; see :class:`Connection` for its API."""

    __slots__ = ("_handshake_done",)


class connect:  # noqa: N801 (a function to its callers: await it or use async with)
    """Open a WebSocket connection: ``await connect(url)`` or ``async with connect(url)``.

    ``async for conn in connect(url)`` reconnects: it yields a connection, and when the
    loop's body is done with it (the connection was lost, or the body moved on) it
    closes it if it is still open, waits as the backoff says, and yields a new one.
    Failed attempts retry the same way. The options ``reconnect_*`` and
    ``process_exception`` set what retries and how long it waits (see
    :class:`~blazews.ClientOptions` and :mod:`blazews.sansio.reconnect`); what does not
    retry is raised out of the loop. A normal close (1000) that the server started ends
    the loop. Leaving the loop (``break``) leaves the current connection open, to the
    caller.

    Args:
        uri: A ``ws://`` or ``wss://`` URL.
        options: A :class:`~blazews.ClientOptions` to start from.
        **keywords: Any option of :class:`~blazews.ClientOptions` (``origin``,
            ``subprotocols``, ``ping_interval``, ``max_message_size``, ...), which
            documents each one and its default.

    Raises:
        InvalidURI: The URL is not a WebSocket URL.
        InvalidHandshake: The server refused or botched the handshake.
        TimeoutError: ``open_timeout`` elapsed.
        OSError: The TCP connection failed.
        InvalidProxy: The proxy refused the tunnel, or closed the connection.
        InvalidRedirect: A redirect was refused: a loop, more than ``max_redirects``,
            ``wss://`` to ``ws://``.
        ImportError: A SOCKS proxy without the ``blazews[socks]`` extra.
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
    """

    def __init__(
        self,
        uri: str,
        *,
        options: ClientOptions | None = None,
        **keywords: Unpack[ClientKeywords],
    ) -> None:
        self._setup(uri, ClientOptions.of("connect", options, keywords, self._refused))

    # The options this entry point has no use for (see ClientOptions.of).
    _refused: dict[str, str] = SEND_WAITS

    def _setup(self, uri: str, options: ClientOptions) -> None:
        self.url = uri
        self.uri = parse_uri(uri)
        if options.ssl is not None and not self.uri.secure:
            raise ValueError("ssl given for a ws:// URL; use wss://")
        self.options = options
        self.ssl = (
            ssl_module.create_default_context()
            if self.uri.secure and options.ssl is None
            else options.ssl
        )
        self.protocol_options = options.protocol_options()
        self.connection: _ClientRole | None = None

    def _connection(self, protocol: ClientProtocol) -> _ClientRole:
        return ClientConnection(protocol, self.options)

    async def _open(self) -> _ClientRole:
        """Connect, following redirects (unless over a given ``sock`` or ``unix_path``)."""
        options = self.options
        redirects = Redirects(self.url, options.max_redirects)
        uri, ssl = self.uri, self.ssl
        while True:
            try:
                return await self._open_once(uri, ssl, redirects.cross_origin)
            except InvalidStatus as exc:
                if options.sock is not None or options.unix_path is not None:
                    raise
                after = redirects.follow(exc)
                if after is None:
                    raise
                uri = after
                ssl = (options.ssl or ssl_module.create_default_context()) if uri.secure else None

    async def _open_once(
        self, uri: WebSocketURI, ssl: ssl_module.SSLContext | None, cross_origin: bool
    ) -> _ClientRole:
        loop = asyncio.get_running_loop()
        protocol_options = self.protocol_options
        if cross_origin:  # what the application added was for the first origin
            protocol_options = protocol_options | {"additional_headers": None}
        protocol = ClientProtocol(uri, **protocol_options)
        # Serializing first refuses bad headers (CR, LF, NUL) before connecting.
        protocol.send_request(protocol.connect())

        def factory() -> _ClientRole:
            return self._connection(protocol)

        options = self.options
        server_hostname = uri.host if cross_origin else options.server_hostname or uri.host
        kwargs: dict[str, Any] = {}
        if ssl is not None:
            kwargs["ssl"] = ssl
            kwargs["server_hostname"] = server_hostname
        if options.unix_path is not None:
            _, conn = await loop.create_unix_connection(factory, options.unix_path, **kwargs)
        elif options.sock is not None:
            _, conn = await loop.create_connection(factory, sock=options.sock, **kwargs)
        elif (proxy := proxy_for(uri, options.proxy)) is not None:
            conn = await open_through_proxy(proxy, uri, options, ssl, server_hostname, factory)
        else:
            _, conn = await loop.create_connection(factory, uri.host, uri.port, **kwargs)
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

    async def _create(self) -> _ClientRole:
        if self.options.open_timeout is None:
            conn = await self._open()
        else:
            try:
                conn = await asyncio.wait_for(self._open(), self.options.open_timeout)
            except asyncio.TimeoutError as exc:  # not TimeoutError before Python 3.11
                raise TimeoutError("open_timeout elapsed") from exc
        self.connection = conn
        return conn

    async def _reconnecting(self, *, wait: bool = False) -> AsyncIterator[_ClientRole]:
        """Connections, one after the other (see the class's docstring).

        Args:
            wait: Wait for each connection to close before the next (a Listener's),
                instead of closing it when the loop's body is done.
        """
        policy = Reconnect.of(self.options)
        while True:
            try:
                conn = await self._create()
            except Exception as exc:
                await asyncio.sleep(policy.failed(exc))
                continue
            policy.opened()
            yield conn
            if wait:
                await conn.wait_closed()
            protocol = conn.protocol
            by_us = protocol.state is State.OPEN or protocol.close_rcvd_then_sent is False
            await conn.close()
            delay = policy.closed(protocol.close_exc(), by_us)
            if delay is None:
                return
            await asyncio.sleep(delay)

    def __aiter__(self) -> AsyncIterator[ClientConnection]:
        return cast(AsyncIterator[ClientConnection], self._reconnecting())

    async def _create_client(self) -> ClientConnection:
        return cast(ClientConnection, await self._create())

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._create_client().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._create_client()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.connection is not None:
            await self.connection.close()
