"""The server under test, one library per process: ``python -m blazews._bench.e2e.server``.

Modes:

- ``ingest``: count the messages each connection delivers to application code, with
  the library's idiomatic fastest receive API, and report the rate over a window
  (``RESULT {"count", "elapsed"}``) once per connection;
- ``echo``: send every binary message back (also the server of the memory scenario,
  whose idle connections wait in the receive call).

Servers: ``blazews`` (coroutine handler: ``read_message_into`` for ingest),
``blazews-iter`` (coroutine handler, ``async for``), ``blazews-listener`` (the
callback API: ``Listener.on_message``), ``websockets`` (``recv()``), ``aiohttp``
(``receive()``), ``picows`` (``on_ws_frame``), ``floor`` (a bare ``asyncio.Protocol``:
for the memory scenario it answers the handshake with a constant, for echo it frames
each message back with the least work a server can do; the floors), ``raw`` (a blocking
socket that ``recv_into``s and counts bytes: the ingest ceiling), ``uvicorn-blazews``,
``uvicorn-sansio`` and ``uvicorn-wsproto`` (a Starlette endpoint under uvicorn with
httptools and ``--ws`` blazews' class, websockets-sansio
or wsproto: ASGI's ``receive()``/``send()``). Every server disables keepalive pings
(unless ``BENCH_KEEPALIVE=default`` asks for the library's default keepalive: the
memory scenario's "default keepalive" rows) and accepts 1 MiB messages; it
disables compression too, unless ``--deflate`` asks for each library's default
permessage-deflate (blazews, websockets and aiohttp only; blazews' backend comes from
``BLAZEWS_DEFLATE_BACKEND``).

Prints ``READY {"port", "pid"}`` when it listens, then runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from blazews._bench.e2e.child import HOST, Meter, emit, pin, raise_nofile, run
from blazews._bench.e2e.rows import GORILLA_GOPATH, GORILLA_SOURCE

MAX_MESSAGE = 4 * 1024 * 1024


def keepalive() -> dict[str, Any]:
    """The keepalive keyword: off, unless the row asks for the library's default."""
    return {} if os.environ.get("BENCH_KEEPALIVE") == "default" else {"ping_interval": None}


INGEST_QUEUE = 64  # messages queued before reading pauses, where a library has the knob

Starter = Callable[[str, "Options"], Awaitable[int]]


class Options:
    """Command-line options shared by the adapters."""

    def __init__(self, ns: argparse.Namespace) -> None:
        self.warmup: float = ns.warmup
        self.duration: float = ns.duration
        self.deflate: bool = ns.deflate
        self.seq = 0

    def meter(self) -> Meter:
        """A meter for a new ingest connection, reporting as ``RESULT``."""
        self.seq += 1
        seq = self.seq

        def report(count: int, elapsed: float) -> None:
            emit("RESULT", conn=seq, count=count, elapsed=elapsed)

        return Meter().start(self.warmup, self.duration, report)


# ---- blazews ------------------------------------------------------------------------


async def start_blazews(mode: str, opts: Options, iterate: bool = False) -> int:
    """blazews' coroutine API: ``read_message_into`` (ingest) and ``read_message`` +
    ``send`` (echo), or with ``iterate`` (the ``blazews-iter`` rows) ``async for``
    for both, the form most code is written in."""
    import blazews
    from blazews.exceptions import BufferTooSmall, ConnectionClosed

    async def ingest_iter(conn: Any) -> None:
        meter = opts.meter()
        try:
            async for _ in conn:
                meter.count += 1
        except ConnectionClosed:
            pass

    async def echo_iter(conn: Any) -> None:
        send = conn.send
        try:
            async for message in conn:
                await send(message)
        except ConnectionClosed:
            pass

    async def ingest(conn: Any) -> None:
        meter = opts.meter()
        buf = bytearray(65536)
        read = conn.read_message_into
        try:
            while True:
                try:
                    await read(buf)
                except BufferTooSmall as exc:
                    buf = bytearray(exc.needed)
                    continue
                meter.count += 1
        except ConnectionClosed:
            pass

    async def echo(conn: Any) -> None:
        read, send = conn.read_message, conn.send
        try:
            while True:
                _, data = await read()
                await send(data)
        except ConnectionClosed:
            pass

    kwargs: dict[str, Any] = dict(**keepalive(), max_message_size=MAX_MESSAGE)
    if mode == "ingest":
        kwargs["max_queue"] = INGEST_QUEUE
    kwargs["compression"] = "deflate" if opts.deflate else None
    if iterate:
        handler = ingest_iter if mode == "ingest" else echo_iter
    else:
        handler = ingest if mode == "ingest" else echo
    server = await blazews.serve(handler, HOST, 0, **kwargs)
    return server.port


async def start_blazews_listener(mode: str, opts: Options) -> int:
    import blazews

    class Ingest(blazews.Listener):
        meter: Meter

        def on_connect(self, conn: Any) -> None:
            self.meter = opts.meter()

        def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
            self.meter.count += 1

    class Echo(blazews.Listener):
        def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
            conn.send(payload, kind)

    kwargs: dict[str, Any] = dict(**keepalive(), max_message_size=MAX_MESSAGE)
    kwargs["compression"] = None
    listener = Ingest if mode == "ingest" else Echo
    server = await blazews.serve_listener(listener, HOST, 0, **kwargs)
    return int(server.port)


# ---- websockets ---------------------------------------------------------------------


async def start_websockets(mode: str, opts: Options) -> int:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def ingest(ws: Any) -> None:
        meter = opts.meter()
        recv = ws.recv
        try:
            while True:
                await recv()
                meter.count += 1
        except ConnectionClosed:
            pass

    async def echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    from blazews._bench.e2e import deflate

    kwargs: dict[str, Any] = dict(compression=None, **keepalive(), max_size=MAX_MESSAGE)
    if opts.deflate:
        kwargs.update(deflate.websockets_extensions(client=False))
    if mode == "ingest":
        kwargs["max_queue"] = INGEST_QUEUE
    server = await serve(ingest if mode == "ingest" else echo, HOST, 0, **kwargs)
    return int(server.sockets[0].getsockname()[1])


# ---- aiohttp ------------------------------------------------------------------------


async def start_aiohttp(mode: str, opts: Options) -> int:
    from aiohttp import WSMsgType, web

    data_types = (WSMsgType.BINARY, WSMsgType.TEXT)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=opts.deflate, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        if mode == "ingest":
            meter = opts.meter()
            receive = ws.receive
            while True:
                msg = await receive()
                if msg.type not in data_types:
                    break
                meter.count += 1
        else:
            async for msg in ws:
                if msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    return int(runner.addresses[0][1])


# ---- picows -------------------------------------------------------------------------


async def start_picows(mode: str, opts: Options) -> int:
    from picows import WSListener, WSMsgType, ws_create_server

    binary, close = WSMsgType.BINARY, WSMsgType.CLOSE

    class Ingest(WSListener):
        meter: Meter

        def on_ws_connected(self, transport: Any) -> None:
            self.meter = opts.meter()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == binary:
                self.meter.count += 1
            elif frame.msg_type == close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    class Echo(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == binary:
                transport.send(binary, frame.get_payload_as_memoryview())
            elif frame.msg_type == close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    listener = Ingest if mode == "ingest" else Echo
    server = await ws_create_server(lambda request: listener(), HOST, 0, max_frame_size=MAX_MESSAGE)
    return int(server.sockets[0].getsockname()[1])


# ---- floor: a bare asyncio.Protocol -------------------------------------------------

FLOOR_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
)


class Floor(asyncio.Protocol):
    """Holds a connection and answers its request with a constant: the least memory an
    asyncio server can spend per connection, whatever the protocol on top."""

    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"\r\n\r\n"):
            self.transport.write(FLOOR_RESPONSE)


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FloorEcho(asyncio.Protocol):
    """Echoes WebSocket messages with the least work an asyncio server can do: the
    echo floor. It answers the handshake (with the accept key a client checks),
    delimits frames by their length, and sends each payload back in a server frame
    as it came: not unmasked (the echo clients count replies, they do not read
    them), no UTF-8, no fragments, no limits; a close frame is answered and ends it.
    What a real server does on top of this is its cost."""

    __slots__ = ("buf", "open", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buf = b""
        self.open = False

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = buf
                return
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            self.transport.write(FLOOR_RESPONSE.replace(b"A" * 27 + b"=", accept))
            self.open = True
            buf = rest
        pos, n = 0, len(buf)
        out: list[bytes] = []
        while n - pos >= 2:
            size = buf[pos + 1] & 0x7F
            head_len = 2
            if size == 126:
                size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head_len = 4
            elif size == 127:
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head_len = 10
            start = pos + head_len + 4  # (a client's frames are masked: 4 key bytes)
            if start + size > n:
                break
            if buf[pos] & 0x0F == 0x8:  # a close: answered, and the connection ends
                self.transport.write(b"".join(out) + b"\x88\x02\x03\xe8")
                self.transport.close()
                self.buf = b""
                return
            out.append(bytes((buf[pos], buf[pos + 1] & 0x7F)) + buf[pos + 2 : pos + head_len])
            out.append(buf[start : start + size])
            pos = start + size
        self.buf = buf[pos:]
        if out:
            self.transport.write(b"".join(out))


async def start_floor(mode: str, opts: Options) -> int:
    loop = asyncio.get_running_loop()
    protocol = FloorEcho if mode == "echo" else Floor
    server = await loop.create_server(protocol, HOST, 0, backlog=100)
    return int(server.sockets[0].getsockname()[1])


# ---- uvicorn: a Starlette endpoint on each WebSocket protocol class ------------------

UVICORN_WS = {
    "uvicorn-blazews": "blazews.uvicorn:WebSocketProtocol",
    "uvicorn-sansio": "websockets-sansio",
    "uvicorn-wsproto": "wsproto",
}


async def start_uvicorn(lib: str, mode: str, opts: Options) -> int:
    """A Starlette app under uvicorn (httptools), ``--ws`` from :data:`UVICORN_WS`:
    ingest counts what ``websocket.receive()`` delivers, echo sends back each message."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def ingest(ws: WebSocket) -> None:
        await ws.accept()
        meter = opts.meter()
        receive = ws.receive
        while (await receive())["type"] == "websocket.receive":
            meter.count += 1

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        receive, send = ws.receive, ws.send_bytes
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                await send(message["bytes"])
        except Exception:  # the client left while we answered
            return

    app = Starlette(routes=[WebSocketRoute("/", ingest if mode == "ingest" else echo)])
    config = uvicorn.Config(
        app,
        ws=UVICORN_WS[lib],
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws_max_size=MAX_MESSAGE,
        ws_max_queue=INGEST_QUEUE if mode == "ingest" else 32,
        ws_per_message_deflate=False,
        ws_ping_interval=None if keepalive() else 20.0,  # (20 s: uvicorn's default)
        backlog=2048,
    )
    sock = socket.create_server((HOST, 0), backlog=2048)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return int(sock.getsockname()[1])


DEFLATE_SERVERS = ("blazews", "websockets", "aiohttp")

STARTERS: dict[str, Starter] = {
    "blazews": start_blazews,
    "blazews-iter": functools.partial(start_blazews, iterate=True),
    "blazews-listener": start_blazews_listener,
    "websockets": start_websockets,
    "aiohttp": start_aiohttp,
    "picows": start_picows,
    "floor": start_floor,
    **{lib: functools.partial(start_uvicorn, lib) for lib in UVICORN_WS},
}


# ---- raw: the loopback ceiling ------------------------------------------------------


def serve_raw(opts: Options) -> None:
    """Accept connections one after the other; count the bytes each delivers."""
    listener = socket.create_server((HOST, 0))
    emit("READY", port=listener.getsockname()[1], pid=os.getpid())
    buf = bytearray(256 * 1024)
    while True:
        sock, _ = listener.accept()
        opts.seq += 1
        total = 0
        start = time.perf_counter()
        begin = start + opts.warmup
        end = begin + opts.duration
        counted_from = -1
        with sock:
            while True:
                n = sock.recv_into(buf)
                if not n:
                    break
                total += n
                now = time.perf_counter()
                if counted_from < 0 and now >= begin:
                    counted_from, begin = total, now
                elif counted_from >= 0 and now >= end:
                    emit("RESULT", conn=opts.seq, count=total - counted_from, elapsed=now - begin)
                    break


# ---- Go: gorilla/websocket -----------------------------------------------------------


def gorilla_binary() -> str:
    """Build the Go server (gorilla/main.go) once per version of its source, offline
    (GOPATH mode, Debian's packaged gorilla/websocket); return the binary's path."""
    source = GORILLA_SOURCE.read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "blazews-bench"
    binary = cache / f"gorilla-{hashlib.sha256(source).hexdigest()[:16]}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f"{binary.name}.{os.getpid()}"
        env = dict(os.environ, GOPATH=GORILLA_GOPATH, GO111MODULE="off", GOFLAGS="")
        env["GOCACHE"] = str(cache / "go-build")
        build = ["go", "build", "-o", str(partial), str(GORILLA_SOURCE)]
        subprocess.run(build, env=env, check=True)
        os.replace(partial, binary)
    return str(binary)


def serve_gorilla(ns: argparse.Namespace) -> None:
    """Become the Go server, on this process's CPU, with one OS thread for Go code."""
    binary = gorilla_binary()
    os.environ["GOMAXPROCS"] = "1"
    args = [f"-mode={ns.mode}", f"-warmup={ns.warmup}", f"-duration={ns.duration}"]
    os.execv(binary, [binary, *args])


# ---- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, choices=[*STARTERS, "raw", "gorilla"])
    parser.add_argument("--mode", required=True, choices=["ingest", "echo"])
    parser.add_argument("--loop", default="asyncio", choices=["uvloop", "asyncio"])
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--deflate", action="store_true", help="permessage-deflate on")
    ns = parser.parse_args(argv)
    if ns.deflate and ns.lib not in DEFLATE_SERVERS:
        parser.error(f"--deflate: {ns.lib} has no permessage-deflate here")
    pin(ns.cpu)
    raise_nofile(ns.nofile)
    # Warnings and errors go to stderr, which the orchestrator quotes when a run fails.
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    opts = Options(ns)
    if ns.lib == "raw":
        serve_raw(opts)
        return
    if ns.lib == "gorilla":
        serve_gorilla(ns)

    async def serve() -> None:
        port = await STARTERS[ns.lib](ns.mode, opts)
        emit("READY", port=port, pid=os.getpid())
        await asyncio.Event().wait()

    run(serve, ns.loop)


if __name__ == "__main__":
    main()
