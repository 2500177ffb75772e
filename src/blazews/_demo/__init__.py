"""The demo of ``python -m blazews serve`` (``make run``): one server, one port.

``GET /`` (a plain HTTP request) gets the demo page, answered by the server's
``process_request`` hook: no web framework. A WebSocket at any other path than
``/ws`` is an echo server (every message back with its type, as ``python -m blazews
echo``): ``make run`` serves the README's clients too. The page opens a WebSocket to
``/ws``, served by a :class:`~blazews.Listener` (the callback fast path), and speaks
JSON text messages:

- ``{"type": "echo", "text": ...}`` comes back to its sender as it is;
- ``{"type": "chat", "name": ..., "text": ...}`` goes to everyone connected;
- ``{"type": "ping", "t": ...}`` is answered ``{"type": "pong", "t": ...}`` at once:
  the page measures the round-trip time with it;
- a binary message is echoed as it is (the page's burst of echoes uses them).

Once a second every page gets ``{"type": "stats", ...}``: the connections, the
messages the server received in the last second and in all. A page that does not read
(its write buffer above ``write_limit``) misses chat and statistics messages instead of
growing the server's memory: the slow consumer policy is to skip.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..asyncio import Listener, ListenerConnection, broadcast, serve_listener
from ..sansio.frames import MessageType
from ..sansio.http11 import Request, Response

__all__ = ["Demo", "main", "run"]

MAX_NAME = 32
"""Longest chat name kept, in characters."""
MAX_TEXT = 500
"""Longest chat or echo text kept, in characters."""
STATS_INTERVAL = 1.0
"""Seconds between two statistics messages."""


def page() -> bytes:
    """The demo page, read from the package data."""
    return resources.files(__package__).joinpath("index.html").read_bytes()


class Demo:
    """The demo's shared state: who is connected, and what they sent.

    Args:
        html: The page served at ``/``.
    """

    def __init__(self, html: bytes | None = None) -> None:
        self.html = page() if html is None else html
        self.clients: dict[ListenerConnection, str] = {}
        self.received = 0
        self._received_before = 0
        self._next_guest = 1
        self._timer: asyncio.TimerHandle | None = None

    # The HTTP side: the page, and a 404 for anything but the page and the socket.

    def process_request(self, conn: Any, request: Request) -> Response | None:
        """Answer a plain HTTP request with the page; let WebSocket handshakes through.

        A request whose ``Origin`` names another host than the one it was sent to
        is refused (403): other sites' pages may not join the chat.
        """
        path = urlsplit(request.path).path
        headers = request.headers
        origin = headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != headers.get("Host"):
            return conn.reject(403, "Forbidden: cross-origin request\n")  # type: ignore[no-any-return]
        if "websocket" in headers.get("Upgrade", "").lower():
            return None  # /ws: the page's socket; elsewhere: the echo
        if path in ("/", "/index.html"):
            return conn.reject(  # type: ignore[no-any-return]
                200,
                self.html,
                [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
            )
        return conn.reject(404, "Not Found\n")  # type: ignore[no-any-return]

    # The WebSocket side.

    def join(self, conn: ListenerConnection) -> str:
        name = f"guest-{self._next_guest}"
        self._next_guest += 1
        self.clients[conn] = name
        return name

    def leave(self, conn: ListenerConnection) -> None:
        self.clients.pop(conn, None)

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every client that keeps up; skip the others.

        One frame built for all (:func:`blazews.broadcast`), written in plain calls.
        """
        broadcast(self.clients, json.dumps(message), slow="skip")

    def start(self) -> None:
        """Send the statistics once a second, from now on."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(STATS_INTERVAL, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        per_second = self.received - self._received_before
        self._received_before = self.received
        self.broadcast(
            {
                "type": "stats",
                "connections": len(self.clients),
                "messages_per_second": per_second,
                "messages": self.received,
                "time": time.time(),
            }
        )
        self.start()


class _Client(Listener):
    """One page's connection."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.echo = False

    def on_connect(self, conn: ListenerConnection) -> None:
        request = conn.request
        if request is None or urlsplit(request.path).path != "/ws":
            self.echo = True  # a plain echo: no JSON, no chat, not counted
            return
        name = self.demo.join(conn)
        conn.send(json.dumps({"type": "hello", "name": name}))
        self.demo.broadcast({"type": "system", "text": f"{name} joined"})

    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        if self.echo:
            conn.send(payload, kind)
            return
        demo = self.demo
        demo.received += 1
        if kind is MessageType.BINARY:
            conn.send(payload, kind)
            return
        try:
            message = json.loads(bytes(payload))
            what = message["type"]
        except (ValueError, TypeError, KeyError):
            conn.send(json.dumps({"type": "error", "text": "expected a JSON object with a type"}))
            return
        if what == "ping":
            conn.send(json.dumps({"type": "pong", "t": message.get("t")}))
        elif what == "echo":
            conn.send(json.dumps({"type": "echo", "text": str(message.get("text", ""))}))
        elif what == "chat":
            name = str(message.get("name") or demo.clients.get(conn, "guest"))[:MAX_NAME]
            text = str(message.get("text", ""))[:MAX_TEXT]
            if text:
                demo.broadcast({"type": "chat", "name": name, "text": text})
        else:
            conn.send(json.dumps({"type": "error", "text": f"unknown type {what!r}"}))

    def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
        name = self.demo.clients.get(conn)
        self.demo.leave(conn)
        if name is not None:
            self.demo.broadcast({"type": "system", "text": f"{name} left"})


def serve(demo: Demo, host: str, port: int) -> serve_listener:
    """Start serving the demo (``async with`` it, or await it)."""
    return serve_listener(
        lambda: _Client(demo),
        host,
        port,
        process_request=demo.process_request,
    )


async def run(host: str = "127.0.0.1", port: int = 8765, *, banner: bool = True) -> None:
    """Serve the demo until SIGTERM or Ctrl-C.

    Args:
        host: The address to listen on.
        port: The port (0: any free one; the banner says which).
        banner: Print the page's URL once listening.
    """
    demo = Demo()
    async with serve(demo, host, port) as server:
        if banner:
            shown = f"[{host}]" if ":" in host else host
            print(f"blazews demo: open http://{shown}:{server.port}/ in a browser", flush=True)
        demo.start()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, server.close)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
        try:
            await server.serve_forever()
        finally:
            demo.stop()


def main(host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run :func:`run` in a new event loop."""
    asyncio.run(run(host, port))
