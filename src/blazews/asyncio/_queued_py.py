"""What a coroutine-API connection does per message: queue what a read brought, hand
it to ``recv``, ``read_message``, ``read_message_into`` and ``async for``, and send;
written once for two builds.

:class:`~blazews.asyncio.Connection` is a thin shell over these functions: its
``_dispatch`` is :func:`queue_dispatch` (the read path, :mod:`._readpath_py`, hands
it the events of each read), its ``recv``, ``read_message``, ``read_message_into``
and ``send`` are :func:`recv`, :func:`read_message`, :func:`read_message_into` and
:func:`send` in the compiled build (the pure build's methods call them), and
``async for`` iterates :class:`Messages`. Each takes the connection as ``conn`` and
reaches its read path as ``conn._rx``; what goes beyond the common case goes back to
the connection's Python methods, named at each function.

Like the read path, Cython compiles this file (as the module ``_queued_c``, typed by
``_queued_c.pxd``, which cimports the read path's ``ReadPath``); :mod:`._receive`
picks the build, the same as the read path's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ..sansio._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

from ..exceptions import ConcurrencyError, ConnectionClosedOK

if cython.compiled:  # the kernels' C functions
    from cython.cimports.blazews._native._kernels import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        done,
        ready,
    )

if TYPE_CHECKING:
    from ..sansio.protocol import MessageQueue as Queue
    from ..sansio.protocol import Protocol as CoreProtocol
    from ._readpath_py import ReadPath as Path

__all__ = [
    "COMPILED",
    "FULL_READS",
    "SEND_BATCH",
    "Messages",
    "completed",
    "queue_dispatch",
    "read_message",
    "read_message_into",
    "recv",
    "recv_waiter",
    "send",
    "send_now",
    "sent",
    "write_soon",
]

# Whether this is the compiled build of the module (connection.py then calls its
# functions directly, see there).
COMPILED: bool = cython.compiled

# Reads that may find the queue holding ``max_queue`` messages before its reader has
# had a turn (see queue_dispatch): the queue's bound is max_queue messages and what
# this many reads bring (a read fills the receive buffer at most: 80 KiB, or a large
# frame and its read-ahead).
FULL_READS = 4


def queue_dispatch(conn: Any, events: list[Any]) -> None:
    """``_dispatch`` of a connection that queues its messages: queue them (in C), then
    handle the other events in order (nothing in them, pongs or the close, depends on
    the messages' turn); wake the reader; pause reading at ``max_queue``.

    Not at once: a reader that takes every message it finds (``async for``) empties
    the queue in the turn its wake-up gives it, and pausing then resuming the
    transport on every read would cost two system calls per read for nothing. A read
    that finds the queue full has ``conn._check_queue`` called after that turn (it
    pauses if the queue is still full); the ``conn._full_reads``-th such read before
    then (``FULL_READS``; the loop reads a socket up to 32 times in a row while data
    comes) pauses. A class whose contract is to pause at once sets it to 1."""
    queue: Queue = conn._queue
    before = len(queue)
    others = queue.queue_messages(events)
    if others is not None:
        conn._other_events(others)
    if len(queue) != before:
        waiter = conn._recv_waiter
        if waiter is not None:
            conn._recv_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if queue.pending() >= conn.max_queue and not queue.paused:
            limit = conn._full_reads
            if queue.full_reads == 0 and limit > 1:
                conn.loop.call_soon(conn._check_queue)
            queue.full_reads += 1
            if queue.full_reads >= limit:
                conn._pause_queue()


# -- sending ---------------------------------------------------------------------------

# The most bytes of messages sent while received ones are queued that wait to be
# written together (see sent); a larger message, or more, go at once.
SEND_BATCH = 65536


def send(conn: Any, data: Any, *, compress: bool = True) -> Any:
    """``Connection.send``: see there."""
    return send_now(conn, data, compress)


def send_now(conn: Any, data: Any, compress: bool) -> Any:
    """``Connection.send``: its common case (a ``bytes`` or ``str`` payload, or any
    bytes-like one on a connection that does not keep it; no send in line before it;
    nothing compressed in a worker thread) here, the rest in ``conn._send_rest``."""
    kind = type(data)
    if (
        (kind is bytes or kind is str or not conn._kept_from)
        and conn._send_chain is None
        and (conn._deflate is False or not compress)
    ):
        protocol: CoreProtocol = conn.protocol
        try:
            protocol.send_data(data, compress=compress)
        except Exception as exc:  # (raised by the await, as by a coroutine)
            return conn._failed(exc)
        return sent(conn, len(data))
    return conn._send_rest(data, compress)


def write_soon(conn: Any, size: int) -> None:
    """Have the frames a send of ``size`` bytes left in the core written at the end of
    this turn of the loop (``conn._write_now``), with those of the other sends made
    meanwhile: one write, one TCP segment for them. Past ``SEND_BATCH`` bytes they
    are written at once: what waits is bounded, and a sender that never yields
    still meets backpressure. Anything else written meanwhile (a close, a pong)
    comes out of the core after them, in order."""
    c: Path = conn._rx
    pending = conn._unwritten
    total = pending + size + 1  # (+1: an empty message counts)
    if total > SEND_BATCH:
        c._flush()
        conn._unwritten = 1 if pending else 0  # (1: a call scheduled finds nothing)
    else:
        conn._unwritten = total
        if pending == 0:
            c.loop.call_soon(conn._write_now)


def sent(conn: Any, size: int) -> Any:
    """The end of a ``send`` whose message of ``size`` the core holds: write it, or
    have it written with the others at the end of this turn (while received messages
    are still queued: an echo working through the messages of one read: one write,
    one TCP segment for them, up to ``SEND_BATCH`` bytes); return the completed
    awaitable, or the coroutine that waits for the write buffer to drain."""
    c: Path = conn._rx
    if not c._writing_paused and c._out is None:
        queue: Queue = conn._queue
        if len(queue) != 0 and size <= SEND_BATCH:
            write_soon(conn, size)
        else:  # (none left to answer in this turn: all that waits goes now)
            c._flush()
        if not c._writing_paused and c._out is None:
            return done(None) if cython.compiled else _Done(None)
    else:
        c._flush()
    return conn._drain_after_send()


_GIVEN = object()


class _Done:
    """The pure build's completed awaitable: ``await`` gives ``value``, once, as the
    compiled build's does (a C type, ``blazews._native._kernels.Done``, which runs no
    frame at all). ``send``, ``throw`` and ``close`` are a coroutine's."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def _take(self) -> Any:
        value = self.value
        if value is _GIVEN:
            raise RuntimeError("cannot reuse already awaited result")
        self.value = _GIVEN
        return value

    def __await__(self) -> Any:
        return self._take()
        yield  # (a generator that returns at once)

    def send(self, arg: Any) -> Any:
        if arg is not None and self.value is not _GIVEN:
            raise TypeError("can't send non-None value to a just-started coroutine")
        raise StopIteration(self._take())

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.value = _GIVEN
        raise typ if val is None else typ(val) if isinstance(typ, type) else typ

    def close(self) -> None:
        self.value = _GIVEN


def completed(value: Any) -> Any:
    """A completed awaitable whose ``await`` gives ``value`` (once): for a call whose
    work is done when it returns (a ``send`` written at once). Compiled, a C object
    that runs no frame; pure, :class:`_Done`."""
    return done(value) if cython.compiled else _Done(value)


@cython.cclass
class Messages:
    """The iterator of ``async for message in conn`` on a coroutine-API connection.

    When a message is queued, ``__anext__`` takes it and returns a completed awaitable
    (compiled: a C object whose ``await`` gives the message through ``am_send``: no
    coroutine frame, no Future, no turn of the loop); otherwise, or for a payload lent
    by a large receive buffer, it returns a read that waits as ``recv()`` does
    (compiled: a ``Ready``, see :func:`recv`; pure: the connection's ``_anext()``
    coroutine). Iteration ends (``StopAsyncIteration``) on a
    normal close, as ``recv()`` raising ``ConnectionClosedOK`` would.
    """

    __slots__ = ("_conn", "_queue")

    def __init__(self, conn: Any) -> None:
        self._conn: Any = conn
        self._queue: Queue = conn._queue

    def __aiter__(self) -> Messages:
        return self

    def __anext__(self) -> Any:
        value = _ready(self._queue)
        if value is not None:
            return done(value) if cython.compiled else _Done(value)
        if cython.compiled:
            return ready(self._conn, None, _take_recv, _block_anext, _wait_anext)
        return self._conn._anext()


def _take_bytes(queue: Queue) -> Any:
    """Take the oldest queued message if its payload is ``bytes``; ``None`` if none is
    queued or its payload is a view lent by a large receive buffer (the coroutine
    copies it out and lets the buffer go)."""
    message = queue.peek()
    if message is None or type(message.data) is not bytes:
        return None
    queue._advance()
    return message


def _ready(queue: Queue) -> Any:
    """Take the oldest queued message (see ``_take_bytes``) and return it as
    ``recv()`` does: ``str`` for text, ``bytes`` for binary; or ``None``."""
    message = _take_bytes(queue)
    if message is None:
        return None
    data = message.data
    return data.decode() if message.type == 1 else data


# -- recv(), read_message(), read_message_into() --------------------------------------
#
# Each returns, compiled, a read without a coroutine (the C type Ready of
# _native/ready.h), which behaves as the coroutine it stands for (``_recv``,
# ``_read_message``, ``_read_message_into`` of the connection): the message is taken
# at a step, never at the call, so a read dropped unawaited, or in a task cancelled
# before it ran, takes nothing. A step takes a queued message (``_take_*`` below),
# or waits on the future the next message completes (``_block``, through
# ``recv_waiter``), or (a timeout to keep, a payload lent by a large receive buffer,
# read_message_into's wait, which offers its buffer to the read path) hands its
# steps to that coroutine (``_wait_*``). The pure build returns the coroutine: the
# same behaviour, a frame more.


def recv(conn: Any, timeout: float | None = None) -> Any:
    """``Connection.recv``: see there."""
    if cython.compiled:
        return ready(conn, timeout, _take_recv, _block, _wait_recv)
    return conn._recv(timeout)


def read_message(conn: Any, timeout: float | None = None) -> Any:
    """``Connection.read_message``: see there."""
    if cython.compiled:
        return ready(conn, timeout, _take_message, _block, _wait_message)
    return conn._read_message(timeout)


def read_message_into(conn: Any, buf: Any) -> Any:
    """``Connection.read_message_into``: see there."""
    if cython.compiled:
        return ready(conn, buf, _take_into, cython.NULL, _wait_into)
    return conn._read_message_into(buf)


def recv_waiter(conn: Any) -> Any:
    """``Connection._waiter``: a future that the next queued message (or the end of
    the connection) completes, for a reader to await directly: no coroutine of its
    own between the reader and the loop. The connection's ``_wake_reader`` (or
    ``queue_dispatch``) lets go of it; one left behind by a cancelled reader is done,
    so it stands in nobody's way."""
    protocol: CoreProtocol = conn.protocol
    if not protocol.receiving or conn._lost:
        raise protocol.close_exc()
    waiter = conn._recv_waiter
    if waiter is not None and not waiter.done():
        raise ConcurrencyError("another coroutine is already waiting for the next message")
    waiter = conn.loop.create_future()
    conn._recv_waiter = waiter
    return waiter


def _take_recv(conn: Any, timeout: Any) -> Any:
    return _ready(conn._queue)


def _take_message(conn: Any, timeout: Any) -> Any:
    queue: Queue = conn._queue
    message = _take_bytes(queue)
    if message is None:
        return None
    return (queue.kinds[message.type], message.data)


def _take_into(conn: Any, buf: Any) -> Any:
    queue: Queue = conn._queue
    return queue.take_into(buf)


def _block(conn: Any, timeout: Any) -> Any:
    """The future to wait on for the next message, marked as ``await future`` marks
    it for the task; None where the coroutine must go on (a timeout, or a queued
    payload that ``_take_*`` left: lent by a large receive buffer)."""
    queue: Queue = conn._queue
    if timeout is not None or len(queue) != 0:
        return None
    waiter = recv_waiter(conn)
    waiter._asyncio_future_blocking = True
    return waiter


def _block_anext(conn: Any, unused: Any) -> Any:
    """``_block`` for ``async for``: a normal close ends the iteration."""
    try:
        return _block(conn, None)
    except ConnectionClosedOK:
        raise StopAsyncIteration from None


def _wait_recv(conn: Any, timeout: Any) -> Any:
    return conn._recv(timeout)


def _wait_message(conn: Any, timeout: Any) -> Any:
    return conn._read_message(timeout)


def _wait_into(conn: Any, buf: Any) -> Any:
    return conn._read_message_into(buf)


def _wait_anext(conn: Any, unused: Any) -> Any:
    return conn._anext()
