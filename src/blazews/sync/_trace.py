"""Debug tracing of a blocking connection: its socket, wrapped so that the tracers
(:mod:`blazews.sansio.trace`) see every byte read and written. Installed only on a
connection made while its logger is enabled for ``DEBUG``."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from .._logging import safe_feed
from ..sansio.trace import StreamTracer

__all__ = ["TracedSocket"]


class TracedSocket:
    """A socket (plain or TLS) whose reads and writes are traced."""

    def __init__(self, sock: socket.socket, received: StreamTracer, sent: StreamTracer) -> None:
        self._sock = sock
        self._received = received
        self._sent = sent

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        n = self._sock.recv_into(buffer, nbytes, flags)
        safe_feed(self._received, memoryview(buffer)[:n])
        return n

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = self._sock.recv(bufsize, flags)
        safe_feed(self._received, data)
        return data

    def send(self, data: Any, flags: int = 0) -> int:
        n = self._sock.send(data, flags)
        safe_feed(self._sent, memoryview(data).cast("B")[:n])
        return n

    def sendall(self, data: Any, flags: int = 0) -> None:
        safe_feed(self._sent, data)  # before: the answer may be traced meanwhile
        self._sock.sendall(data, flags)

    def _sendmsg(self, buffers: Any, *args: Any) -> int:
        buffers = list(buffers)
        sent = self._sock.sendmsg(buffers, *args)
        left = sent
        for buffer in buffers:
            view = memoryview(buffer).cast("B")
            safe_feed(self._sent, view[:left])
            left -= len(view)
            if left <= 0:
                break
        return sent

    def __getattr__(self, name: str) -> Any:
        # sendmsg only where the socket has one that works (not TLS).
        if name == "sendmsg":
            if isinstance(self._sock, ssl.SSLSocket) or not hasattr(self._sock, "sendmsg"):
                raise AttributeError(name)
            return self._sendmsg
        return getattr(self._sock, name)
