"""The asyncio :class:`Connection`: the coroutine API (``recv``, ``async for``, ``send``).

It is a :class:`~blazews.asyncio.base.BaseConnection` (the transport, the core's
glue, pings, keepalive, closing) whose received messages go to a queue.

Receiving: the connection is an :class:`asyncio.BufferedProtocol`; the event loop
reads straight into its receive buffer (:mod:`._receive`: pooled, grown for large
frames, given back when idle, so an idle connection holds none), and
``buffer_updated`` hands the new bytes to the core in place
(:meth:`~blazews.Protocol.receive_into_buffer`): offsets advance, nothing is sliced.

The core then writes what it produced and queues the messages it assembled; all
messages of one socket read are queued before the reader is woken once. The queue is
bounded: when it still holds ``max_queue`` messages after the reader's turn (or
after four reads that found it full before the reader had one), the transport stops
reading until the application catches up (backpressure). A reader that keeps up is
never paused: no pair of system calls per read. A :meth:`Connection.read_message_into` call
waiting on an empty queue gets the next message copied from the receive buffer
straight into its own buffer; the payload of a large one (64 KiB or more still to
come) is read by the loop into that buffer itself. ``send`` waits while the
transport's write buffer is above its high-water mark; a client's payloads over
1 MiB are masked on their way out, a piece at a time (:mod:`._send`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import BufferTooSmall, ConnectionClosedOK
from ..options import ConnectionOptions
from ..sansio.extensions.permessage_deflate import Compressed, PerMessageDeflate
from ..sansio.frames import MessageType
from ..sansio.protocol import Message, MessageQueue, Ping, Pong, Protocol, State
from ._queued_py import FULL_READS
from ._receive import (
    COMPILED,
    RECEIVE_BUFFER_SIZE,
    Messages,
    _done_with,
    _read_message_into_now,
    _read_message_now,
    _recv_now,
    _send_method,
    queue_dispatch,
    recv_waiter,
)
from ._receive import send_now as _send_now
from ._receive import sent as _sent
from ._send import stable
from .base import _DEFAULTS, BaseConnection

if TYPE_CHECKING:
    from .._typing import Buffer, Data

__all__ = ["RECEIVE_BUFFER_SIZE", "Connection"]

_TYPES = (None, MessageType.TEXT, MessageType.BINARY)

# The most bytes of messages sent while received ones are queued that wait to be
# written together (see Connection._write_soon); a larger message, or more, go at once.
_BATCH = 65536


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a send task's exception retrieved: its caller may have been cancelled."""
    if not task.cancelled():
        task.exception()


async def _raise(exc: BaseException) -> None:
    """An awaitable that raises ``exc``: a failed call's, raised where it is awaited."""
    raise exc


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no message within the timeout"))


def _writable_view(buf: Any) -> memoryview:
    """Return a writable view of ``buf`` in bytes."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if view.readonly:
        raise TypeError("read_message_into needs a writable buffer")
    return view


class Connection(BaseConnection):
    """An open WebSocket connection on asyncio, client or server.

    Obtained from :func:`blazews.connect` or passed to the handler of
    :func:`blazews.serve`; not built directly.

    Attributes:
        protocol: The sans-I/O protocol object underneath.
        request: The opening handshake request.
        response: The opening handshake response.
        latency: The round-trip time of the last answered ping, in seconds (0 before).
        options: The :class:`~blazews.ClientOptions` or :class:`~blazews.ServerOptions`
            it was made with (shared by the connections of one call).

    A connection is built with ``__slots__`` (its attributes cost no per-instance
    dictionary, ~1.4 KiB saved on every idle connection); your own attributes still
    work (``conn.user = ...``): a dictionary is made for them on first use.
    """

    __slots__ = (
        "_deflate",  # (sending)
        "_drain_waiters",
        "_into_result",
        "_pong_hold",
        "_queue",
        "_recv_waiter",
        "_send_chain",
        "_unwritten",
        "max_queue",
    )

    # A large payload is read straight into the bytes object it becomes (see
    # ReceiveBuffer._begin_direct): copied once, unmasked in place, then queued.
    _direct_queue = True

    # Reads that may find the queue full before its reader had a turn (see
    # _queued_py.queue_dispatch): 1 pauses at once.
    _full_reads = FULL_READS

    def __init__(self, protocol: Protocol, options: ConnectionOptions = _DEFAULTS) -> None:
        super().__init__(protocol, options)
        self.max_queue = options.max_queue  # read per message: kept at hand
        self._pong_hold = False  # reading stopped: pings came while writing was paused
        # The permessage-deflate extension, once looked up (False: none negotiated,
        # or compress_in_thread is None: nothing is compressed in a worker thread),
        # and the task of the last send that goes through a worker thread.
        self._deflate: PerMessageDeflate | bool | None = None
        self._send_chain: asyncio.Task[None] | None = None
        self._unwritten = 0  # bytes sent but left in the core until _write_now (+1 each)
        # Received messages not read yet: a list emptied (cleared) whenever it is
        # read to the end: an idle connection holds an empty one (80 B), where a
        # deque always holds a 64-slot block (~600 B).
        self._queue = MessageQueue(_TYPES)
        self._recv_waiter: asyncio.Future[None] | None = None
        # Sends waiting for the write buffer to drain (a list made for the first).
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        # The (type, length) of the message copied into the buffer of a waiting
        # read_message_into call (the read path's _into).
        self._into_result: tuple[int, int] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------

    @property
    def buffer_updated(self) -> Callable[[int], None]:
        """The read path's ``_queue_read`` (compiled): a read whose messages are
        queued; beyond its common case, ``ReceiveBuffer._read_rest``."""
        return self._rx._queue_read

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake_reader()
        self._wake_drainers()

    def _drained(self) -> None:
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- the queue -------------------------------------------------------------------

    # Queue the messages, wake the reader, pause at max_queue: compiled, see
    # _queued_py.queue_dispatch; the rest below.
    _dispatch = queue_dispatch

    def _other_events(self, events: list[Any]) -> None:
        """The events of a read other than messages, in order."""
        for event in events:
            kind = type(event)
            if kind is Pong:
                self._pong(event.data)
            elif kind is Ping:
                if self._rx._writing_paused and not self._pong_hold:
                    self._hold_for_pongs()
            else:
                self._other_event(event)

    def _check_queue(self) -> None:
        """The turn after a read that found the queue full (see ``queue_dispatch``):
        its reader, woken by that read, has had its turn; still full, reading pauses."""
        queue = self._queue
        queue.full_reads = 0
        if queue.pending() >= self.max_queue and not queue.paused:
            self._pause_queue()

    def _pause_queue(self) -> None:
        """``max_queue`` messages are queued: stop reading until a quarter is left
        (``_resume_reading``)."""
        queue = self._queue
        queue.paused = True
        queue.full_reads = 0
        queue.resume_at = self.max_queue // 4
        queue.on_resume = self._resume_reading  # (not held while not paused)
        if self.transport is not None:
            self.transport.pause_reading()

    def _fill_into(self, opcode: int, data: Any) -> None:
        """The message sink while a read_message_into call waits (see buffer_updated).

        Copies the first message into the waiting call's buffer if it fits, else
        queues it (the call then raises BufferTooSmall); either way, the messages
        after it in this read are events, as ``bytes``.
        """
        protocol = self.protocol
        protocol.message_sink = None
        protocol.stop_lending()
        into = self._rx._into
        n = len(data)
        if into is not None and n <= len(into):
            into[:n] = data
            self._filled_into(opcode, n)
        else:
            self._dispatch([Message(opcode, bytes(data))])
        if type(data) is memoryview:
            data.release()

    def _filled_into(self, opcode: int, n: int) -> None:
        self._rx._into = None
        self._into_result = (opcode, n)
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- receiving -------------------------------------------------------------------

    # A future that the next queued message (or the end of the connection) completes,
    # for a reader to await directly (compiled: see _queued_py.recv_waiter).
    _waiter = recv_waiter

    async def _wait(self, timeout: float) -> None:
        """Wait until a message is queued, for at most ``timeout`` seconds."""
        queue = self._queue
        deadline = self.loop.time() + timeout
        while not queue:
            waiter = self._waiter()
            timer = self.loop.call_at(deadline, _time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()

    def _take(self) -> Message:
        """Remove and return the oldest queued message (there is one)."""
        return self._queue.take()

    def _unread(self, message: Message) -> None:
        """Put ``message`` back at the head of the queue."""
        self._queue.unread(message)

    def _resume_reading(self) -> None:
        """The queue drained to a quarter of ``max_queue`` (its ``on_resume``), a
        turn of the loop passed since a direct read (see ``_direct_read``), or the
        write buffer drained below its low-water mark."""
        transport = self.transport
        if (
            transport is not None
            and not transport.is_closing()
            and not self._queue.paused
            and not self._pong_hold
        ):
            transport.resume_reading()

    def _hold_for_pongs(self) -> None:
        """A ping came while the write buffer is above ``write_limit``: stop reading
        until it drains. Its pong waits behind what is buffered anyway; a peer that
        floods pings and reads nothing so queues the pongs of one read at most, not
        an unbounded write buffer. (Reading otherwise goes on while writing is
        paused: a close frame or a protocol error still gets through.)"""
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self._draining:
            self._pong_hold = True
            transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._pong_hold and not self._rx._writing_paused:
            self._pong_hold = False
            self._resume_reading()

    def recv(self, timeout: float | None = None) -> Awaitable[str | bytes]:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: Seconds to wait at most, or ``None`` to wait as long as it takes.
                A message that arrives later stays queued for the next call.

        Raises:
            ConnectionClosed: The connection is closed (its ``__cause__`` is the
                protocol error, if the peer broke the protocol).
            TimeoutError: No message came within ``timeout``.
            ConcurrencyError: Another coroutine is already waiting for a message.
        """
        return _recv_now(self, timeout)  # type: ignore[no-any-return]

    def read_message(self, timeout: float | None = None) -> Awaitable[tuple[MessageType, bytes]]:
        """Return the next message as ``(MessageType, payload bytes)``.

        Args:
            timeout: As for :meth:`recv`.

        Raises:
            ConnectionClosed, TimeoutError, ConcurrencyError: As for :meth:`recv`.
        """
        return _read_message_now(self, timeout)  # type: ignore[no-any-return]

    def read_message_into(self, buf: Buffer) -> Awaitable[tuple[MessageType, int]]:
        """Copy the next message into ``buf`` and return ``(MessageType, length)``.

        When the call waits for a message (none is queued), the next one is copied
        from the receive buffer straight into ``buf``, unmasked: no ``bytes`` object
        is made for it. ``buf`` may be written while the call waits, only then.

        Args:
            buf: Any writable, C-contiguous buffer: bytearray, memoryview, numpy
                array...

        Raises:
            BufferTooSmall: ``buf`` is smaller than the message; the message stays
                queued and the next call gets it.
            ConnectionClosed: The connection is closed (see :meth:`recv`).
            ConcurrencyError: Another coroutine is already waiting for a message.
        """
        return _read_message_into_now(self, buf)  # type: ignore[no-any-return]

    async def _next(self, timeout: float | None) -> tuple[int, bytes]:
        """The next message's opcode and payload, once one is queued (within
        ``timeout``): what :meth:`recv`, :meth:`read_message` and ``async for`` wait
        in when no message is queued at the call (or its first step finds none)."""
        queue = self._queue
        if not queue:
            if timeout is not None:
                await self._wait(timeout)
            while not queue:
                await self._waiter()
        message = self._take()
        lent: Any = message.data  # bytes, or a view lent by a large receive buffer
        data: bytes = _done_with(lent) if type(lent) is memoryview else lent
        return message.type, data

    async def _recv(self, timeout: float | None) -> str | bytes:
        """:meth:`recv` when it has to wait."""
        kind, data = await self._next(timeout)
        return data.decode() if kind == 1 else data

    async def _read_message(self, timeout: float | None) -> tuple[MessageType, bytes]:
        """:meth:`read_message` when it has to wait."""
        kind, data = await self._next(timeout)
        return _TYPES[kind], data  # type: ignore[return-value]

    async def _read_message_into(self, buf: Buffer) -> tuple[MessageType, int]:
        """:meth:`read_message_into` when it has to wait, or the message is not a
        ``bytes`` payload into a ``bytearray`` large enough."""
        queue = self._queue
        # The hot path, compiled: a bytes payload into a bytearray.
        taken = queue.take_into(buf)
        if taken is not None:
            return taken  # type: ignore[no-any-return]
        if not queue:
            result = await self._wait_into(_writable_view(buf))
            if result is not None:
                return result
        message = queue[queue.head]
        data: Any = message.data
        n = len(data)
        if type(buf) is bytearray:  # the common case, without making a view
            if n > len(buf):
                raise BufferTooSmall(n, len(buf))
            buf[:n] = data
        else:
            view = _writable_view(buf)
            if n > len(view):
                raise BufferTooSmall(n, len(view))
            view[:n] = data
        if type(data) is memoryview:
            _done_with(data, copy=False)
        self._take()
        return _TYPES[message.type], n  # type: ignore[return-value]

    async def _wait_into(self, view: memoryview) -> tuple[MessageType, int] | None:
        """Wait for a message with ``view`` offered to the receive path.

        Return ``(type, length)`` if a message was copied into it, ``None`` if one
        was queued instead (it did not fit).
        """
        queue = self._queue
        while not queue:
            waiter = self._waiter()
            self._rx._into = view
            try:
                await waiter
            except BaseException:
                result = self._into_result
                if result is not None:  # copied in, then cancelled: keep the message
                    self._into_result = None
                    self._unread(Message(result[0], bytes(view[: result[1]])))
                elif self._rx._direct is not None:  # a payload was arriving in view
                    self._rx._undo_direct()
                raise
            finally:
                self._recv_waiter = None
                self._rx._into = None
            result = self._into_result
            if result is not None:
                self._into_result = None
                return _TYPES[result[0]], result[1]  # type: ignore[return-value]
        return None

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Iterate over the messages as :meth:`recv` returns them, until a normal
        close (a close with an error raises its ``ConnectionClosedError``).

        A message already queued comes through a completed awaitable, taken when
        ``__anext__`` is called (compiled: no coroutine frame, no Future, no turn of
        the loop: see :class:`~blazews.asyncio._queued_py.Messages`); ``async for``
        awaits it at once.
        """
        return Messages(self)

    async def _anext(self) -> str | bytes:
        """``__anext__`` when no message is queued (or its payload is lent): wait as
        :meth:`recv` does; a normal close ends the iteration."""
        try:
            return await self._recv(None)
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    # -- sending ---------------------------------------------------------------------

    def send(self, data: Data, *, compress: bool = True) -> Awaitable[None]:
        """Send a message: ``str`` as text, any bytes-like object as binary.

        ``compress=False`` sends it uncompressed even when permessage-deflate is in use.
        With permessage-deflate, a message of at least ``compress_in_thread`` bytes is
        compressed in the loop's default executor, so that the loop goes on serving
        other connections meanwhile; messages still go out in the order of the
        calls (one sent after such a message waits for it). Once its compression has
        started, a message is sent even if this call is cancelled.

        Waits while the write buffer is above its high-water mark. A client masks a
        payload over 1 MiB on its way out, a piece at a time (see
        :mod:`blazews.asyncio._send`), instead of copying it whole first; the call
        then returns once the last piece is written, and until then the payload must
        not change. If the call is cancelled before, what is left of a payload that
        is not ``bytes`` is copied, and the message still goes out whole. A server
        sends a ``bytes`` payload over 16 KiB without copying it; another bytes-like
        object that large is copied first (the transport may keep what it is given
        past this call), so a buffer may be refilled as soon as the call returns.

        Returns an awaitable, to be awaited as a coroutine would be: when nothing
        has to wait (the common case) it is already complete (compiled: no
        coroutine frame, no turn of the loop); otherwise it waits as described. The
        call itself sends the message, awaited or not. While received messages are
        still queued (an echo working through the messages of one read), messages
        sent are written together, by the send made once none is left or at the end
        of the turn of the loop (one system call and one TCP segment for them), up to
        64 KiB (past that, at once); with nothing queued, a send writes at once.
        Anything sent after them (a close, a pong) goes after them.

        Raises:
            ConnectionClosed: The connection is closed or closing, or it closed
                before the message held behind such a payload was written (raised
                by the ``await``, as a coroutine's would be).
        """
        return _send_now(self, data, compress)  # type: ignore[no-any-return]

    def _send_rest(self, data: Data, compress: bool) -> Awaitable[None]:
        """:meth:`send` beyond its common case (:func:`_queued_py.send_now`): a
        payload to keep, a send in line behind one compressed in a worker thread,
        or one to compress there."""
        try:
            if self._kept_from and type(data) is not bytes and type(data) is not str:
                data = stable(data, self._kept_from)
            chain = self._send_chain
            if chain is not None and chain.done():
                chain = self._send_chain = None
            offload = compress and self._deflate is not False and self._offloads(data)
            if chain is not None or offload:
                # In line behind the one before, from this call on (a send made
                # after this one, awaited or not, goes after it).
                box = [data]  # copied if this call is cancelled before its turn
                task = self.loop.create_task(self._send_in_turn(chain, box, compress))
                task.add_done_callback(_retrieve)
                self._send_chain = task
                return self._send_later(task, box)
            self.protocol.send_data(data, compress=compress)
            size = len(data)  # type: ignore[arg-type]  # (a bytes-like object has one)
        except Exception as exc:  # (raised by the await, as by a coroutine)
            return _raise(exc)
        return _sent(self, size)  # type: ignore[no-any-return]

    def _failed(self, exc: Exception) -> Awaitable[None]:
        """What a ``send`` that raised ``exc`` returns: its ``await`` raises it."""
        return _raise(exc)

    def _write_now(self) -> None:
        self._unwritten = 0
        self._flush()

    async def _send_later(self, task: asyncio.Task[None], box: list[Any]) -> None:
        """Wait for ``task``, which sends ``box[0]`` in its turn (behind a message still
        being compressed in a worker thread, or compressing this one there)."""
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            data = box[0]
            if not task.done() and type(data) is not str:
                box[0] = stable(data, 0)
            self._detach()
            raise
        await self._drain_after_send()

    async def _drain_after_send(self) -> None:
        """Wait while the write buffer is above its high-water mark, or until what
        the outbox holds (a client's large payload, masked piece by piece) is out."""
        out = self._rx._out
        if self._rx._writing_paused or out is not None:
            try:
                await self._drain()
            except asyncio.CancelledError:
                self._detach()
                raise
            if out is not None and out.lost:  # the connection went first
                raise self.protocol.close_exc()

    def _detach(self) -> None:
        """A send was cancelled: the payloads held in the outbox may change now."""
        if self._rx._out is not None:
            self._rx._out.detach()

    def _offloads(self, data: Any) -> bool:
        """Whether ``data`` is to be compressed in a worker thread."""
        least = self.options.compress_in_thread
        if least is None:
            self._deflate = False  # (nothing goes to a worker thread: never look again)
            return False
        deflate = self._deflate
        if deflate is None:
            found = [e for e in self.protocol.extensions if isinstance(e, PerMessageDeflate)]
            deflate = self._deflate = found[0] if found else False
        if deflate is False:
            return False
        size = len(data) if isinstance(data, (bytes, str)) else memoryview(data).nbytes
        return size >= least

    async def _send_in_turn(
        self, before: asyncio.Task[None] | None, box: list[Any], compress: bool
    ) -> None:
        """Send ``box[0]`` once ``before`` is done, compressing it in a thread if large."""
        if before is not None and not before.done():
            await asyncio.wait([before])  # its outcome is its caller's business
        data = box[0]
        text = isinstance(data, str)
        payload = data.encode() if text else data
        deflate = self._deflate
        if compress and self._offloads(payload) and isinstance(deflate, PerMessageDeflate):
            if self.protocol.state is not State.OPEN:
                raise self.protocol.close_exc()
            # The worker owns the compressor until it returns: no other send runs
            # meanwhile (they wait in this chain), so the stream stays in order.
            result = await self.loop.run_in_executor(None, deflate.compress, payload)
            # A Compressed result goes out as it is; the payload itself comes back
            # when deflate would not shrink it: then it goes uncompressed.
            compress = isinstance(result, Compressed)
            payload = result
        if text:
            self.protocol.send_text(payload, compress=compress)
        else:
            self.protocol.send_binary(payload, compress=compress)
        self._process()

    async def _drain(self) -> None:
        while (self._rx._writing_paused or self._rx._out is not None) and not self._lost:
            waiter = self.loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = [waiter]
            else:
                self._drain_waiters.append(waiter)
            await waiter

    async def ping(self, data: bytes | str | None = None) -> asyncio.Future[float]:
        """Send a ping; return a future that resolves to the round-trip time in seconds.

        A pong answers its ping and every earlier one (RFC 6455 §5.5.3).
        """
        return self._send_ping(data)


# The compiled build calls the read path's functions directly: recv, read_message,
# read_message_into and send above, documented there, are what the pure build runs
# (each is the same call, with a Python frame more: ~9% of what read_message_into
# costs per 64 B message ingested).
if COMPILED:
    for _name, _function in (
        ("recv", _recv_now),
        ("read_message", _read_message_now),
        ("read_message_into", _read_message_into_now),
        ("send", _send_method),
    ):
        _documented = getattr(Connection, _name)
        _function.__doc__ = _documented.__doc__
        _function.__annotations__ = dict(_documented.__annotations__)
        setattr(Connection, _name, _function)
