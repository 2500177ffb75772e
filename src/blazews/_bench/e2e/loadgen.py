"""Load generators, each in its own process: ``python -m blazews._bench.e2e.loadgen``.

- ``send``: a raw-socket sender (plain ``socket``, no WebSocket library). For each
  ``go PORT SIZE RAW`` line on stdin: the opening handshake (unless ``RAW`` is 1, for
  the plain socket server that measures the loopback ceiling), ``STARTED``, then
  pre-masked binary frames, built once, sent back to back until the next stdin line,
  the server hanging up, or the time limit; then ``STOPPED``.
- ``echo``: the client of one library against the server of the same library: 256 B
  binary messages with a fixed number in flight (a sliding window: each reply sends
  the next message); ``RESULT {"inflight", "count", "elapsed", "extensions"}`` per
  window size. With ``--deflate``: the JSON message of :mod:`blazews._bench.e2e.deflate`
  (``--size`` bytes, still sent as binary), the library's default permessage-deflate.
- ``hold``: opens N connections with raw sockets (handshake included, in batches
  shorter than the listen backlog), prints ``OPEN {"n"}`` and holds them until its
  stdin closes or it is killed. With ``--deflate`` each connection also offers
  permessage-deflate and exchanges one compressed ``--size`` byte JSON message each
  way first; ``OPEN`` then adds the server's ``Sec-WebSocket-Extensions`` answer and
  the median wire size of its replies (``--probe SIZE``: and of one more, larger one).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import random
import select
import socket
import sys
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from blazews._bench.e2e import deflate
from blazews._bench.e2e.child import HOST, Meter, emit, pin, raise_nofile, run

MASK_KEY = b"\x5a\xc3\x91\x0e"
BLOCK = 256 * 1024  # bytes per sendall() for small frames
ECHO_SIZE = 256
MAX_MESSAGE = 4 * 1024 * 1024


# ---- frames and handshake -----------------------------------------------------------


def masked_frame(size: int, opcode: int = 0x2, key: bytes = MASK_KEY) -> bytes:
    """Return one final, masked frame carrying ``size`` pseudo-random bytes."""
    payload = random.Random(size).randbytes(size)
    if size < 126:
        header = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    if size:
        stream = (key * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            size, "big"
        )
    else:
        masked = b""
    return header + key + masked


def handshake_request(port: int, extensions: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (
        f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{offer}\r\n"
    ).encode()


def read_response(sock: socket.socket) -> str:
    """Read the handshake response; raise unless it is ``101``; return its
    ``Sec-WebSocket-Extensions`` header (``""`` without one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"server closed during the handshake: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if rest:
        raise ConnectionError(f"unexpected bytes after the handshake: {rest[:50]!r}")
    lines = head.decode("latin-1").split("\r\n")
    if " 101 " not in lines[0] + " ":
        raise ConnectionError(f"handshake refused: {lines[0]!r}")
    found = [
        value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
        if name.strip().lower() == "sec-websocket-extensions"
    ]
    return ", ".join(found)


# ---- send ---------------------------------------------------------------------------


def blast(port: int, size: int, raw: bool, limit: float) -> None:
    """Connect, shake hands, send frames until stdin has a line, the server hangs up
    or ``limit`` seconds pass."""
    frame = masked_frame(size)
    block = frame * max(1, BLOCK // len(frame))
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if not raw:
            sock.sendall(handshake_request(port))
            read_response(sock)
        emit("STARTED", size=size)
        deadline = time.monotonic() + limit
        sendall = sock.sendall
        stdin = [sys.stdin]
        try:
            while not select.select(stdin, [], [], 0)[0] and time.monotonic() < deadline:
                sendall(block)
        except OSError:
            pass  # the server hung up: the measurement is over
    finally:
        sock.close()


def send(limit: float) -> None:
    """Serve ``go PORT SIZE RAW`` commands from stdin, one at a time.

    Each ``go`` blasts until the next line (``stop``) arrives, then answers ``STOPPED``:
    one process serves every measurement, so none pays for starting a sender.
    """
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        words = line.split()
        if words[:1] == ["go"]:
            blast(int(words[1]), int(words[2]), words[3] == "1", limit)
            stop = sys.stdin.readline()
            emit("STOPPED")
            if not stop:
                return


# ---- echo ---------------------------------------------------------------------------


class Window:
    """Drives one echo connection: ``inflight`` messages out, one more per reply.

    ``deflate``: compression on, the client must have negotiated permessage-deflate
    (:meth:`negotiated`) before it starts the meter.
    """

    def __init__(
        self, inflight: int, warmup: float, duration: float, payloads: list[bytes], deflate: bool
    ) -> None:
        self.inflight = inflight
        self.warmup = warmup
        self.duration = duration
        self.payloads = payloads  # sent in turn
        self.deflate = deflate
        self.extensions = ""

    def negotiated(self, header: str | None) -> None:
        """Note the response's ``Sec-WebSocket-Extensions``; check it as ``deflate`` wants."""
        self.extensions = header or ""
        if self.deflate and "permessage-deflate" not in self.extensions:
            raise ConnectionError(f"permessage-deflate not negotiated: {header!r}")
        if not self.deflate and self.extensions:
            # An uncompressed row that compresses measures something else.
            raise ConnectionError(f"an extension was negotiated: {header!r}")

    def meter(self) -> Meter:
        inflight, extensions = self.inflight, self.extensions

        def report(count: int, elapsed: float) -> None:
            emit("RESULT", inflight=inflight, count=count, elapsed=elapsed, extensions=extensions)

        return Meter().start(self.warmup, self.duration, report)


async def echo_blazews(url: str, w: Window) -> None:
    import blazews

    kwargs: dict[str, Any] = {"ping_interval": None, "max_message_size": MAX_MESSAGE}
    kwargs["compression"] = "deflate" if w.deflate else None
    msgs = itertools.cycle(w.payloads)
    async with blazews.connect(url, **kwargs) as conn:
        headers = conn.response_headers
        assert headers is not None
        w.negotiated(headers.get("Sec-WebSocket-Extensions"))
        read, send = conn.read_message, conn.send
        for _ in range(w.inflight):
            await send(next(msgs))
        meter = w.meter()
        while not meter.done:
            await read()
            meter.count += 1
            await send(next(msgs))
        for _ in range(w.inflight):  # drain, so the closing handshake is not stuck
            await read()


async def echo_blazews_listener(url: str, w: Window) -> None:
    import blazews

    if w.deflate:
        raise ValueError("the Listener echo client does not run with --deflate")
    msg = w.payloads[0]

    class Client(blazews.Listener):
        meter: Meter
        outstanding: int

        def on_connect(self, conn: Any) -> None:
            for _ in range(w.inflight):
                conn.send(msg)
            self.outstanding = w.inflight
            self.meter = w.meter()

        def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
            meter = self.meter
            meter.count += 1
            if not meter.done:
                conn.send(msg)
                return
            self.outstanding -= 1
            if self.outstanding == 0:
                conn.close()

    kwargs: dict[str, Any] = {"ping_interval": None, "max_message_size": MAX_MESSAGE}
    conn, _ = await blazews.connect_listener(Client, url, compression=None, **kwargs)
    headers = conn.response_headers
    assert headers is not None
    w.negotiated(headers.get("Sec-WebSocket-Extensions"))
    await conn.wait_closed()


async def echo_websockets(url: str, w: Window) -> None:
    from websockets.asyncio.client import connect

    msgs = itertools.cycle(w.payloads)
    kwargs: dict[str, Any] = {"compression": None}
    if w.deflate:
        kwargs.update(deflate.websockets_extensions(client=True))
    async with connect(url, ping_interval=None, max_size=MAX_MESSAGE, proxy=None, **kwargs) as ws:
        assert ws.response is not None
        w.negotiated(ws.response.headers.get("Sec-WebSocket-Extensions"))
        recv, send = ws.recv, ws.send
        for _ in range(w.inflight):
            await send(next(msgs))
        meter = w.meter()
        while not meter.done:
            await recv()
            meter.count += 1
            await send(next(msgs))
        for _ in range(w.inflight):
            await recv()


async def echo_aiohttp(url: str, w: Window) -> None:
    import aiohttp

    msgs = itertools.cycle(w.payloads)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=15 if w.deflate else 0, max_msg_size=MAX_MESSAGE) as ws,
    ):
        # No public accessor for the response: its headers are the handshake's.
        w.negotiated(ws._response.headers.get("Sec-WebSocket-Extensions"))
        receive, send = ws.receive, ws.send_bytes
        for _ in range(w.inflight):
            await send(next(msgs))
        meter = w.meter()
        while not meter.done:
            reply = await receive()
            if reply.type is not aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"unexpected {reply.type}")
            meter.count += 1
            await send(next(msgs))
        for _ in range(w.inflight):
            await receive()


async def echo_picows(url: str, w: Window) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    if w.deflate:
        raise ValueError("picows has no permessage-deflate")
    binary = WSMsgType.BINARY
    msg = w.payloads[0]

    class Client(WSListener):
        meter: Meter
        outstanding: int

        def on_ws_connected(self, transport: Any) -> None:
            for _ in range(w.inflight):
                transport.send(binary, msg)
            self.outstanding = w.inflight
            self.meter = w.meter()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != binary:
                return
            meter = self.meter
            meter.count += 1
            if not meter.done:
                transport.send(binary, msg)
                return
            self.outstanding -= 1
            if self.outstanding == 0:
                transport.send_close()
                transport.disconnect()

    transport, _ = await ws_connect(Client, url, max_frame_size=MAX_MESSAGE)
    await transport.wait_disconnected()


ECHO_CLIENTS: dict[str, Callable[[str, Window], Coroutine[Any, Any, None]]] = {
    "blazews": echo_blazews,
    "blazews-iter": echo_blazews,
    "blazews-listener": echo_blazews_listener,
    "websockets": echo_websockets,
    "aiohttp": echo_aiohttp,
    "picows": echo_picows,
    # uvicorn's WebSocket classes (server.py UVICORN_WS) and the echo floor: one client
    # for these rows, the fastest here, so that what differs is the server.
    **dict.fromkeys(
        ("uvicorn-blazews", "uvicorn-sansio", "uvicorn-wsproto", "floor"), echo_blazews_listener
    ),
}


# ---- hold ---------------------------------------------------------------------------


def _streams(header: str) -> tuple[Any, Any, bytearray]:
    """A connection's compressor (with the window the server allowed the client),
    inflater (15 bits: accepts any window) and receive buffer."""
    params = deflate.parse_extensions(header)
    if not params and "permessage-deflate" not in header:
        raise ConnectionError(f"permessage-deflate not negotiated: {header!r}")
    bits = int(params.get("client_max_window_bits") or 15)
    compressor = zlib.compressobj(1, zlib.DEFLATED, -bits, 5)
    return compressor, zlib.decompressobj(-15), bytearray()


def _reply(sock: socket.socket, buf: bytearray, inflater: Any, sent: bytes) -> int:
    """Read the server's echo of ``sent``; check it; return its size on the wire."""
    size, payload = deflate.read_compressed(sock, buf, inflater)
    if payload != sent:
        raise ConnectionError(f"the echo differs from the message: {payload[:50]!r}")
    return size


def hold(port: int, n: int, batch: int, compress: bool, size: int, probe: int) -> None:
    raise_nofile(n + 256)
    offer = deflate.OFFER if compress else ""
    msg = deflate.json_message(size, deflate.MEMORY_SEED)
    socks: list[socket.socket] = []
    streams: list[tuple[Any, Any, bytearray]] = []  # per connection, with compression
    headers: set[str] = set()
    wire: list[int] = []
    while len(socks) < n:
        group = [socket.create_connection((HOST, port)) for _ in range(min(batch, n - len(socks)))]
        for sock in group:
            sock.settimeout(30)
            sock.sendall(handshake_request(port, offer))
        for sock in group:
            header = read_response(sock)
            headers.add(header)
            if compress:
                streams.append(_streams(header))
                sock.sendall(deflate.compressed_frame(msg, streams[-1][0]))
        if compress:
            for sock, (_, inflater, buf) in zip(group, streams[len(socks) :], strict=True):
                wire.append(_reply(sock, buf, inflater, msg))
        socks.extend(group)
    data: dict[str, Any] = {"n": len(socks), "extensions": " / ".join(sorted(headers))}
    if compress:
        data["reply_bytes"] = sorted(wire)[len(wire) // 2]
        if probe:  # one larger message on the first connection, for its compressed size
            big = deflate.json_message(probe)  # the first message of the echo
            compressor, inflater, buf = streams[0]
            socks[0].sendall(deflate.compressed_frame(big, compressor))
            data["probe_reply_bytes"] = _reply(socks[0], buf, inflater, big)
    emit("OPEN", **data)
    sys.stdin.read()  # until the orchestrator closes our stdin or kills us
    for sock in socks:
        sock.close()


# ---- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("send")
    p.add_argument("--limit", type=float, default=60.0, help="stop each blast after this long")
    p.add_argument("--cpu", type=int, default=None)
    p = sub.add_parser("echo")
    p.add_argument("--lib", required=True, choices=list(ECHO_CLIENTS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--loop", default="asyncio", choices=["uvloop", "asyncio"])
    p.add_argument("--inflight", type=int, nargs="+", default=[1, 64])
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--deflate", action="store_true", help="JSON messages, compression on")
    p.add_argument("--size", type=int, default=ECHO_SIZE, help="message size in bytes")
    p.add_argument("--cpu", type=int, default=None)
    p = sub.add_parser("hold")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--deflate", action="store_true", help="exchange one compressed message")
    p.add_argument("--size", type=int, default=4096, help="its size in bytes")
    p.add_argument("--probe", type=int, default=0, help="then one of this size (first conn.)")
    p.add_argument("--cpu", type=int, default=None)
    ns = parser.parse_args(argv)
    pin(ns.cpu)
    if ns.command == "send":
        send(ns.limit)
    elif ns.command == "hold":
        hold(ns.port, ns.n, ns.batch, ns.deflate, ns.size, ns.probe)
    else:
        url = f"ws://{HOST}:{ns.port}/"
        client = ECHO_CLIENTS[ns.lib]
        payloads = deflate.echo_messages(ns.size) if ns.deflate else [bytes(ns.size)]

        async def echo_all() -> None:
            for inflight in ns.inflight:
                w = Window(inflight, ns.warmup, ns.duration, payloads, ns.deflate)
                await client(url, w)

        run(echo_all, ns.loop)


if __name__ == "__main__":
    main()
