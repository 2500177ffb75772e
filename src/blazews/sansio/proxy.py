"""Proxies, without I/O: which proxy a URL goes through, and HTTP CONNECT.

A client's ``proxy`` option is a URL (``http://``, ``https://``, ``socks5://``,
``socks5h://``, ``socks4://``, ``socks4a://``), ``None`` for a direct connection, or
:data:`ENVIRONMENT` (the default): the proxy that ``urllib`` would use, from
``HTTPS_PROXY`` (``wss://``) or ``HTTP_PROXY`` (``ws://``), else ``ALL_PROXY``, in
either case, unless ``NO_PROXY`` lists the host.

An HTTP proxy is asked for a tunnel with ``CONNECT host:port``, with Basic
credentials when its URL has a user name; its answer is parsed with the handshake's
parser and limits (``max_line``, ``max_headers``), and anything but a 2xx refuses the
tunnel (:class:`~blazews.exceptions.InvalidProxy`, carrying the status). The front
ends do the I/O: they write :meth:`HttpConnect.request`, feed what they read to
:meth:`HttpConnect.feed` until it returns, and then speak TLS (``wss://``) and
WebSocket inside the tunnel.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..exceptions import InvalidHandshake, InvalidProxy
from .http11 import ResponseParser
from .uri import WebSocketURI

__all__ = [
    "ENVIRONMENT",
    "HttpConnect",
    "ProxyURL",
    "bypassed",
    "environment_proxies",
    "parse_proxy",
    "proxy_for",
    "socks_options",
    "socks_refusal",
]

ENVIRONMENT: Final = "environment"
"""The ``proxy`` option's default: read the proxy from the environment."""

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "socks5": 1080,
    "socks5h": 1080,
    "socks4": 1080,
    "socks4a": 1080,
}


@dataclass(frozen=True)
class ProxyURL:
    """A parsed proxy URL.

    Attributes:
        scheme: ``http``, ``https``, ``socks5``, ``socks5h``, ``socks4`` or ``socks4a``.
        host: The proxy's host name or address.
        port: Its port (80, 443 or 1080 by default).
        username: The user name, percent-decoded, or ``None``.
        password: The password, percent-decoded, or ``None``.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS proxy."""
        return self.scheme.startswith("socks")

    def __str__(self) -> str:  # no credentials: it goes into messages and logs
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_proxy(url: str) -> ProxyURL:
    """Parse and check a proxy URL.

    Raises:
        ValueError: The scheme is not one of the supported ones, the host is missing,
            or the port is invalid.
    """
    if "://" not in url:
        url = "http://" + url  # as urllib and curl read HTTP_PROXY=host:port
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unsupported proxy scheme {scheme!r} in {_hide(url)!r}")
    if not parsed.hostname:
        raise ValueError(f"proxy URL {_hide(url)!r} has no host")
    try:
        port = parsed.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"proxy URL {_hide(url)!r} has an invalid port") from exc
    user = None if parsed.username is None else urllib.parse.unquote(parsed.username)
    password = None if parsed.password is None else urllib.parse.unquote(parsed.password)
    return ProxyURL(scheme, parsed.hostname, port, user, password)


def _hide(url: str) -> str:
    """A URL without its password."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f"{parsed.username}:***@{netloc}"))


def proxy_for(uri: WebSocketURI, proxy: str | None) -> ProxyURL | None:
    """The proxy to reach ``uri`` through, if any.

    Args:
        uri: Where the client connects.
        proxy: The ``proxy`` option: a URL, ``None``, or :data:`ENVIRONMENT`.
    """
    if proxy is None:
        return None
    if proxy != ENVIRONMENT:
        return parse_proxy(proxy)
    proxies = environment_proxies(os.environ)
    url = proxies.get("https" if uri.secure else "http") or proxies.get("all")
    if not url or bypassed(uri.host, uri.port, proxies.get("no", "")):
        return None
    return parse_proxy(url)


def environment_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``*_proxy`` variables by scheme (``{"https": url, "no": "..."}``), as
    ``urllib.request.getproxies_environment`` reads them (which this module cannot
    import: ``urllib.request`` imports ``socket``): a lowercase name wins over its
    uppercase one, an empty value unsets it, and ``HTTP_PROXY`` is ignored in a CGI
    script (``REQUEST_METHOD`` set: a client's ``Proxy:`` header would set it)."""
    proxies: dict[str, str] = {}
    for lowercase in (False, True):
        for name, value in environ.items():
            if len(name) > 6 and name[-6:].lower() == "_proxy" and name.islower() == lowercase:
                scheme = name[:-6].lower()
                if value:
                    proxies[scheme] = value
                else:
                    proxies.pop(scheme, None)
    if "REQUEST_METHOD" in environ and environ.get("http_proxy") != proxies.get("http"):
        proxies.pop("http", None)
    return proxies


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` lists the host: ``*``, the host itself (with or without
    the port), or a domain it is in (``example.com`` and ``.example.com`` both match
    ``www.example.com``)."""
    if no_proxy.strip() == "*":
        return True
    host = host.lower()
    with_port = f"{host}:{port}"
    for entry in no_proxy.split(","):
        name = entry.strip().lstrip(".").lower()
        if not name:
            continue
        if name in (host, with_port) or host.endswith("." + name) or with_port.endswith("." + name):
            return True
    return False


def socks_options(proxy: ProxyURL) -> tuple[str, bool]:
    """The URL and the ``rdns`` flag that ``python-socks`` takes for a SOCKS proxy:
    ``socks5h://`` and ``socks4a://`` have the proxy resolve the host name."""
    scheme = {"socks5h": "socks5", "socks4a": "socks4"}.get(proxy.scheme, proxy.scheme)
    auth = ""
    if proxy.username is not None:
        auth = urllib.parse.quote(proxy.username, safe="")
        if proxy.password is not None:
            auth += ":" + urllib.parse.quote(proxy.password, safe="")
        auth += "@"
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"{scheme}://{auth}{host}:{proxy.port}", proxy.scheme in ("socks5h", "socks4a")


SOCKS_TRANSIENT = frozenset({1, 3, 4, 5, 6})
"""SOCKS5 replies that may change with time: general failure, network or host
unreachable, connection refused, TTL expired (not: a ruleset's refusal, an
unsupported command or address type, failed authentication)."""


def socks_refusal(proxy: ProxyURL, message: str, reply: int | None) -> InvalidProxy:
    """The exception for a SOCKS proxy's refusal, ``reply`` its SOCKS5 reply code."""
    transient = proxy.scheme.startswith("socks5") and reply in SOCKS_TRANSIENT
    return InvalidProxy(f"proxy {proxy} refused the connection: {message}", transient=transient)


class HttpConnect:
    """The HTTP CONNECT exchange that opens a tunnel through an HTTP proxy.

    Args:
        proxy: The proxy.
        uri: Where the tunnel goes.
        max_line: Longest status or header line accepted in the proxy's answer.
        max_headers: Most headers accepted in it.
    """

    def __init__(
        self, proxy: ProxyURL, uri: WebSocketURI, *, max_line: int = 8192, max_headers: int = 128
    ) -> None:
        self.proxy = proxy
        self.uri = uri
        self._parser = ResponseParser(
            max_line=max_line, max_headers=max_headers, max_body=16384, tunnel=True
        )

    def request(self) -> bytes:
        """The CONNECT request to send."""
        host = f"[{self.uri.host}]" if ":" in self.uri.host else self.uri.host
        target = f"{host}:{self.uri.port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self.proxy.username is not None:
            pair = f"{self.proxy.username}:{self.proxy.password or ''}".encode()
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def feed(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """Add bytes read from the proxy.

        Returns:
            ``None`` while the answer is incomplete; once the tunnel is open, the bytes
            that followed the answer (the server's first bytes, usually none).

        Raises:
            InvalidProxy: The proxy refused the tunnel (``status``) or botched its answer.
        """
        try:
            response = self._parser.feed(data)
        except InvalidHandshake as exc:
            raise InvalidProxy(f"invalid answer from proxy {self.proxy}: {exc}") from exc
        if response is None:
            return None
        if not 200 <= response.status_code < 300:
            raise InvalidProxy(
                f"proxy {self.proxy} refused the tunnel: HTTP {response.status_code}",
                response.status_code,
                response,
            )
        return self._parser.leftover

    def feed_eof(self) -> None:
        """The proxy closed the connection before opening the tunnel.

        Raises:
            InvalidProxy: Always; with the proxy's status if its answer's head came.
        """
        try:
            response = self._parser.feed_eof()
        except InvalidHandshake:
            raise InvalidProxy(f"proxy {self.proxy} closed the connection") from None
        raise InvalidProxy(
            f"proxy {self.proxy} refused the tunnel: HTTP {response.status_code}",
            response.status_code,
            response,
        )
