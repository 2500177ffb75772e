"""The blocking client: :func:`connect`."""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from ..exceptions import InvalidStatus
from ..options import ClientKeywords, ClientOptions
from ..sansio.client import ClientProtocol
from ..sansio.http11 import Response
from ..sansio.protocol import State
from ..sansio.proxy import proxy_for
from ..sansio.reconnect import Reconnect
from ..sansio.redirect import Redirects
from ..sansio.uri import WebSocketURI, parse_uri
from ._proxy import open_through_proxy
from ._tls import TunnelledTLS
from .connection import SYNC_REFUSED, Connection, _deadline, _remaining

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ClientConnection", "connect", "reconnect"]


class ClientConnection(Connection):
    """The client end of a connection; see :class:`Connection` for its API."""

    protocol: ClientProtocol

    def _handshake(self, deadline: float | None) -> None:
        """Send the opening request and wait for the response.

        Raises:
            InvalidHandshake: The server refused or botched the handshake.
            TimeoutError: The deadline passed.
        """
        protocol = self.protocol
        request = protocol.connect()
        self.request = request
        with self._cond:
            protocol.send_request(request)
            self._absorb()
        self.socket.settimeout(_remaining(deadline))
        with self._cond:
            self._flush_locked()
        if self._write_error is not None:
            raise self._write_error
        event = self._read_handshake(deadline)
        if isinstance(event, Response):
            self.response = event
        exc = protocol.handshake_exc
        if exc is not None:
            raise exc
        if event is None:
            raise protocol.close_exc()


def connect(
    uri: str, *, options: ClientOptions | None = None, **keywords: Unpack[ClientKeywords]
) -> ClientConnection:
    """Open a WebSocket connection: ``conn = connect(url)`` or ``with connect(url) as conn``.

    Args:
        uri: A ``ws://`` or ``wss://`` URL.
        options: A :class:`~blazews.ClientOptions` to start from.
        **keywords: Any option of :class:`~blazews.ClientOptions` (``origin``,
            ``subprotocols``, ``ping_interval``, ``max_message_size``, ...), which
            documents each one and its default; but for ``write_limit`` and
            ``compress_in_thread``, which are the asyncio front end's.

    Returns:
        The open connection; closing it (or leaving its ``with`` block) performs the
        closing handshake.

    Raises:
        InvalidURI: The URL is not a WebSocket URL.
        InvalidHandshake: The server refused or botched the handshake
            (:class:`~blazews.exceptions.InvalidStatus` for a status other than 101).
        TimeoutError: ``open_timeout`` elapsed.
        OSError: The TCP connection failed.
        InvalidProxy: The proxy refused the tunnel, or closed the connection.
        InvalidRedirect: A redirect was refused: a loop, more than ``max_redirects``,
            ``wss://`` to ``ws://``.
        ImportError: A SOCKS proxy without the ``blazews[socks]`` extra.
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
    """
    opts = ClientOptions.of("blazews.sync.connect", options, keywords, SYNC_REFUSED)
    return _connect(uri, opts)


def reconnect(
    uri: str, *, options: ClientOptions | None = None, **keywords: Unpack[ClientKeywords]
) -> Iterator[ClientConnection]:
    """Connections to ``uri``, one after the other: ``for conn in reconnect(url)``.

    Each time the loop's body is done with a connection (it was lost, or the body moved
    on), the iterator closes it if it is still open, waits as the backoff says and
    connects again; failed attempts retry the same way. The rules are those of
    ``async for conn in blazews.connect(url)``: the options ``reconnect_*`` and
    ``process_exception`` of :class:`~blazews.ClientOptions` set what retries and how
    long it waits; what does not retry is raised out of the loop; a normal close
    (1000) the server started ends the loop.

    Args:
        uri, options, **keywords: As for :func:`connect`.

    Raises:
        InvalidURI: The URL is not a WebSocket URL (at the call).
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
        Exception: What does not retry, from the loop.
    """
    opts = ClientOptions.of("blazews.sync.reconnect", options, keywords, SYNC_REFUSED)
    parse_uri(uri)
    return _reconnecting(uri, opts)


def _reconnecting(uri: str, opts: ClientOptions) -> Iterator[ClientConnection]:
    policy = Reconnect.of(opts)
    while True:
        try:
            conn = _connect(uri, opts)
        except Exception as exc:
            time.sleep(policy.failed(exc))
            continue
        policy.opened()
        yield conn
        protocol = conn.protocol
        by_us = protocol.state is State.OPEN or protocol.close_rcvd_then_sent is False
        conn.close()
        delay = policy.closed(protocol.close_exc(), by_us)
        if delay is None:
            return
        time.sleep(delay)


def _connect(uri: str, opts: ClientOptions) -> ClientConnection:
    """Connect, following redirects (unless over a given ``sock`` or ``unix_path``)."""
    parsed = parse_uri(uri)
    ssl = opts.ssl
    if ssl is not None and not parsed.secure:
        raise ValueError("ssl given for a ws:// URL; use wss://")
    if parsed.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    deadline = _deadline(opts.open_timeout)
    redirects = Redirects(uri, opts.max_redirects)
    while True:
        try:
            return _connect_once(parsed, ssl, opts, deadline, redirects.cross_origin)
        except InvalidStatus as exc:
            if opts.sock is not None or opts.unix_path is not None:
                raise
            after = redirects.follow(exc)
            if after is None:
                raise
            parsed = after
            ssl = (opts.ssl or ssl_module.create_default_context()) if parsed.secure else None


def _connect_once(
    parsed: WebSocketURI,
    ssl: ssl_module.SSLContext | None,
    opts: ClientOptions,
    deadline: float | None,
    cross_origin: bool,
) -> ClientConnection:
    sock, unix_path = opts.sock, opts.unix_path
    if sock is None:
        if unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(unix_path)
            except BaseException:
                sock.close()
                raise
        elif (proxy := proxy_for(parsed, opts.proxy)) is not None:
            timeout = _remaining(deadline)
            sock = open_through_proxy(proxy, parsed, opts, timeout)
        else:
            sock = socket.create_connection((parsed.host, parsed.port), _remaining(deadline))
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl is not None:
            sock.settimeout(_remaining(deadline))
            hostname = parsed.host if cross_origin else opts.server_hostname or parsed.host
            if isinstance(sock, ssl_module.SSLSocket):  # through an https:// proxy
                tunnelled = TunnelledTLS(sock, ssl, hostname)
                tunnelled.do_handshake()
                sock = cast(socket.socket, tunnelled)
            else:
                sock = ssl.wrap_socket(sock, server_hostname=hostname)
        protocol_options = opts.protocol_options()
        if cross_origin:  # what the application added was for the first origin
            protocol_options["additional_headers"] = None
        protocol = ClientProtocol(parsed, **protocol_options)
        conn = ClientConnection(sock, protocol, opts)
        conn._handshake(deadline)
    except BaseException:
        try:
            sock.close()
        except OSError:  # pragma: no cover
            pass
        raise
    conn._start()
    return conn
