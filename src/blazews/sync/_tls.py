"""TLS inside TLS for the blocking client: ``wss://`` through an ``https://`` proxy.

An :class:`ssl.SSLSocket` cannot wrap another, so the server's TLS runs on an
:class:`ssl.SSLObject` over memory buffers, whose records travel on the TLS
connection to the proxy. :class:`TunnelledTLS` offers the few socket methods a
blocking connection uses; a lock keeps the TLS object to one thread at a time (the
reader thread reads while others send), another keeps the records sent in order.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

__all__ = ["TunnelledTLS"]

_READ = 65536


class TunnelledTLS:
    """A TLS connection to the server carried by ``outer``, the proxy's TLS socket.

    Args:
        outer: The TLS socket to the proxy, its tunnel open.
        context: The TLS context for the server.
        server_hostname: The server's name, to check its certificate against.
    """

    def __init__(self, outer: ssl.SSLSocket, context: ssl.SSLContext, server_hostname: str) -> None:
        self._outer = outer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._tls_lock = threading.Lock()  # every call into the TLS object
        self._send_lock = threading.Lock()  # a write and the sending of its records

    def do_handshake(self) -> None:
        """Run the TLS handshake with the server (blocking, within the timeout)."""
        while True:
            try:
                with self._tls_lock:
                    self._tls.do_handshake()
                self._send_pending()
                return
            except ssl.SSLWantReadError:
                self._send_pending()
                if not self._fill():
                    raise ConnectionResetError("proxy closed the tunnel during TLS") from None

    def _fill(self) -> bool:
        """Read from the proxy into the TLS object; ``False`` at its end."""
        data = self._outer.recv(_READ)
        with self._tls_lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()
        return bool(data)

    def _send_pending(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                out = self._outgoing.read()
            if out:
                self._outer.sendall(out)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        while True:
            try:
                with self._tls_lock:
                    return int(self._tls.read(size, view))
            except ssl.SSLWantReadError:
                self._send_pending()  # what reading produced (rare: post-handshake)
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        buffer = bytearray(bufsize)
        n = self.recv_into(buffer)
        return bytes(buffer[:n])

    def sendall(self, data: Any, flags: int = 0) -> None:
        with self._send_lock:
            with self._tls_lock:
                self._tls.write(data)  # into memory: all of it at once
                out = self._outgoing.read()
            self._outer.sendall(out)

    def send(self, data: Any, flags: int = 0) -> int:
        self.sendall(data)
        return len(memoryview(data).cast("B"))

    def shutdown(self, how: int) -> None:
        self._outer.shutdown(how)

    def close(self) -> None:
        self._outer.close()

    @property
    def family(self) -> socket.AddressFamily:
        return self._outer.family

    def __getattr__(self, name: str) -> Any:
        if name == "sendmsg":  # no vectored send: each write is one TLS record
            raise AttributeError(name)
        return getattr(self._outer, name)
