"""The blocking client: :func:`connect`."""

from __future__ import annotations

import socket
import ssl as ssl_module
from typing import TYPE_CHECKING

from ..options import ClientKeywords, ClientOptions
from ..sansio.client import ClientProtocol
from ..sansio.http11 import Response
from ..sansio.uri import parse_uri
from .connection import SYNC_REFUSED, Connection, _deadline, _remaining

if TYPE_CHECKING:
    from typing_extensions import Unpack

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
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
    """
    opts = ClientOptions.of("blazews.sync.connect", options, keywords, SYNC_REFUSED)
    parsed = parse_uri(uri)
    ssl = opts.ssl
    if ssl is not None and not parsed.secure:
        raise ValueError("ssl given for a ws:// URL; use wss://")
    if parsed.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    sock, unix_path = opts.sock, opts.unix_path
    deadline = _deadline(opts.open_timeout)
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
            sock = ssl.wrap_socket(sock, server_hostname=opts.server_hostname or parsed.host)
        protocol = ClientProtocol(parsed, **opts.protocol_options())
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
