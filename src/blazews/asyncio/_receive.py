"""A connection's receive buffer: where the event loop reads, and how it grows and goes.

:class:`ReceiveBuffer` is the read path a connection owns (``conn._rx``; its
common case is the compiled :class:`~blazews.asyncio._readpath_py.ReadPath`, its base;
the connection gives the transport its methods as its own ``get_buffer`` and
``buffer_updated``): the loop
reads straight into a
buffer taken from :data:`~blazews.buffers.DEFAULT_BUFFER_POOL` (16 KiB), which grows
while a large frame arrives (as large as that frame plus some read-ahead, within the
message size limit) and goes back once the connection is idle, so that an idle
connection holds none. An incomplete frame at the end is moved to the front only
when the rest of it would not fit. The core parses the bytes in place; what it makes
of them goes to the connection (``owner._dispatch``). It also writes what the core
produced (the outbox of a client's large frames included).

Loops differ in when they let go of the view they read into. The selector loop has
released it before ``buffer_updated`` runs, so an emptied buffer goes back at once.
uvloop holds it until ``buffer_updated`` returns; there an emptied buffer is parked,
and one timer per loop gives back every parked buffer still empty
:data:`IDLE_RELEASE_DELAY` later, or sooner, when another connection of the loop needs
a buffer. Scheduling a callback for every read instead cost a round trip of
1-in-flight echo about 5%.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, cast

from .._impl import mask_bytes, payload_buffer, select
from ..buffers import DEFAULT_BUFFER_POOL
from ..sansio.frames import MaskLater
from ..sansio.protocol import Message, State
from ._send import Outbox

if TYPE_CHECKING:
    from ._queued_py import (
        Messages,
        completed,
        queue_dispatch,
        recv_waiter,
        send_now,
        sent,
        write_soon,
    )
    from ._queued_py import read_message as _read_message_now
    from ._queued_py import read_message_into as _read_message_into_now
    from ._queued_py import recv as _recv_now
    from ._queued_py import send as _send_method
    from ._readpath_py import (
        COMPILED,
        LOOPS_HOLDING_VIEWS,
        POOLED_SIZE,
        ReadPath,
        SendHandle,
        write_frame_all,
    )
    from .connection import Connection
else:
    # The read path, and the coroutine API's per-message calls built the same way
    # (the compiled one cimports the compiled read path).
    _built = select("blazews.asyncio._readpath")
    COMPILED, LOOPS_HOLDING_VIEWS, POOLED_SIZE, ReadPath, SendHandle = (
        _built.COMPILED,
        _built.LOOPS_HOLDING_VIEWS,
        _built.POOLED_SIZE,
        _built.ReadPath,
        _built.SendHandle,
    )
    write_frame_all = _built.write_frame_all
    _queued = select("blazews.asyncio._queued", compiled=None if COMPILED else False)
    Messages, completed, queue_dispatch, recv_waiter, send_now, sent, write_soon = (
        _queued.Messages,
        _queued.completed,
        _queued.queue_dispatch,
        _queued.recv_waiter,
        _queued.send_now,
        _queued.sent,
        _queued.write_soon,
    )
    _recv_now, _read_message_now, _read_message_into_now, _send_method = (
        _queued.recv,
        _queued.read_message,
        _queued.read_message_into,
        _queued.send,
    )

__all__ = [
    "COMPILED",
    "IDLE_RELEASE_DELAY",
    "RECEIVE_BUFFER_SIZE",
    "Messages",
    "ReadPath",
    "ReceiveBuffer",
    "SendHandle",
    "_read_message_into_now",
    "_read_message_now",
    "_recv_now",
    "_send_method",
    "completed",
    "queue_dispatch",
    "recv_waiter",
    "send_now",
    "sent",
    "write_frame_all",
    "write_soon",
]

RECEIVE_BUFFER_SIZE: int = POOLED_SIZE  # (16384)
"""The receive buffer of a connection, in bytes (a :class:`~blazews.buffers.BufferPool` tier)."""

IDLE_RELEASE_DELAY = 0.05
"""On a loop that holds the read view until ``buffer_updated`` returns (uvloop), how
long, in seconds, an emptied receive buffer may stay with its connection after its
last read (at most)."""

# A frame whose payload is up to this size gets a receive buffer of its size at once,
# when its header arrives. Beyond it the buffer doubles as the frame's bytes arrive,
# so that a header alone never makes a connection allocate much more than this.
_EAGER_GROWTH = 1 << 20

_MAX_HEADER = 14  # the longest frame header, masking key included

# While the rest of a large frame is on its way, SO_RCVLOWAT asks the kernel to wake
# the loop only once that much has arrived (up to _LOWAT_MAX; Linux, plain TCP): one
# wake-up per frame instead of one per segment. On this VM the sender paid a third of
# its time waking the reader. Listener ingest of 1 MiB frames, uvloop: +40-60% (one
# syscall per large read). It is always what the peer must send before anything else
# (a frame cannot be interrupted), so nothing waits on bytes that may not come; at
# EOF the socket is readable whatever the mark. Not under TLS: the TLS layer may hold
# part of a record already, and the socket would then owe fewer bytes than that.
_LOWAT_MIN = 65536
_LOWAT_MAX = 1 << 20
_LOWAT_OK = sys.platform == "linux" and hasattr(socket, "SO_RCVLOWAT")

# A read_message_into call waiting on a message in one frame whose payload still
# misses this much or more gets it read by the loop straight into its own buffer (see
# ReceiveBuffer._begin_direct): no grown receive buffer, no copy out of it. With no
# such call waiting, a coroutine-API connection has the loop read the payload into
# the bytes object it becomes, then queues it: copied once, unmasked in place (not
# read into a grown buffer, unmasked there, then copied out by recv or async for).
_DIRECT_MIN = 65536
# Once such a payload is in, reading pauses until the loop's next turn. Else the loop
# goes on reading (uvloop reads again when a read filled its buffer, as the last read
# of a direct payload always does) and the next frame lands in a receive buffer,
# queued and copied out later. The woken reader runs first in that turn, and if it
# comes back for the next message, that one is read into its buffer too. Coroutine
# ingest of 1 MiB frames (uvloop, side by side): 2.6k -> 5.3k messages/s, on par
# with the raw reader; before, only one message in six (under a nonstop sender) was
# read directly, the rest were queued, copied, and their grown buffers reallocated.
# The default loop reads once per turn anyway: there, the pause costs two epoll_ctl
# calls per large message (medians of 7 alternated runs: 4.28k against 4.33k).

# What a grown receive buffer holds beyond the frame that needed it: 256 KiB behind a
# frame smaller than that, 64 KiB (the read size uvloop suggests) behind a larger one.
# Grown buffers exist only while large frames stream in. Measured on a stream of
# frames (ingest, uvloop): 16 KiB frames with 256 KiB instead of 64 KiB, +50% through
# read_message_into and +12% through a Listener (fewer, larger reads); 1 MiB frames,
# 3-9% slower with it, so they keep 64 KiB.
_READ_AHEAD = 262144
_READ_AHEAD_MIN = 65536
# A read that fills the standard buffer (a burst of small frames) moves the rest to a
# buffer with _READ_AHEAD_MIN more room (80 KiB). Listener ingest, uvloop: 1 KiB
# frames 1.35M -> 2.9M messages/s, 64 B 4.8M -> 5.5M; 256 KiB more would add ~10% at
# 1 KiB, for 3.4x the memory.


class _LargeBuffers:
    """Receive buffers larger than the pool's tiers, kept for the next large frame.

    A frame that does not fit :data:`RECEIVE_BUFFER_SIZE` gets a buffer of its own
    size, which :class:`~blazews.buffers.BufferPool` does not take back. Allocating
    one per frame costs more than receiving the frame (it is zero-filled and freshly
    mapped: read_message of 1 MiB frames ran 4x slower), so the connections of a
    process share up to ``max_bytes`` of them. Thread-safe. Like the pool, it refuses
    a buffer something still exports (a view of a payload that a listener kept), so
    no connection ever reads into memory another one still exposes.
    """

    __slots__ = ("_bufs", "_held", "_lock", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._bufs: list[bytearray] = []
        self._held = 0
        self._lock = threading.Lock()

    def get(self, need: int, most: int) -> bytearray | None:
        """Take a buffer of ``need`` to ``most`` bytes, if one is kept."""
        with self._lock:
            for i, buf in enumerate(self._bufs):
                if need <= len(buf) <= most:
                    del self._bufs[i]
                    self._held -= len(buf)
                    return buf
        return None

    def put(self, buf: bytearray) -> None:
        """Keep ``buf`` if there is room and nothing exports it."""
        size = len(buf)
        with self._lock:
            if self._held + size > self.max_bytes:
                return
            try:
                last = buf.pop()  # a shrink by one byte never moves the buffer
            except BufferError:  # exported: still in use
                return
            buf.append(last)
            self._bufs.append(buf)
            self._held += size


_LARGE_BUFFERS = _LargeBuffers(4 * 1024 * 1024)


class _LargeBuffer(bytearray):
    """A receive buffer larger than :data:`RECEIVE_BUFFER_SIZE`; ``lent`` counts the
    queued payloads that are views of it once it was given away (:func:`_done_with`
    stores it when the last is consumed, without trying, and failing, before);
    ``ahead`` says it was taken for read-ahead (``_read_ahead``), not for a frame."""

    __slots__ = ("ahead", "lent")

    lent: int
    ahead: bool

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.ahead = False


def _read_ahead_only(buf: bytearray) -> bool:
    """Whether ``buf`` was taken for read-ahead (small frames), not for a large frame."""
    return type(buf) is _LargeBuffer and buf.ahead


def _large(need: int, most: int, ahead: bool = False) -> _LargeBuffer:
    """A stored large buffer of ``need`` to ``most`` bytes, or a new one of ``need``."""
    buf = _LARGE_BUFFERS.get(need, most)
    if type(buf) is not _LargeBuffer:
        buf = _LargeBuffer(need)
    buf.ahead = ahead
    return buf


# Grown receive buffers lend their payloads to the queue (_give_away): each 16 KiB or
# larger payload copied into bytes was a large malloc, and glibc gave the heap top
# back and faulted it in again as the queue drained and filled (read_message_into of
# 16 KiB frames ran at half speed, depending on where the heap top happened to be).
_LEND_MIN = RECEIVE_BUFFER_SIZE + 1


def _let_go(view: memoryview) -> None:
    """Release a view of all of a receive buffer, unless the loop still reads through
    it (handed out whole by ``get_buffer``, uvloop holds it until ``buffer_updated``
    returns): then it goes when the loop lets go of it, and until then the pools
    refuse its buffer, as they refuse any buffer something exports."""
    try:
        view.release()
    except BufferError:
        pass


def _done_with(view: memoryview, copy: bool = True) -> bytes:
    """Finish with a payload lent from a given-away receive buffer: return a copy (if
    ``copy``), release the view, and store the buffer once no view of it is left."""
    data = view.tobytes() if copy else b""
    base = view.obj
    view.release()
    if type(base) is _LargeBuffer:
        base.lent -= 1
        if base.lent == 0:
            _LARGE_BUFFERS.put(base)
    return data


class _Parked:
    """The connections of one loop whose emptied receive buffer waits to go back (weak
    references to the owners: a loop closed before its sweep keeps none of them
    alive).

    Swept by a timer, and also whenever a connection of the loop needs a buffer
    from the pool: a burst of new connections then passes one buffer along instead
    of each taking a new one while the others wait for the timer (idle RSS).
    """

    __slots__ = ("conns", "scheduled")

    def __init__(self) -> None:
        self.conns: list[weakref.ref[Any]] = []
        self.scheduled = False

    def on_timer(self) -> None:
        self.scheduled = False
        self.sweep()

    def sweep(self) -> None:
        conns, self.conns = self.conns, []
        for ref in conns:
            conn = ref()
            if conn is not None:
                conn._rx._release_if_idle()


_PARKED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Parked] = weakref.WeakKeyDictionary()


def _park(rx: ReceiveBuffer) -> None:
    """Have ``rx``'s buffer given back by its loop's next sweep, if still empty."""
    loop = rx.loop
    parked = _PARKED.get(loop)
    if parked is None:
        parked = _PARKED[loop] = _Parked()
    if not parked.scheduled:
        parked.scheduled = True
        loop.call_later(IDLE_RELEASE_DELAY, parked.on_timer)
    parked.conns.append(weakref.ref(rx.owner))


class _Direct:
    """A payload being read straight into a waiting reader's buffer, or into the
    object it becomes: the frame's opcode and header (masking key included), the
    payload's length, the bytes of it read so far, the buffer (a view), and the
    payload object that view writes (``None`` for a reader's buffer)."""

    __slots__ = ("got", "head", "length", "opcode", "payload", "view")

    def __init__(
        self,
        opcode: int,
        head: bytes,
        length: int,
        got: int,
        view: memoryview,
        payload: bytes | bytearray | None = None,
    ) -> None:
        self.opcode = opcode
        self.head = head
        self.length = length
        self.got = got
        self.view = view
        self.payload = payload


class ReceiveBuffer(ReadPath):
    """A connection's read path beyond its common case (:class:`ReadPath`'s): how the
    receive buffer is taken, grown, moved and given back, large payloads read
    straight into their destination, and writes beyond one frame.

    Built by the connection, ``owner``, with its core (whose incomplete frame size and
    message size limit decide how the buffer grows) and loop. What it asks of the
    owner, beyond ``_dispatch``, ``_closing`` and ``_drained``: ``_borrow`` (payloads
    lent to a callback only, never queued: a Listener), ``_direct_queue`` (large
    payloads, :data:`_DIRECT_MIN` or more still to come, are read by the loop straight
    into the bytes object each becomes, then queued: the coroutine API), and for a
    connection that queues, ``_queue``, ``_fill_into`` (the message sink while a
    ``read_message_into`` call waits), ``_filled_into`` (a message is in ``_into``)
    and ``_resume_reading``.
    """

    __slots__ = ()

    # -- writing beyond one frame ------------------------------------------------------

    def _write_rest(self, out: list[Any]) -> None:
        """Write ``out``, what the core produced, beyond the common case of one frame
        and nothing held back (``ReadPath._write``): several chunks, a client's large
        frames through the outbox, nothing once the transport closes."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._out is None:
            if not self.protocol.mask_later or MaskLater not in map(type, out):
                transport.writelines(out)  # (only a client's core makes MaskLater)
                return
            self._out = Outbox(out)
        else:
            self._out.add(out)
        self._pump()

    def _pump(self) -> None:
        """Write what the outbox holds, unless the transport's buffer is full."""
        out = self._out
        transport = self.transport
        if out is not None and transport is not None and out.pump(transport, self._paused):
            if not out.lost:  # (a lost one stays for its senders to see, until
                self._out = None  # connection_lost)
            self.owner._drained()
            state = self.protocol.state
            if state is State.CLOSING or state is State.CLOSED:
                self.owner._closing()  # a close frame that waited behind the outbox went

    def _paused(self) -> bool:
        return self._writing_paused

    def _lost(self) -> None:
        """The connection is gone: let the buffer and the outbox go."""
        self._direct = None
        self._rtail = None
        self._rstart = self._rend = 0
        self._release_buffer()
        if self._out is not None:
            self._out.drop()
            self._out = None

    # -- a coroutine-API connection's read beyond its common case ---------------------

    def _read_rest(self, nbytes: int) -> None:
        """``buffer_updated`` of a connection that queues its messages, beyond its
        common case (``ReadPath._queue_read``)."""
        if self._direct is not None:  # the loop read into a waiting reader's buffer
            self._direct_read(nbytes)
            return
        owner = cast("Connection", self.owner)  # (it queues: it reads here)
        queue = owner._queue
        buf, start, end, released = self._bytes_read(nbytes)
        view: Any = self._rview  # all of buf: the core makes no view of its own
        protocol = self.protocol
        if self._into is not None and not queue:
            # A read_message_into call waits: the first message goes straight from
            # this buffer into the caller's (unmasked on the way), the rest as usual.
            protocol.message_sink = owner._fill_into
            try:
                start += protocol.receive_into_buffer(view, start, end, True)
            finally:
                protocol.message_sink = None
            self._process()
        elif len(buf) >= _LEND_MIN and not owner._borrow and not _read_ahead_only(buf):
            # A buffer grown for large frames: their payloads stay in it, lent to the
            # queue, and the buffer goes with them (see _give_away), if they fill a
            # quarter of it at least. Copying each into new bytes would cost more than
            # the copy: glibc maps such blocks afresh, page faults included.
            queued = len(queue)
            start += protocol.receive_into_buffer(view, start, end, True)
            self._process()
            new: list[Any] = queue[queued:]  # payloads: bytes, or views of buf
            lent = [m for m in new if type(m.data) is memoryview]
            if lent and sum(len(m.data) for m in lent) < len(buf) >> 2:
                # Too little of the buffer to pin all of it while queued: copies.
                for m in lent:
                    piece: Any = m.data
                    m.data = piece.tobytes()
                    piece.release()
            elif lent:
                start, end = self._give_away(start, end, len(lent))
                if self._rbuf is None:  # nothing left over, and no buffer taken
                    self._rstart = self._rend = 0
                    if self._lowat_sock is not None:
                        self._watermark(protocol.bytes_missing(0))
                    return
                buf, released = self._rbuf, True  # the loop never saw this one
        else:
            start += protocol.receive_into_buffer(view, start, end, owner._borrow)
            self._process()
        self._parsed(buf, start, end, released)

    # -- the receive buffer ------------------------------------------------------------

    def _watch_socket(self, transport: asyncio.BaseTransport) -> None:
        """Use SO_RCVLOWAT on ``transport``'s socket if it is plain TCP (Linux)."""
        if not _LOWAT_OK or transport.get_extra_info("sslcontext") is not None:
            return
        if transport.get_extra_info("ssl_object") is not None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            self._lowat_sock = sock

    def _watermark(self, missing: int) -> None:
        """Set SO_RCVLOWAT to ``missing``, the bytes the frame under way still needs,
        when that is large, else back to 1."""
        want = min(missing, _LOWAT_MAX) if missing >= _LOWAT_MIN else 1
        if want != self._lowat:
            try:
                self._lowat_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
            except OSError:  # closed under us: nothing more to read anyway
                self._lowat_sock = None
                return
            self._lowat = want

    def _get_buffer(self, sizehint: int) -> memoryview:
        direct = self._direct
        if direct is not None:
            return direct.view[direct.got : direct.length]
        view = self._rview
        if (
            view is not None
            and self._into is not None
            and self._begin_direct(self._rbuf, self._rstart, self._rend)  # type: ignore[arg-type]
        ):
            # The reader came while the frame was arriving: the rest goes to it.
            self._rstart = self._rend = 0
            if not self._release_pending:
                self._release_pending = True
                self.loop.call_soon(self._release_if_idle)
            direct = self._direct
            assert direct is not None
            return direct.view[direct.got : direct.length]
        if view is None:
            if LOOPS_HOLDING_VIEWS:  # parked buffers first go back to the pool
                parked = _PARKED.get(self.loop)
                if parked is not None and parked.conns:
                    parked.sweep()
            buf = DEFAULT_BUFFER_POOL.get(RECEIVE_BUFFER_SIZE)
            self._rbuf = buf
            view = self._rview = memoryview(buf)
        elif self._rfull and len(view) == RECEIVE_BUFFER_SIZE:
            view = self._read_ahead()
        # (all of an empty buffer: its view, where the loop holds the one it reads into)
        tail = self._rtail = view if self._rend == 0 and self._holds_views else view[self._rend :]
        return tail

    def _read_ahead(self) -> memoryview:
        """The last read filled the standard buffer, so more is likely waiting: move
        the unparsed bytes to a buffer with :data:`_READ_AHEAD_MIN` more room, and
        read the stream in fewer, larger reads (Listener ingest of 1 KiB messages spent
        more in the kernel's wake-ups of 16 KiB reads than in the copies). Marked
        ``ahead``: what is queued from it is copied, not lent (see ``_give_away``).
        """
        old = self._rview
        assert old is not None
        start, end = self._rstart, self._rend
        size = RECEIVE_BUFFER_SIZE + _READ_AHEAD_MIN
        bigger = _large(size, size + (size >> 2), ahead=True)
        view = memoryview(bigger)
        view[: end - start] = old[start:end]
        self._release_buffer()
        self._rbuf, self._rview = bigger, view
        self._rstart, self._rend = 0, end - start
        return view

    def _parsed_rest(self, buf: bytearray, start: int, end: int, released: bool) -> None:
        """The core used ``buf`` up to ``start``: keep ``[start:end]``, or let the
        buffer go when nothing is left (``_parsed`` beyond its common case)."""
        if (
            start != end
            and (self._into is not None or (self.owner._direct_queue and not self.owner._borrow))
            and self._begin_direct(buf, start, end)
        ):
            start = end  # the rest of the frame goes to the reader's buffer
        elif self._lowat_sock is not None and (
            self._lowat != 1 or self.protocol.incomplete_frame_size >= _LOWAT_MIN
        ):  # (else it stays 1: one attribute read per small read, not a call)
            self._watermark(self.protocol.bytes_missing(end - start))
        if start == end:
            self._rstart = self._rend = 0
            # A standard buffer goes back at once; a grown one only once a turn of
            # the loop brought no more data: a stream of large frames would otherwise
            # give it back and grow a new one (a copy and two reads) for every frame.
            if len(buf) > RECEIVE_BUFFER_SIZE:
                if not self._release_pending:
                    self._release_pending = True
                    self.loop.call_soon(self._release_if_idle)
            elif released:
                self._release_buffer()
            elif not self._release_pending:
                self._release_pending = True
                _park(self)
        else:
            self._keep(start, end)

    def _give_away(self, start: int, end: int, lent: int) -> tuple[int, int]:
        """Leave the receive buffer to the ``lent`` queued payloads that are views of
        it; move the unparsed bytes, ``[start:end]``, to a new one. Return their new
        bounds.

        The buffer goes back to the large-buffer store when the last of those views
        is consumed (:func:`_done_with`).
        """
        view = self._rview
        buf = self._rbuf
        assert view is not None
        if type(buf) is _LargeBuffer:
            buf.lent = lent
        kept = end - start
        # A buffer as large as this one, if one is stored: the frames streaming in
        # keep their read-ahead. (A turn without data gives it back, as any grown one.)
        size = max(kept, view.nbytes)
        fresh: bytearray | None = _LARGE_BUFFERS.get(size, size + (size >> 2))
        if type(fresh) is _LargeBuffer:
            fresh.ahead = False
        self._rbuf = self._rview = None
        if kept and fresh is None:
            fresh = (
                _large(kept, 2 * kept)
                if kept > RECEIVE_BUFFER_SIZE
                else DEFAULT_BUFFER_POOL.get(kept)
            )
        if fresh is not None:
            fresh_view = memoryview(fresh)
            fresh_view[:kept] = view[start:end]
            self._rbuf, self._rview = fresh, fresh_view
        _let_go(view)
        return 0, kept

    def _keep(self, start: int, end: int) -> None:
        """Make room for the rest of the incomplete frame in ``buf[start:end]``."""
        buf = self._rbuf
        view = self._rview
        assert buf is not None and view is not None
        size = len(buf)
        kept = end - start
        need = self.protocol.incomplete_frame_size or _MAX_HEADER
        if need > size:
            if need > _EAGER_GROWTH + _MAX_HEADER:
                need = min(need, max(2 * size, _EAGER_GROWTH))
            else:
                # Room for the next frames too: the read that completes this frame is
                # then not one of a few bytes, and a stream of large frames is read
                # in large reads. (Not beyond the message size limit.)
                limit = self.protocol.max_message_size
                ahead = need + (_READ_AHEAD if need < _READ_AHEAD else _READ_AHEAD_MIN)
                need = ahead if limit is None else max(need, min(ahead, limit + _MAX_HEADER))
            # A kept buffer may be a quarter larger, within the message size limit.
            most = need + (need >> 2)
            limit = self.protocol.max_message_size
            if limit is not None:
                most = min(most, max(need, limit + _MAX_HEADER))
            bigger = _large(need, most)
            bigger_view = memoryview(bigger)
            bigger_view[:kept] = view[start:end]
            self._release_buffer()
            self._rbuf = bigger
            self._rview = bigger_view
            start, end = 0, kept
        elif start + need > size:
            view[:kept] = view[start:end]  # memoryview assignment is a memmove
            start, end = 0, kept
        self._rstart = start
        self._rend = end

    # -- payloads read straight into a waiting read_message_into buffer --------------

    def _begin_direct(self, buf: bytearray, start: int, end: int) -> bool:
        """If ``buf[start:end]`` begins a message in one frame (the core's
        ``direct_frame`` decides) with at least :data:`_DIRECT_MIN` bytes to come, copy
        the payload bytes already there into the waiting reader's buffer (if it fits)
        or, with none waiting, into the ``bytes`` object the payload becomes
        (``_direct_queue``), and have the loop read the rest there. The frame's bytes
        then leave the receive buffer; return whether they did."""
        if self.protocol.incomplete_frame_size - (end - start) < _DIRECT_MIN:
            return False
        found = self.protocol.direct_frame(buf, start, end)
        if found is None:
            return False
        opcode, hlen, length = found
        into = self._into
        payload = None
        if into is None:
            # The payload copied once, unmasked in place, into its final object
            # (compiled: bytes not filled first; pure: a bytearray made bytes at the end).
            payload, into = payload_buffer(length)
        elif length > into.nbytes:
            return False
        got = end - start - hlen
        with memoryview(buf) as view:
            head = bytes(view[start : start + hlen])
            into[:got] = view[start + hlen : end]
        self._direct = _Direct(opcode, head, length, got, into, payload)
        if self._lowat_sock is not None:
            self._watermark(length - got)
        return True

    def _direct_read(self, nbytes: int) -> None:
        """The loop read ``nbytes`` more of the payload into the reader's buffer (or
        into the payload's own object: then it is queued, as any message)."""
        direct = self._direct
        assert direct is not None
        direct.got += nbytes
        if direct.got < direct.length:
            if self._lowat_sock is not None:
                self._watermark(direct.length - direct.got)
            return
        self._direct = None
        with direct.view[: direct.length] as payload:
            if direct.head[1] & 0x80:  # masked: the key ends the header
                mask_bytes(direct.head[-4:], payload)
            taken = self.protocol.direct_message(direct.opcode, payload)
        if direct.payload is not None:
            direct.view.release()
            if taken:
                data = direct.payload
                message = Message(direct.opcode, data if type(data) is bytes else bytes(data))
                self.owner._dispatch([message])
        elif taken:  # (only a Connection has a reader waiting with a buffer)
            owner = cast("Connection", self.owner)
            owner._filled_into(direct.opcode, direct.length)
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()  # until the next turn (see _DIRECT_MIN)
                self.loop.call_soon(owner._resume_reading)
        if self._lowat_sock is not None:
            self._watermark(0)  # the frame is in
        self._process()

    def _undo_direct(self) -> None:
        """The reader went away (cancelled) in the middle of a payload read into its
        buffer: put the frame's bytes so far back into a receive buffer, as if read
        there, and let the frame go on as any other."""
        direct = self._direct
        assert direct is not None
        self._direct = None
        hlen = len(direct.head)
        n = hlen + direct.got
        buf = _large(n, n + (n >> 2)) if n > RECEIVE_BUFFER_SIZE else DEFAULT_BUFFER_POOL.get(n)
        view = memoryview(buf)
        view[:hlen] = direct.head
        view[hlen:n] = direct.view[: direct.got]  # still masked: nothing unmasked it
        self._release_buffer()
        self._rbuf, self._rview = buf, view
        self._rstart, self._rend = 0, n
        self._keep(0, n)
        if self._lowat_sock is not None:
            self._watermark(self.protocol.bytes_missing(n))

    def _release_buffer(self) -> None:
        """Give the receive buffer back to the pool."""
        view = self._rview
        if view is None:
            return
        buf = self._rbuf
        assert buf is not None
        self._rview = None
        self._rbuf = None
        _let_go(view)
        # Both refuse a buffer something still exports: a view the loop has not let go
        # of yet, or a borrowed payload an application kept.
        if len(buf) > RECEIVE_BUFFER_SIZE:
            _LARGE_BUFFERS.put(buf)
        else:
            DEFAULT_BUFFER_POOL.put(buf)

    def _release_if_idle(self) -> None:
        """Give the buffer back if the connection is still idle a turn of the loop
        after a read used all its bytes, or (where the loop held on to the view it
        read into, as uvloop does) at the sweep after that read."""
        self._release_pending = False
        if self._rstart != self._rend:
            return
        tail = self._rtail
        if tail is not None:  # handed out for a read that found nothing
            try:
                tail.release()
            except BufferError:  # still in use
                return
            self._rtail = None
        self._release_buffer()
