"""Opening a blocking client's socket through a proxy: HTTP CONNECT, or SOCKS through
``python-socks`` (the ``blazews[socks]`` extra)."""

from __future__ import annotations

import socket
import ssl as ssl_module
import time

from ..exceptions import InvalidProxy
from ..options import ClientOptions
from ..sansio.proxy import HttpConnect, ProxyURL, socks_options, socks_refusal
from ..sansio.uri import WebSocketURI

__all__ = ["open_through_proxy"]


def open_through_proxy(
    proxy: ProxyURL,
    uri: WebSocketURI,
    options: ClientOptions,
    timeout: float | None,
) -> socket.socket:
    """A socket connected to ``uri``'s host through ``proxy`` (TLS to the server, for
    ``wss://``, is the caller's: inside the proxy's TLS for an ``https://`` proxy).

    Raises:
        InvalidProxy: The proxy refused the tunnel or closed the connection.
        ImportError: A SOCKS proxy without ``python-socks``.
    """
    if proxy.is_socks:
        return _socks_socket(proxy, uri, timeout)
    sock: socket.socket = socket.create_connection((proxy.host, proxy.port), timeout)
    try:
        if proxy.scheme == "https":
            context = options.proxy_ssl or ssl_module.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=proxy.host)
        exchange = HttpConnect(
            proxy, uri, max_line=options.max_line, max_headers=options.max_headers
        )
        sock.sendall(exchange.request())
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None:  # the whole answer, not each read, is bounded
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"proxy {proxy} did not answer within open_timeout")
                sock.settimeout(left)
            # A WebSocket server does not speak first: nothing follows the answer.
            data = sock.recv(4096)
            if not data:
                exchange.feed_eof()
            rest = exchange.feed(data)
            if rest is None:
                continue
            if rest:
                raise InvalidProxy(f"proxy {proxy} sent bytes after opening the tunnel")
            return sock
    except BaseException:
        sock.close()
        raise


def _socks_socket(proxy: ProxyURL, uri: WebSocketURI, timeout: float | None) -> socket.socket:
    try:
        from python_socks import ProxyError
        from python_socks.sync import Proxy
    except ImportError:
        raise ImportError(
            f"a {proxy.scheme}:// proxy needs python-socks: pip install 'blazews[socks]'"
        ) from None
    url, rdns = socks_options(proxy)
    try:
        sock: socket.socket = Proxy.from_url(url, rdns=rdns).connect(
            uri.host, uri.port, timeout=timeout
        )
    except ProxyError as exc:
        raise socks_refusal(proxy, str(exc), exc.error_code) from exc
    return sock
