"""Shared builders for the sans-I/O tests, and a raw client for the loopback ones.

Everything here is written independently of the code under test: frames are built and
parsed by hand from RFC 6455 §5.2, so a bug in ``blazews.sansio.frames`` cannot hide
itself by being used on both sides of an assertion.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from blazews.exceptions import ConnectionClosedError, ProtocolError
from blazews.sansio.protocol import Message, Ping, Pong, Protocol, Side, State

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KiB, MiB = 1024, 1 << 20

DEFAULT_KEY = b"\x37\xfa\x21\x3d"


def xor(data: bytes, key: bytes) -> bytes:
    """Mask or unmask ``data`` with a 4-byte key: byte ``i`` is XORed with ``key[i % 4]``."""
    n = len(data)
    if n == 0:
        return b""
    stream = (bytes(key) * (n // 4 + 1))[:n]
    value = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(n, "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool | bytes = False,
    length_bits: int | None = None,
    length: int | None = None,
    with_payload: bool = True,
) -> bytes:
    """Return the raw bytes of one frame, with any header field chosen freely.

    Args:
        opcode: The 4-bit opcode, reserved ones included.
        payload: The unmasked payload.
        fin: The FIN bit.
        rsv: The RSV bits as they sit in the first byte (``0x40``, ``0x20``, ``0x10``).
        mask: ``True`` to mask with :data:`DEFAULT_KEY`, a 4-byte key to mask with it,
            ``False`` for an unmasked frame.
        length_bits: Force the length encoding: 7, 16 or 64 bits (non-minimal
            encodings included); ``None`` picks the minimal one.
        length: Announce this payload length instead of ``len(payload)``.
        with_payload: ``False`` returns only the header (and the masking key).
    """
    n = len(payload) if length is None else length
    if length_bits is None:
        length_bits = 7 if n < 126 else 16 if n < 65536 else 64
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not False else 0
    if length_bits == 7:
        assert n < 126
        header = bytes((first, mask_bit | n))
    elif length_bits == 16:
        assert n < 65536
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    elif length_bits == 64:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    else:  # pragma: no cover
        raise ValueError(length_bits)
    if mask is not False:
        key = DEFAULT_KEY if mask is True else mask
        header += key
        payload = xor(payload, key)
    return header + payload if with_payload else header


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class RawFrame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    key: bytes | None
    payload: bytes  # unmasked
    header_len: int


def parse_frames(data: bytes | Iterable[bytes]) -> list[RawFrame]:
    """Parse complete frames (unmasking them) with a reference parser.

    Raises AssertionError if bytes are left over.
    """
    if not isinstance(data, (bytes, bytearray)):
        data = b"".join(data)
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            (n,) = struct.unpack_from("!H", data, pos + 2)
            hlen = 4
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, pos + 2)
            hlen = 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            key = bytes(data[pos + hlen : pos + hlen + 4])
            hlen += 4
        payload = bytes(data[pos + hlen : pos + hlen + n])
        assert len(payload) == n, "truncated frame"
        if key is not None:
            payload = xor(payload, key)
        frames.append(RawFrame(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, masked, key, payload, hlen))
        pos += hlen + n
    return frames


def server(**kwargs: object) -> Protocol:
    """An open server-side Protocol (expects masked frames)."""
    return Protocol(Side.SERVER, state=State.OPEN, **kwargs)  # type: ignore[arg-type]


def client(**kwargs: object) -> Protocol:
    """An open client-side Protocol (expects unmasked frames)."""
    return Protocol(Side.CLIENT, state=State.OPEN, **kwargs)  # type: ignore[arg-type]


# A test with a ``make`` argument runs twice: on a server, then on a client.
SIDES = pytest.mark.parametrize("make", [server, client], ids=["server", "client"])


def incoming(proto: Protocol, opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as ``proto``'s peer must send it: masked towards a server only."""
    kwargs.setdefault("mask", proto.side is Side.SERVER)
    return frame(opcode, payload, **kwargs)  # type: ignore[arg-type]


def sent_frames(proto: Protocol) -> list[RawFrame]:
    """Drain and parse what ``proto`` wants to write."""
    return parse_frames(proto.data_to_send())


def describe(events: Iterable[object]) -> list[tuple[str, int | None, bytes]]:
    """Events as comparable tuples."""
    out: list[tuple[str, int | None, bytes]] = []
    for event in events:
        if isinstance(event, Message):
            out.append(("message", int(event.type), bytes(event.data)))
        elif isinstance(event, Ping):
            out.append(("ping", None, bytes(event.data)))
        elif isinstance(event, Pong):
            out.append(("pong", None, bytes(event.data)))
        else:
            out.append((type(event).__name__, None, b""))
    return out


def transfer(src: Protocol, dst: Protocol) -> bytes:
    """Move everything ``src`` wants to write into ``dst``; return the bytes moved."""
    data = b"".join(src.data_to_send())
    if data:
        dst.receive_data(data)
    return data


def assert_failed(proto: Protocol, code: int) -> None:
    """Check that ``proto`` failed the connection because of a peer's protocol error.

    The error is kept with its close code, the last frame written is a close frame with
    that code, the connection accepts no more bytes and wants the transport closed, and
    :meth:`Protocol.close_exc` explains it all.
    """
    error = proto.protocol_error
    assert isinstance(error, ProtocolError), error
    assert error.close_code == code, (error, error.close_code)
    written = sent_frames(proto)
    assert written, "no close frame was written"
    last = written[-1]
    assert last.opcode == CLOSE and last.fin
    assert len(last.payload) <= 125
    assert int.from_bytes(last.payload[:2], "big") == code
    assert proto.close_sent is not None and proto.close_sent.code == code
    assert proto.close_rcvd_then_sent is False  # we closed (failed) first
    assert not proto.receiving
    assert proto.close_transport()
    exc = proto.close_exc()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.__cause__ is error
    assert exc.sent is proto.close_sent
    assert exc.rcvd is proto.close_rcvd


# -- over loopback: a raw client, and a loop of either kind ----------------------------


def blocking_client(port: int, rcvbuf: int | None = None, offer: bytes = b"") -> socket.socket:
    """A blocking socket that completed a WebSocket handshake by hand with ``port``
    (its receive buffer set to ``rcvbuf`` bytes first, if given; ``offer``, header
    lines ending in CRLF, added to the request), for peers that misbehave on
    purpose; the 101 is read to its end and nothing past it."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + offer + b"\r\n"
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


async def raw_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection to ``port`` and complete a WebSocket handshake by hand."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one unmasked frame (a server's): its opcode and payload."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(length)


def run_on(loop: str, main: Callable[[], Coroutine[Any, Any, None]], timeout: float = 20) -> None:
    """Run ``main()`` on a new ``"asyncio"`` or ``"uvloop"`` event loop, within ``timeout``."""
    import uvloop

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    event_loop = factory()
    try:
        event_loop.run_until_complete(asyncio.wait_for(main(), timeout))
    finally:
        event_loop.close()


class RawServer:
    """A listening socket (blocking, in a thread) whose single connection gets a
    hand-made 101, then whatever ``behaviour(sock)`` does."""

    def __init__(self, behaviour: Callable[[socket.socket], object]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sock, _ = self.listener.accept()
        with sock:
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.behaviour(sock)
        self.listener.close()


class HeldSink:
    """A raw server that reads nothing until ``release()``, then keeps every byte."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.got: list[bytes] = []
        self.server = RawServer(self._sink)

    def _sink(self, sock: socket.socket) -> None:
        self.go.wait(20)
        while chunk := sock.recv(1 << 20):
            self.got.append(chunk)

    def release(self) -> None:
        self.go.set()

    def frames(self) -> list[RawFrame]:
        self.server.thread.join(10)
        return parse_frames(b"".join(self.got))


class RecordingTransport(asyncio.Transport):
    """A transport that records what is written and whether reading is paused.

    Its instances have no dict, as uvloop's transports (a subclass without
    ``__slots__`` has one).
    """

    __slots__ = ("closed", "paused", "written")

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.paused = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        self.written.append(b"".join(bytes(line) for line in lines))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def feed(conn: Any, data: bytes, chunk: int | None = None) -> int:
    """Deliver ``data`` to an asyncio connection as the loop would, at most ``chunk``
    bytes per read.

    Returns the number of reads.
    """
    reads = 0
    pos = 0
    while pos < len(data):
        view = conn.get_buffer(-1)
        assert len(view) > 0
        n = min(len(view), len(data) - pos, chunk or len(data))
        view[:n] = data[pos : pos + n]
        pos += n
        conn.buffer_updated(n)
        reads += 1
    return reads


async def echo_handler(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


async def wait_queued(conn: Any, n: int) -> None:
    """Wait until ``n`` messages are queued on the coroutine-API connection ``conn``."""
    for _ in range(500):
        if conn._queue.pending() >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} messages never queued")
