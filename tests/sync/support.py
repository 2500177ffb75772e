"""What the tests of the blocking front end (``tests/sync``) share: a server
running in a thread, an asyncio loop in a thread, and frames written by hand."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

from blazews import sync
from tests.helpers import frame

FAST: dict[str, Any] = dict(ping_interval=None, close_timeout=2.0, open_timeout=5.0)


class Running:
    """A sync server whose ``serve_forever`` runs in a thread."""

    def __init__(self, server: sync.Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/"


def echo(conn: sync.ServerConnection) -> None:
    for message in conn:
        conn.send(message)


class LoopThread:
    """An asyncio loop running in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def raw_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True) -> bytes:
    """Build one frame by hand (RFC 6455 §5.2), masked with a fixed key if asked."""
    return frame(opcode, payload, fin=fin, mask=b"\x01\x02\x03\x04" if mask else False)


def read_raw_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one unmasked frame from a raw socket; return ``(opcode, payload)``."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    assert not b1 & 0x80
    return b0 & 0x0F, exactly(n)


def raw_client(port: int) -> socket.socket:
    """Open a TCP connection and perform the client handshake by hand."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk
        head += chunk
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def read_raw_frame_masked(sock: socket.socket) -> tuple[int, bytes]:
    b0, b1 = sock.recv(2, socket.MSG_WAITALL)
    n = b1 & 0x7F
    assert b1 & 0x80 and n < 126
    key = sock.recv(4, socket.MSG_WAITALL)
    payload = sock.recv(n, socket.MSG_WAITALL) if n else b""
    return b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(payload))
