"""The command line: ``python -m blazews echo``, ``serve``, ``connect`` and ``bench``.

``echo`` runs an echo server (every message is sent back with its type): the peer
the conformance and interoperability tests use. ``serve`` runs the demo: a web page
at ``http://127.0.0.1:8765/`` with an echo box, a chat room and live statistics,
served by blazews alone (:mod:`blazews._demo`). ``connect`` is an interactive client:
each line typed is sent as a text message, each message received is printed (control
characters escaped; binary messages as ``repr`` or, with ``--hex``, hex bytes), with
``--header``, ``--subprotocol``, ``--proxy``, ``--insecure`` and ``--ping``.
``--version`` says which implementation runs (compiled or pure Python).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import platform
import re
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asyncio import ClientConnection

__all__ = ["main"]

ECHO_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

CONNECT_TIMEOUT = 10.0
"""Seconds ``connect`` allows for the TCP connection, TLS and the opening handshake."""

REPLY_GRACE_PERIOD = 2.0
"""Seconds ``connect`` waits for replies at end of input, after the last message
sent or received: long enough for an echo, short enough not to hang on a server
that does not answer."""


class _CommandError(Exception):
    """A failure the command line reports in one line on stderr, without a traceback."""


def _implementation_summary() -> str:
    """Say which implementation runs, for ``--version`` and the banners.

    Returns:
        ``"compiled, SIMD avx2, CPython 3.12.1"`` (``blazews.IMPLEMENTATION``, the
        SIMD level of the kernels, the interpreter) or, when pure Python runs, why
        and how to get the compiled extensions.
    """
    from . import IMPLEMENTATION, simd_level

    if IMPLEMENTATION != "python":
        python = f"{platform.python_implementation()} {platform.python_version()}"
        return f"{IMPLEMENTATION}, SIMD {simd_level()}, {python}"
    if os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0"):
        return (
            "pure Python: BLAZEWS_NO_EXTENSIONS is set, so the compiled extensions are "
            "not used; slower. Unset it for the fast path"
        )
    return (
        "pure Python: no compiled extensions; slower. "
        "Set up a C compiler and reinstall for the fast path"
    )


def _size(size: int | None) -> str:
    """A message size limit in words: ``"16 MiB"``, ``"1000 bytes"``, ``"no limit"``."""
    if size is None:
        return "no limit"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _interval(seconds: float | None) -> str:
    """A keepalive ping interval in words: ``"every 20 s"`` or ``"off"``."""
    return "off" if seconds is None else f"every {seconds:g} s"


async def _echo_handler(conn: Any) -> None:
    from .exceptions import ConnectionClosed

    try:
        while True:
            await conn.send(await conn.recv())
    except ConnectionClosed:
        pass


def _echo_extensions(compress: bool) -> list[Any]:
    """The echo server's permessage-deflate policy: every echo goes back compressed.

    Small and incompressible messages included: kosoku 0.1.0 (the Autobahn runner)
    takes an uncompressed message on a permessage-deflate connection for an error,
    although RFC 7692 section 6 allows it.
    """
    if not compress:
        return []
    from .sansio.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    return [ServerPerMessageDeflateFactory(compress_threshold=0, skip_incompressible=False)]


def _echo_settings(max_size: int | None, compress: bool) -> dict[str, Any]:
    """The keyword arguments every echo front end gets: a demo and test peer that
    takes large messages, compresses every echo and sends no keepalive pings."""
    return {
        "max_message_size": max_size,
        "ping_interval": None,
        "extensions": _echo_extensions(compress),
        "compression": None,
    }


def _echo_banner(
    host: str, port: int, front_end: str, settings: dict[str, Any], compress: bool
) -> str:
    """The echo server's start-up banner.

    Args:
        host: The address listened on.
        port: The port listened on.
        front_end: The API serving, for the reader: ``"asyncio"``, ``"blocking"``...
        settings: The options the server got (see :func:`_echo_settings`).
        compress: Whether permessage-deflate is accepted.

    Returns:
        Where the server listens and what implementation runs, then, on a second
        line, the settings that differ from the library defaults.
    """
    from .options import ServerOptions
    from .sansio.extensions.permessage_deflate import DEFAULT_COMPRESS_THRESHOLD

    defaults = ServerOptions()
    changes = []
    size = settings["max_message_size"]
    if size != defaults.max_message_size:
        changes.append(
            f"max message size {_size(size)} (library default {_size(defaults.max_message_size)})"
        )
    default_compression = "on" if defaults.compression else "off"
    if compress:
        changes.append(
            "compression on, every message compressed (library default "
            f"{default_compression}, from {DEFAULT_COMPRESS_THRESHOLD} bytes, "
            "incompressible messages sent plain)"
        )
    else:
        changes.append(f"compression off (library default {default_compression})")
    ping = settings["ping_interval"]
    if ping != defaults.ping_interval:
        changes.append(
            f"keepalive pings {_interval(ping)} "
            f"(library default {_interval(defaults.ping_interval)})"
        )
    queue = settings.get("max_queue", defaults.max_queue)
    if queue != defaults.max_queue:
        changes.append(f"receive queue {queue} messages (library default {defaults.max_queue})")
    return (
        f"blazews echo server on ws://{host}:{port}/ ({front_end}; "
        f"{_implementation_summary()}); Ctrl-C stops it\n"
        f"settings that differ from the library defaults: {'; '.join(changes)}"
    )


def _stop_on_sigterm(server: Any) -> None:
    """On SIGTERM, stop accepting and close every connection with 1001, then exit 0:
    what a process manager (systemd, Docker, Kubernetes) expects."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - no signals (Windows)
        pass


def _front_end(name: str, workers: int) -> str:
    return f"{name}, {workers} worker processes" if workers > 1 else name


async def _run_echo(
    host: str, port: int, max_size: int | None, compress: bool = True, workers: int = 1
) -> None:
    from .asyncio import serve

    settings = dict(_echo_settings(max_size, compress), max_queue=64, workers=workers)
    async with serve(_echo_handler, host, port, **settings) as server:
        front_end = _front_end("asyncio", workers)
        print(_echo_banner(host, server.port, front_end, settings, compress), flush=True)
        _stop_on_sigterm(server)
        await server.serve_forever()


async def _run_echo_listener(
    host: str, port: int, max_size: int | None, compress: bool = True, workers: int = 1
) -> None:
    from .asyncio import Listener, ListenerConnection, serve_listener
    from .exceptions import ConnectionClosed
    from .sansio.frames import MessageType

    class Echo(Listener):
        def on_message(
            self, conn: ListenerConnection, kind: MessageType, payload: memoryview
        ) -> None:
            try:
                conn.send(payload, kind)
            except ConnectionClosed:
                pass

    settings = dict(_echo_settings(max_size, compress), workers=workers)
    async with serve_listener(Echo, host, port, **settings) as server:
        front_end = _front_end("Listener", workers)
        banner = _echo_banner(host, server.port, front_end, settings, compress)
        print(banner, flush=True)
        _stop_on_sigterm(server)
        await server.serve_forever()


def _run_echo_sync(host: str, port: int, max_size: int | None, compress: bool = True) -> None:
    from . import sync
    from .exceptions import ConnectionClosed

    def handler(conn: Any) -> None:
        try:
            while True:
                conn.send(conn.recv())
        except ConnectionClosed:
            pass

    settings = _echo_settings(max_size, compress)
    with sync.serve(handler, host, port, **settings) as server:
        banner = _echo_banner(host, server.port, "blocking", settings, compress)
        print(banner, flush=True)

        def stop(signum: int, frame: Any) -> None:
            # shutdown waits for serve_forever, which this thread runs: from another.
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        server.serve_forever()


def _phrase(text: str) -> str:
    """Fit a library's or the OS's message into ours: lowercase start, no final period."""
    return text[:1].lower() + text[1:].rstrip(".")


def _os_error_reason(exc: OSError) -> str:
    """Say in a few lowercase words why a socket operation failed: ``"connection refused"``.

    When several addresses were tried (``localhost``: ``::1`` and ``127.0.0.1``) asyncio
    raises one :class:`OSError` listing every failure, without an ``errno``: they
    are summed up when they all failed the same way.
    """
    code = exc.errno
    if code is None:
        codes = set(re.findall(r"\[Errno (\d+)\]", str(exc)))
        if len(codes) == 1:
            code = int(codes.pop())
    if code is not None and code in errno.errorcode:
        reason = os.strerror(code)
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
    return _phrase(reason)


def _connect_failure(url: str, exc: Exception) -> str:
    """Say in one line why connecting to ``url`` failed.

    Args:
        url: The URL given on the command line.
        exc: What :func:`blazews.connect` raised.

    Returns:
        A lowercase message naming the URL and what went wrong.
    """
    from .exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    if isinstance(exc, InvalidURI):
        return f"invalid url: {exc}"
    if isinstance(exc, InvalidHandshake):
        reason = f"handshake failed: {exc}"
    elif isinstance(exc, ConnectionClosed):
        reason = "handshake failed: the server closed the connection"
    elif isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        reason = f"timed out: no handshake within {CONNECT_TIMEOUT:g} s"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"tls certificate verification failed: {_phrase(exc.verify_message)}"
    elif isinstance(exc, ssl.SSLError):
        what = exc.reason.replace("_", " ").lower() if exc.reason else _phrase(str(exc))
        reason = f"tls handshake failed: {what}"
    elif isinstance(exc, socket.gaierror):
        reason = f"host name lookup failed: {_os_error_reason(exc)}"
    elif isinstance(exc, OSError):
        reason = _os_error_reason(exc)
    else:
        reason = str(exc) or type(exc).__name__
    return f"cannot connect to {url}: {reason}"


_CONTROLS = {
    c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09,)
} | {c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_CONTROLS.update({0x0A: "\\n", 0x0D: "\\r"})


def _printable(text: str) -> str:
    """``text`` with the characters that would drive the terminal escaped: C0 and C1
    controls but tab (``\\n``, ``\\r``, ``\\x1b``...), DEL, and the bidirectional
    overrides (``\\u202e``...), which could disguise what a server sent."""
    return text.translate(_CONTROLS)


def _show_binary(data: bytes, hex_dump: bool) -> str:
    """A binary message as ``connect`` prints it: ``repr`` or hex bytes."""
    if hex_dump:
        return f"[{len(data)} bytes] {data.hex(' ')}"
    return repr(data)


def _client_options(
    url: str,
    headers: list[str],
    subprotocols: list[str],
    proxy: str | None,
    insecure: bool,
    ping: float | None,
) -> dict[str, Any]:
    """The options of :func:`blazews.connect` that ``connect``'s flags set.

    Raises:
        _CommandError: A header without a colon, or a bad proxy URL.
    """
    options: dict[str, Any] = {"open_timeout": CONNECT_TIMEOUT}
    pairs = []
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise _CommandError(f"invalid header {header!r}: use 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    if pairs:
        options["additional_headers"] = pairs
    if subprotocols:
        options["subprotocols"] = subprotocols
    if proxy is not None:
        options["proxy"] = None if proxy.lower() in ("none", "direct", "") else proxy
        if options["proxy"] is not None:
            from .sansio.proxy import parse_proxy

            try:
                parse_proxy(options["proxy"])
            except ValueError as exc:
                raise _CommandError(f"invalid proxy: {exc}") from None
    if insecure and url.lower().startswith("wss:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    if ping is not None:
        options["ping_interval"] = None  # the pings are the command's, and printed
    return options


async def _open(url: str, options: dict[str, Any] | None = None) -> ClientConnection:
    """Connect to ``url``.

    Returns:
        The open connection.

    Raises:
        _CommandError: The URL is invalid, the connection failed or the server
            refused the handshake.
    """
    from .asyncio import connect
    from .exceptions import BlazeWSError

    try:
        return await connect(url, **(options or {"open_timeout": CONNECT_TIMEOUT}))
    except (BlazeWSError, OSError, ImportError, asyncio.TimeoutError) as exc:
        raise _CommandError(_connect_failure(url, exc)) from exc


async def _run_connect(
    url: str,
    options: dict[str, Any] | None = None,
    *,
    hex_dump: bool = False,
    binary: bool = False,
    ping: float | None = None,
) -> None:
    from .exceptions import ConnectionClosed

    conn = await _open(url, options)
    pinging: asyncio.Future[None] | None = None
    try:
        agreed = f"; subprotocol {conn.subprotocol}" if conn.subprotocol else ""
        print(
            f"connected to {url} ({_implementation_summary()}){agreed}; "
            f"type a line to send it{' as binary' if binary else ''}, Ctrl-D to close",
            flush=True,
        )
        if ping is not None:
            pinging = asyncio.ensure_future(_pinger(conn, ping))
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, daemon=True).start()
        sent = received = 0
        last_activity = loop.time()
        activity = asyncio.Event()

        async def printer() -> None:
            nonlocal received, last_activity
            try:
                async for message in conn:
                    if isinstance(message, bytes):
                        print(f"< {_show_binary(message, hex_dump)}", flush=True)
                    else:
                        print(f"< {_printable(message)}", flush=True)
                    received += 1
                    last_activity = loop.time()
                    activity.set()
            except ConnectionClosed as exc:
                print(f"connection closed: {_printable(str(exc))}", flush=True)
            finally:
                activity.set()

        printing = asyncio.ensure_future(printer())
        while (line := await lines.get()) is not None:
            try:
                await conn.send(line.encode() if binary else line)
            except ConnectionClosed:
                break
            sent += 1
            last_activity = loop.time()
        # End of input (piped input ends at once): wait for the replies on their way,
        # as long as they keep coming, before closing.
        while received < sent and not printing.done():
            activity.clear()
            try:
                await asyncio.wait_for(
                    activity.wait(), last_activity + REPLY_GRACE_PERIOD - loop.time()
                )
            except asyncio.TimeoutError:
                break
        await conn.close()
        await printing
    finally:
        if pinging is not None:
            pinging.cancel()
        await conn.close()


async def _pinger(conn: ClientConnection, interval: float) -> None:
    """Ping every ``interval`` seconds and print each round trip."""
    from .exceptions import ConnectionClosed

    try:
        while True:
            pong = await conn.ping()
            latency = await pong
            print(f"% pong in {latency * 1000:.2f} ms", flush=True)
            await asyncio.sleep(interval)
    except ConnectionClosed:
        pass


def _run_bench(argv: list[str]) -> int:
    """Run the end-to-end benchmark (``blazews._bench.e2e``, part of the package)
    against whatever peers are installed."""
    from ._bench import e2e

    return e2e.main(argv, "python -m blazews bench")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, ``sys.argv[1:]`` if ``None``.

    Returns:
        The exit status: 0, 1 when the command failed (the reason is on stderr),
        2 for bad arguments.
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="python -m blazews",
        description=__doc__.split("\n")[0],
        # Prints the --version line as it is: the default formatter rewraps it.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"blazews {__version__} ({_implementation_summary()})",
        help="show the version and the implementation running (compiled or pure Python)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    echo = sub.add_parser("echo", help="run an echo server")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=8765)
    echo.add_argument("--sync", action="store_true", help="use the blocking front end")
    echo.add_argument(
        "--listener", action="store_true", help="use the asyncio callback API (Listener)"
    )
    echo.add_argument(
        "--max-message-size",
        type=int,
        default=ECHO_MAX_MESSAGE_SIZE,
        help="largest message accepted, in bytes; 0 for no limit (default 16 MiB)",
    )
    echo.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (SO_REUSEPORT, Linux), supervised: "
        "a dead one is restarted, SIGTERM drains them (default 1; not with --sync)",
    )
    echo.add_argument(
        "--no-compression",
        action="store_true",
        help="refuse permessage-deflate (by default it is accepted)",
    )
    serve = sub.add_parser(
        "serve", help="run the demo: a page with echo, chat and live statistics"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    connect = sub.add_parser("connect", help="interactive client")
    connect.add_argument("url")
    connect.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    connect.add_argument(
        "--subprotocol", action="append", default=[], help="offer a subprotocol (repeatable)"
    )
    connect.add_argument(
        "--proxy",
        help="connect through this proxy (http://, https://, socks5://, socks5h://, "
        "socks4://, socks4a://), or 'none'; default: HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY",
    )
    connect.add_argument(
        "--insecure",
        action="store_true",
        help="do not check the server's TLS certificate (wss://): for test servers only",
    )
    connect.add_argument(
        "--ping",
        type=float,
        metavar="SECONDS",
        help="ping every SECONDS and print each round trip (replaces the keepalive pings)",
    )
    connect.add_argument(
        "--hex", action="store_true", help="print binary messages as hex bytes, not repr"
    )
    connect.add_argument(
        "--binary", action="store_true", help="send each line as a binary message (UTF-8)"
    )
    sub.add_parser(
        "bench",
        help="run the end-to-end benchmarks against websockets, aiohttp and picows "
        "(whichever of them are installed; 'bench --help' for its options)",
        add_help=False,
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return _run_bench(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "echo":
            size = args.max_message_size or None
            if args.workers < 1 or (args.sync and args.workers > 1):
                parser.error("--workers must be at least 1, and 1 with --sync")
            compress = not args.no_compression
            try:
                if args.sync:
                    _run_echo_sync(args.host, args.port, size, compress)
                elif args.listener:
                    run = _run_echo_listener(args.host, args.port, size, compress, args.workers)
                    asyncio.run(run)
                else:
                    asyncio.run(_run_echo(args.host, args.port, size, compress, args.workers))
            except OSError as exc:  # the address is taken, or not ours to listen on
                where = f"{args.host}:{args.port}"
                raise _CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        elif args.command == "serve":
            from ._demo import run as run_demo

            try:
                asyncio.run(run_demo(args.host, args.port))
            except OSError as exc:
                where = f"{args.host}:{args.port}"
                raise _CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        else:
            if args.ping is not None and not args.ping > 0:
                parser.error("--ping needs a number of seconds above 0")
            options = _client_options(
                args.url, args.header, args.subprotocol, args.proxy, args.insecure, args.ping
            )
            if args.insecure:
                print(
                    "blazews: warning: --insecure: the server's certificate is not checked; "
                    "anyone on the path can read and change this connection",
                    file=sys.stderr,
                )
            run = _run_connect(
                args.url, options, hex_dump=args.hex, binary=args.binary, ping=args.ping
            )
            asyncio.run(run)
    except KeyboardInterrupt:
        pass
    except _CommandError as exc:
        print(f"blazews: error: {exc}", file=sys.stderr)
        return 1
    return 0
