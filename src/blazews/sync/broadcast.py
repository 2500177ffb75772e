"""``broadcast`` for the blocking front end: one message to many connections, framed
once, written without blocking; thread-safe.

The frames are the core's (:class:`~blazews.sansio.broadcast.PreparedMessage`), as for
:func:`blazews.broadcast`. Each connection's frame goes to its outbox under the
connection's lock, and as much of the outbox as the socket takes at once is written
with non-blocking sends (``MSG_DONTWAIT``): a peer that does not read never blocks
the caller. What the socket did not take stays in the outbox, in order, and is
written by the connection's next writer (a ``send``, a ``ping``, the reader thread
after a read, or the next broadcast).

A slow consumer is a connection whose socket holds more unsent bytes than
``write_limit`` (``SIOCOUTQ``, Linux; elsewhere only the outbox counts), or whose
outbox is not empty, or whose writer is busy (another thread is blocked writing
to it). TLS connections cannot send without blocking this way: their frames are
written by the connection's own (blocking) writer, unless they are slow.
"""

from __future__ import annotations

import fcntl
import socket
import ssl
import struct
import termios
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..sansio.broadcast import DEFAULT_MAX_QUEUED, BroadcastResult, PreparedMessage, check_policy
from ..sansio.frames import MaskLater
from ..sansio.states import State
from .connection import Connection

if TYPE_CHECKING:
    from .._typing import Data

__all__ = ["broadcast"]

_OPEN = State.OPEN
_OUTQ = getattr(termios, "TIOCOUTQ", None)  # == SIOCOUTQ on Linux
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_INT = struct.Struct("i")
SLOW_REASON = "slow consumer: write buffer full"


def _unsent(sock: socket.socket) -> int:
    """Bytes the kernel holds that the peer has not acknowledged, where known."""
    if _OUTQ is None:
        return 0
    try:
        return int(_INT.unpack(fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return 0


def _outbox_size(conn: Connection) -> int:
    return sum(len(memoryview(c)) if type(c) is not MaskLater else c.length for c in conn._outbox)


def _push(conn: Connection) -> None:
    """Write as much of the outbox as the socket takes now; called with the lock held
    and no writer active. The rest stays at the head of the outbox, in order."""
    sock = conn.socket
    if isinstance(sock, ssl.SSLSocket) or not _DONTWAIT:
        conn._flush_locked()  # (blocking: see the module's notes)
        return
    outbox = conn._outbox
    done = 0
    try:
        for i, chunk in enumerate(outbox):
            if type(chunk) is MaskLater:
                break
            view = memoryview(chunk)
            sent = sock.send(view, _DONTWAIT)
            if sent < len(view):
                outbox[i] = view[sent:]
                break
            done += 1
    except BlockingIOError:
        pass
    except OSError as exc:
        if conn._write_error is None:
            conn._write_error = exc
            conn._write_error_at = conn._written + done
        conn._shutdown(socket.SHUT_RDWR)
    if done:
        del outbox[:done]
        conn._written += done
        conn._cond.notify_all()


def _cut_off(conn: Connection, code: int) -> None:
    """Close a slow connection at once: its close frame if the socket takes it now,
    then the end of the TCP connection (the reader thread finishes it)."""
    conn.protocol.fail(code, SLOW_REASON)
    conn._absorb()
    if not conn._writing:
        _push(conn)
    conn._shutdown(socket.SHUT_RDWR)


def broadcast(
    connections: Iterable[Connection],
    message: Data,
    *,
    compress: bool = True,
    slow: str = "skip",
    max_queued: int = DEFAULT_MAX_QUEUED,
    close_code: int = 1008,
    write_limit: int = 65536,
) -> BroadcastResult:
    """Send ``message`` to every open connection of ``connections``; never blocks.

    The blocking counterpart of :func:`blazews.broadcast`, with the same frames
    built once and the same slow-consumer policies; it may be called from any
    thread, beside the connections' own ``send`` calls.

    Args:
        connections: :class:`blazews.sync.Connection` objects (server or client;
            server connections share the frames).
        message: ``str`` (text) or a bytes-like object (binary).
        compress: ``False`` sends it uncompressed even with permessage-deflate.
        slow: ``"skip"``, ``"queue"`` or ``"close"``, as for
            :func:`blazews.broadcast`.
        max_queued: The ``"queue"`` policy's cap on the bytes a connection holds
            unsent (in its outbox and its socket), this message included (1 MiB).
        close_code: 1008 (the default) or 1013.
        write_limit: The high-water mark, in bytes the socket holds unsent, over
            which a connection counts as slow (64 KiB).

    Returns:
        A :class:`~blazews.BroadcastResult`.

    Raises:
        ValueError: As for :func:`blazews.broadcast`.
    """
    check_policy(slow, max_queued, close_code)
    prepared = PreparedMessage(message, compress=compress)
    delivered = skipped = closed = not_open = 0
    for conn in connections:
        with conn._cond:
            if conn.protocol.state is not _OPEN or conn._finished or conn._write_error:
                not_open += 1
                continue
            busy = conn._writing or bool(conn._outbox)
            held = _unsent(conn.socket) + (_outbox_size(conn) if busy else 0)
            if busy or held > write_limit:
                if slow == "skip":
                    skipped += 1
                    continue
                size = len(prepared.frame_for(conn.protocol) or prepared.payload)
                if slow == "close" or held + size > max_queued:
                    _cut_off(conn, close_code)
                    closed += 1
                    continue
            prepared.send_to(conn.protocol)
            conn._absorb()
            if not conn._writing:
                _push(conn)
            delivered += 1
    return BroadcastResult(delivered, skipped, closed, not_open)
