"""Opening a client connection through a proxy, on asyncio.

HTTP CONNECT (``http://`` and ``https://`` proxies) runs on a transport of its own
(:class:`_Tunnel`), which hands over to the WebSocket connection once the tunnel is
open, after TLS to the server for ``wss://`` (TLS inside TLS through an ``https://``
proxy). SOCKS goes through ``python-socks`` (the ``blazews[socks]`` extra), which gives
a connected socket.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable
from typing import Any, cast

from ..exceptions import InvalidProxy
from ..options import ClientOptions
from ..sansio.proxy import HttpConnect, ProxyURL, socks_options, socks_refusal
from ..sansio.uri import WebSocketURI

__all__ = ["open_through_proxy"]


class _Tunnel(asyncio.Protocol):
    """Speaks HTTP CONNECT to the proxy until the tunnel is open."""

    def __init__(self, exchange: HttpConnect, done: asyncio.Future[None]) -> None:
        self.exchange = exchange
        self.done = done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.exchange.request())

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            rest = self.exchange.feed(data)
        except InvalidProxy as exc:
            self.done.set_exception(exc)
            return
        if rest is None:
            return
        if rest:  # a WebSocket server does not speak first
            self.done.set_exception(
                InvalidProxy(f"proxy {self.exchange.proxy} sent bytes after opening the tunnel")
            )
            return
        assert self.transport is not None
        self.transport.pause_reading()
        self.done.set_result(None)

    def eof_received(self) -> bool | None:
        self.connection_lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            try:
                self.exchange.feed_eof()
            except InvalidProxy as refusal:
                self.done.set_exception(refusal)


async def open_through_proxy(
    proxy: ProxyURL,
    uri: WebSocketURI,
    options: ClientOptions,
    ssl: ssl_module.SSLContext | None,
    server_hostname: str,
    factory: Callable[[], Any],
) -> Any:
    """Connect to ``uri`` through ``proxy``; return the WebSocket connection that
    ``factory`` makes, with its transport made (the request is written)."""
    loop = asyncio.get_running_loop()
    if proxy.is_socks:
        sock = await _socks_socket(proxy, uri)
        kwargs: dict[str, Any] = {}
        if ssl is not None:
            kwargs = {"ssl": ssl, "server_hostname": server_hostname}
        _, conn = await loop.create_connection(factory, sock=sock, **kwargs)
        return conn
    done: asyncio.Future[None] = loop.create_future()
    exchange = HttpConnect(proxy, uri, max_line=options.max_line, max_headers=options.max_headers)
    proxy_ssl = None
    if proxy.scheme == "https":
        proxy_ssl = options.proxy_ssl or ssl_module.create_default_context()
    transport, tunnel = await loop.create_connection(
        lambda: _Tunnel(exchange, done), proxy.host, proxy.port, ssl=proxy_ssl
    )
    try:
        await done
        if ssl is not None:
            new = await loop.start_tls(transport, tunnel, ssl, server_hostname=server_hostname)
            if new is None:  # pragma: no cover (only when the loop closes meanwhile)
                raise InvalidProxy(f"TLS through proxy {proxy} failed")
            transport = new
        conn = factory()
        transport.set_protocol(conn)
        conn.connection_made(transport)
        transport.resume_reading()
    except BaseException:
        transport.abort()
        raise
    return conn


async def _socks_socket(proxy: ProxyURL, uri: WebSocketURI) -> Any:
    try:
        from python_socks import ProxyError
        from python_socks.async_.asyncio import Proxy
    except ImportError:
        raise ImportError(
            f"a {proxy.scheme}:// proxy needs python-socks: pip install 'blazews[socks]'"
        ) from None
    url, rdns = socks_options(proxy)
    try:
        return await Proxy.from_url(url, rdns=rdns).connect(uri.host, uri.port, timeout=None)
    except ProxyError as exc:
        raise socks_refusal(proxy, str(exc), exc.error_code) from exc
