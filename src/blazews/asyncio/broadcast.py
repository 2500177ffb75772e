"""``broadcast``: one message to many asyncio connections, framed once.

The frame is built by the core (:class:`~blazews.sansio.broadcast.PreparedMessage`):
once for every connection that encodes the message the same way, and compressed once
per permessage-deflate setting among connections that keep no compression context.
Each connection's frame is then handed to its transport, in one plain call: no
``await``, no task, no future per connection. A transport writes at once what the
socket takes and buffers the rest, so the loop never blocks; a connection whose
write buffer is over its high-water mark (``write_limit``) is a slow consumer, and
gets the caller's policy (``slow``) instead of growing its buffer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..sansio.broadcast import DEFAULT_MAX_QUEUED, BroadcastResult, PreparedMessage, check_policy
from ..sansio.states import State
from ._receive import SendHandle, write_frame_all

if TYPE_CHECKING:
    from .._typing import Data
    from .base import BaseConnection

__all__ = ["broadcast"]

logger = logging.getLogger("blazews")

_OPEN = State.OPEN
SLOW_REASON = "slow consumer: write buffer full"


def _connection(conn: Any) -> BaseConnection:
    """The connection underneath a :class:`~blazews.ListenerConnection` handle."""
    return conn._conn if isinstance(conn, SendHandle) else conn  # type: ignore[no-any-return]


def cut_off(conn: BaseConnection, code: int, reason: str = SLOW_REASON) -> None:
    """Close a connection that does not read: its close frame is queued behind what
    is buffered, and the TCP connection is dropped after ``close_timeout`` if it has
    not drained by then (a peer that does not read may never let it)."""
    conn.protocol.fail(code, reason)
    conn._process()  # the close frame, then FIN (see BaseConnection._shut_down)
    transport = conn.transport
    timeout = conn.options.close_timeout
    if transport is not None and timeout is not None:
        conn.loop.call_later(timeout, transport.abort)


def broadcast(
    connections: Iterable[Any],
    message: Data,
    *,
    compress: bool = True,
    slow: str = "skip",
    max_queued: int = DEFAULT_MAX_QUEUED,
    close_code: int = 1008,
) -> BroadcastResult:
    """Send ``message`` to every open connection of ``connections``; never waits.

    The frame is built once for every connection that sends it the same way (all
    those without compression; with permessage-deflate, it is compressed once per
    compression setting among the connections that keep no context, the server's
    default) and written to each connection's transport in a plain call: no
    ``await``, no task per connection. It may be called from any code running in
    the connections' event loop (a handler, a Listener callback, a task), not from
    another thread.

    Args:
        connections: Coroutine-API connections (:class:`~blazews.ServerConnection`,
            :class:`~blazews.ClientConnection`), :class:`~blazews.ListenerConnection`
            handles or the connections of :attr:`Server.connections`, mixed freely.
            Those not open are counted and left out.
        message: ``str`` (text) or a bytes-like object (binary), copied once.
        compress: ``False`` sends it uncompressed even with permessage-deflate.
        slow: What a connection whose write buffer is over its high-water mark
            (``write_limit``) gets: ``"skip"`` (the default: it does not get this
            message; counted in ``skipped``), ``"queue"`` (it gets it buffered
            while its buffer stays within ``max_queued`` bytes, else it is closed),
            ``"close"`` (closed at once). None of them lets one slow connection
            hold up the others, and none lets its buffer grow without bound.
        max_queued: The ``"queue"`` policy's cap: bytes a connection may hold in
            its write buffer, this message included (1 MiB).
        close_code: The code a slow connection is closed with: 1008 (policy
            violation, the default) or 1013 (try again later).

    Returns:
        A :class:`~blazews.BroadcastResult`: ``delivered``, ``skipped``, ``closed``
        and ``not_open`` counts.

    Raises:
        ValueError: An unknown policy, a negative ``max_queued``, or a close code
            other than 1008 or 1013.

    A connection being closed for being slow gets its close frame behind what it has
    buffered, and is dropped after its ``close_timeout`` if that does not drain.
    """
    check_policy(slow, max_queued, close_code)
    prepared = PreparedMessage(message, compress=compress)
    plain: PreparedMessage | None = None
    delivered = skipped = closed = not_open = 0
    frame_for = prepared.frame_for
    queue = slow == "queue"
    items = connections if type(connections) is list else list(connections)
    if not queue:
        # The common case in one compiled loop: open server connections that are not
        # slow and share a prepared frame. The others come back in rest.
        rest: list[Any] = []
        delivered = write_frame_all(items, prepared.plain_frame(), frame_for, rest)
        items = rest
    for item in items:
        conn = item._conn if isinstance(item, SendHandle) else item
        protocol = conn.protocol
        transport = conn.transport
        if protocol.state is not _OPEN or transport is None:
            not_open += 1
            continue
        if conn._rx._writing_paused or conn._rx._out is not None:
            if slow == "skip":
                skipped += 1
                continue
            if not queue or transport.get_write_buffer_size() > max_queued:
                cut_off(conn, close_code)
                closed += 1
                continue
        frame = frame_for(protocol)
        if frame is not None:
            protocol.send_prepared(frame)
        else:
            chain = getattr(conn, "_send_chain", None)
            if chain is not None and not chain.done():
                # A large message is being compressed in a thread with this
                # connection's compressor: this one goes uncompressed, leaving the
                # compressor alone.
                if plain is None:
                    plain = PreparedMessage(message, compress=False)
                plain.send_to(protocol)
            else:
                prepared.send_to(protocol)
        conn._flush()
        delivered += 1
        if queue and transport.get_write_buffer_size() > max_queued:
            cut_off(conn, close_code)
            delivered -= 1
            closed += 1
    return BroadcastResult(delivered, skipped, closed, not_open)
