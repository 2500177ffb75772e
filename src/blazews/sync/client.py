"""The blocking client: :func:`connect`."""

from __future__ import annotations

import socket
import ssl as ssl_module
from collections.abc import Iterable, Sequence

from ..sansio.client import ClientProtocol
from ..sansio.extensions import ClientExtensionFactory, with_compression
from ..sansio.http11 import Headers, Response
from ..sansio.protocol import DEFAULT_MAX_MESSAGE_SIZE
from ..sansio.uri import parse_uri
from .connection import Connection, _deadline, _remaining

__all__ = ["ClientConnection", "connect"]


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
    uri: str,
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] | None = None,
    extensions: Sequence[ClientExtensionFactory] = (),
    compression: str | None = "deflate",
    additional_headers: Iterable[tuple[str, str]] | Headers | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    sock: socket.socket | None = None,
    unix_path: str | None = None,
    open_timeout: float | None = 10.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    close_timeout: float | None = 10.0,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    max_queue: int = 16,
) -> ClientConnection:
    """Open a WebSocket connection: ``conn = connect(url)`` or ``with connect(url) as conn``.

    Args:
        uri: A ``ws://`` or ``wss://`` URL.
        origin: An ``Origin`` header to send.
        subprotocols: Subprotocols to offer, in order of preference.
        extensions: Extension factories to offer.
        compression: ``"deflate"`` (the default) also offers permessage-deflate with
            its default policy, unless ``extensions`` has such a factory; ``None``:
            no compression.
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
        max_queue: Received messages buffered before the reader thread pauses.

    Returns:
        The open connection; closing it (or leaving its ``with`` block) performs the
        closing handshake.

    Raises:
        InvalidURI: The URL is not a WebSocket URL.
        InvalidHandshake: The server refused or botched the handshake
            (:class:`~blazews.exceptions.InvalidStatus` for a status other than 101).
        TimeoutError: ``open_timeout`` elapsed.
        OSError: The TCP connection failed.
    """
    parsed = parse_uri(uri)
    extensions = with_compression(compression, extensions, client=True)
    if ssl is not None and not parsed.secure:
        raise ValueError("ssl given for a ws:// URL; use wss://")
    if parsed.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    deadline = _deadline(open_timeout)
    if sock is None:
        if unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((parsed.host, parsed.port), _remaining(deadline))
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl is not None:
            sock.settimeout(_remaining(deadline))
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname or parsed.host)
        protocol = ClientProtocol(
            parsed,
            origin=origin,
            subprotocols=subprotocols,
            extensions=extensions,
            additional_headers=additional_headers,
            max_message_size=max_message_size,
        )
        conn = ClientConnection(
            sock,
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
        )
        conn._handshake(deadline)
    except BaseException:
        try:
            sock.close()
        except OSError:  # pragma: no cover
            pass
        raise
    conn._start()
    return conn
