"""What the tests of the blocking front end (``tests/sync``) share: a server
running in a thread, an asyncio loop in a thread, frames written by hand, and the
streams of the FrameReader tests with what the sans-I/O core makes of them."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

from blazews import sync
from blazews.sansio.frames import Opcode
from blazews.sansio.protocol import Message, Ping, Pong, Protocol, Side, State
from tests.helpers import frame

FAST: dict[str, Any] = {"ping_interval": None, "close_timeout": 2.0, "open_timeout": 5.0}


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


# -- FrameReader: streams built by hand, and what the core makes of them ---------------

LENGTHS = [0, 1, 125, 126, 65535, 65536]


def build(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
    length: int | None = None,
    bits: int | None = None,
) -> bytes:
    """One frame, any header field chosen freely; masked when ``key`` is given.

    (:func:`tests.helpers.frame` under the names the FrameReader tests use.)
    """
    mask: bytes | bool = False if key is None else key
    return frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, length=length, length_bits=bits)


def random_stream(rng: random.Random, masked: bool) -> bytes:
    """A valid stream: messages (some fragmented, with control frames interleaved)."""
    frames = []
    for _ in range(rng.randint(5, 40)):
        opcode = rng.choice([Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG])
        key = (lambda: rng.randbytes(4)) if masked else (lambda: None)
        if opcode in (Opcode.PING, Opcode.PONG):
            frames.append(build(opcode, rng.randbytes(rng.randint(0, 125)), key=key()))
            continue
        text = opcode == Opcode.TEXT
        size = rng.choice([0, 1, 50, 125, 126, 300, 70000])
        payload = ("é" * size).encode()[:size] if text else rng.randbytes(size)
        if text and len(payload) % 2:
            payload = payload[:-1]  # keep the UTF-8 whole
        parts = rng.randint(1, 4)
        cuts = sorted(rng.randint(0, len(payload)) for _ in range(parts - 1))
        pieces = [payload[i:j] for i, j in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for i, piece in enumerate(pieces):
            frames.append(
                build(opcode if i == 0 else Opcode.CONT, piece, fin=i == len(pieces) - 1, key=key())
            )
            if rng.random() < 0.2 and i < len(pieces) - 1:
                frames.append(build(Opcode.PING, b"mid", key=key()))
    frames.append(build(Opcode.CLOSE, struct.pack("!H", 1000) + b"done", key=key()))
    return b"".join(frames)


def core_events(stream: bytes, side: Side, rng: random.Random) -> tuple[list[Any], Protocol]:
    protocol = Protocol(side, state=State.OPEN, max_message_size=None)
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 9000)
        protocol.receive_data(stream[pos : pos + step])
        pos += step
    events: list[Any] = []
    for event in protocol.events_received():
        if isinstance(event, Message):
            events.append(("message", event.type, event.data))
        elif isinstance(event, Ping):
            events.append(("ping", event.data))
        elif isinstance(event, Pong):
            events.append(("pong", event.data))
    return events, protocol
