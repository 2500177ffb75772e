"""The command line: ``python -m blazews echo``, ``connect`` and ``bench``.

``echo`` runs an echo server (every message is sent back with its type): the peer
the conformance and interoperability tests use. ``connect`` is an interactive client:
each line typed is sent as a text message, each message received is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

ECHO_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


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


async def _run_echo(host: str, port: int, max_size: int | None, compress: bool = True) -> None:
    from .asyncio import serve

    async with serve(
        _echo_handler,
        host,
        port,
        max_message_size=max_size,
        ping_interval=None,
        max_queue=64,
        extensions=_echo_extensions(compress),
        compression=None,
    ) as server:
        print(
            f"blazews echo server on ws://{host}:{server.port}/ (asyncio); Ctrl-C stops it",
            flush=True,
        )
        await server.serve_forever()


async def _run_echo_listener(
    host: str, port: int, max_size: int | None, compress: bool = True
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

    async with serve_listener(
        Echo,
        host,
        port,
        max_message_size=max_size,
        ping_interval=None,
        extensions=_echo_extensions(compress),
        compression=None,
    ) as server:
        print(
            f"blazews echo server on ws://{host}:{server.port}/ (Listener); Ctrl-C stops it",
            flush=True,
        )
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

    with sync.serve(
        handler,
        host,
        port,
        max_message_size=max_size,
        ping_interval=None,
        extensions=_echo_extensions(compress),
        compression=None,
    ) as server:
        print(
            f"blazews echo server on ws://{host}:{server.port}/ (blocking); Ctrl-C stops it",
            flush=True,
        )
        server.serve_forever()


async def _run_connect(url: str) -> None:
    from .asyncio import connect
    from .exceptions import ConnectionClosed

    async with connect(url) as conn:
        print(f"connected to {url}; type a line to send it, Ctrl-D to close", flush=True)
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, daemon=True).start()

        async def printer() -> None:
            try:
                async for message in conn:
                    print(
                        f"< {message!r}" if isinstance(message, bytes) else f"< {message}",
                        flush=True,
                    )
            except ConnectionClosed as exc:
                print(f"connection closed: {exc}", flush=True)

        printing = asyncio.ensure_future(printer())
        while (line := await lines.get()) is not None:
            try:
                await conn.send(line)
            except ConnectionClosed:
                break
        await conn.close()
        await printing


def _run_bench(argv: list[str]) -> int:
    """Run ``benchmarks.e2e`` (it lives in the source tree, not in the package)."""
    import importlib

    try:
        e2e = importlib.import_module("benchmarks.e2e")
    except ImportError:
        print(
            "the benchmarks live in the blazews source tree: run this from its root "
            "(or use 'make bench'), with the bench extra installed",
            file=sys.stderr,
        )
        return 2
    return int(e2e.main(argv, "python -m blazews bench"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m blazews", description=__doc__.split("\n")[0])
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
        "--no-compression",
        action="store_true",
        help="refuse permessage-deflate (by default it is accepted)",
    )
    connect = sub.add_parser("connect", help="interactive client")
    connect.add_argument("url")
    sub.add_parser(
        "bench",
        help="run the end-to-end benchmarks against websockets, aiohttp and picows "
        "(from a source checkout; options after 'bench' go to benchmarks.e2e)",
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
            if args.sync:
                _run_echo_sync(args.host, args.port, size, not args.no_compression)
            elif args.listener:
                asyncio.run(_run_echo_listener(args.host, args.port, size, not args.no_compression))
            else:
                asyncio.run(_run_echo(args.host, args.port, size, not args.no_compression))
        else:
            asyncio.run(_run_connect(args.url))
    except KeyboardInterrupt:
        pass
    return 0
