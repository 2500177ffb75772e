"""The blocking front end: :func:`connect`, :func:`serve`, :class:`Connection` and
:class:`FrameReader`.

The same API as :mod:`blazews.asyncio`, without ``await``::

    from blazews import sync

    def echo(conn):
        for message in conn:
            conn.send(message)

    with sync.serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

    with sync.connect("ws://127.0.0.1:8765/") as conn:
        conn.send("hello")
        print(conn.recv())
"""

from .broadcast import broadcast
from .client import ClientConnection, connect, reconnect
from .connection import Connection, PongWaiter
from .frame_reader import FrameReader
from .server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "FrameReader",
    "PongWaiter",
    "Server",
    "ServerConnection",
    "broadcast",
    "connect",
    "reconnect",
    "serve",
]
