"""Load generators, each in its own process: ``python -m benchmarks.e2e.loadgen``.

- ``send``: a raw-socket sender (plain ``socket``, no WebSocket library). For each
  ``go PORT SIZE RAW`` line on stdin: the opening handshake (unless ``RAW`` is 1, for
  the plain socket server that measures the loopback ceiling), ``STARTED``, then
  pre-masked binary frames, built once, sent back to back until the next stdin line,
  the server hanging up, or the time limit; then ``STOPPED``.
- ``echo``: the client of one library against the server of the same library: 256 B
  binary messages with a fixed number in flight (a sliding window: each reply sends
  the next message); ``RESULT {"inflight", "count", "elapsed"}`` per window size.
- ``hold``: opens N connections with raw sockets (handshake included, in batches
  shorter than the listen backlog), prints ``OPEN {"n"}`` and holds them until its
  stdin closes or it is killed.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import select
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.e2e.child import HOST, Meter, emit, pin, raise_nofile, run

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


def handshake_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> None:
    """Read the handshake response; raise unless it is ``101``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"server closed during the handshake: {data[:200]!r}")
        data += chunk
    status = data.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise ConnectionError(f"handshake refused: {status!r}")


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
    """Drives one echo connection: ``inflight`` messages out, one more per reply."""

    def __init__(self, inflight: int, warmup: float, duration: float) -> None:
        self.inflight = inflight
        self.warmup = warmup
        self.duration = duration

    def meter(self) -> Meter:
        inflight = self.inflight

        def report(count: int, elapsed: float) -> None:
            emit("RESULT", inflight=inflight, count=count, elapsed=elapsed)

        return Meter().start(self.warmup, self.duration, report)


async def echo_blazews(url: str, w: Window) -> None:
    import inspect

    import blazews

    kwargs: dict[str, Any] = dict(ping_interval=None, max_message_size=MAX_MESSAGE)
    if "compression" in inspect.signature(blazews.connect).parameters:
        kwargs["compression"] = None
    msg = bytes(ECHO_SIZE)
    async with blazews.connect(url, **kwargs) as conn:
        read, send = conn.read_message, conn.send
        for _ in range(w.inflight):
            await send(msg)
        meter = w.meter()
        while not meter.done:
            await read()
            meter.count += 1
            await send(msg)
        for _ in range(w.inflight):  # drain, so the closing handshake is not stuck
            await read()


async def echo_blazews_listener(url: str, w: Window) -> None:
    import inspect

    import blazews

    msg = bytes(ECHO_SIZE)

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

    kwargs: dict[str, Any] = dict(ping_interval=None, max_message_size=MAX_MESSAGE)
    if "compression" in inspect.signature(blazews.connect_listener).parameters:
        kwargs["compression"] = None
    conn, _ = await blazews.connect_listener(Client, url, **kwargs)
    await conn.wait_closed()


async def echo_websockets(url: str, w: Window) -> None:
    from websockets.asyncio.client import connect

    msg = bytes(ECHO_SIZE)
    async with connect(
        url, compression=None, ping_interval=None, max_size=MAX_MESSAGE, proxy=None
    ) as ws:
        recv, send = ws.recv, ws.send
        for _ in range(w.inflight):
            await send(msg)
        meter = w.meter()
        while not meter.done:
            await recv()
            meter.count += 1
            await send(msg)
        for _ in range(w.inflight):
            await recv()


async def echo_aiohttp(url: str, w: Window) -> None:
    import aiohttp

    msg = bytes(ECHO_SIZE)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=0, max_msg_size=MAX_MESSAGE) as ws,
    ):
        receive, send = ws.receive, ws.send_bytes
        for _ in range(w.inflight):
            await send(msg)
        meter = w.meter()
        while not meter.done:
            reply = await receive()
            if reply.type is not aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"unexpected {reply.type}")
            meter.count += 1
            await send(msg)
        for _ in range(w.inflight):
            await receive()


async def echo_picows(url: str, w: Window) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    binary = WSMsgType.BINARY
    msg = bytes(ECHO_SIZE)

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
    "blazews-listener": echo_blazews_listener,
    "websockets": echo_websockets,
    "aiohttp": echo_aiohttp,
    "picows": echo_picows,
}


# ---- hold ---------------------------------------------------------------------------


def hold(port: int, n: int, batch: int) -> None:
    raise_nofile(n + 256)
    socks: list[socket.socket] = []
    while len(socks) < n:
        group = [socket.create_connection((HOST, port)) for _ in range(min(batch, n - len(socks)))]
        for sock in group:
            sock.settimeout(30)
            sock.sendall(handshake_request(port))
        for sock in group:
            read_response(sock)
        socks.extend(group)
    emit("OPEN", n=len(socks))
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
    p.add_argument("--cpu", type=int, default=None)
    p = sub.add_parser("hold")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--cpu", type=int, default=None)
    ns = parser.parse_args(argv)
    pin(ns.cpu)
    if ns.command == "send":
        send(ns.limit)
    elif ns.command == "hold":
        hold(ns.port, ns.n, ns.batch)
    else:
        url = f"ws://{HOST}:{ns.port}/"
        client = ECHO_CLIENTS[ns.lib]

        async def echo_all() -> None:
            for inflight in ns.inflight:
                await client(url, Window(inflight, ns.warmup, ns.duration))

        run(echo_all, ns.loop)


if __name__ == "__main__":
    main()
