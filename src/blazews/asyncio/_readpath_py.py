"""What runs for every socket read of a connection: its read path, written once for
two builds.

A connection (:class:`~blazews.asyncio.base.BaseConnection`) owns one
:class:`ReadPath` (through its subclass :class:`~blazews.asyncio._receive.ReceiveBuffer`,
as ``conn._rx``): the receive buffer's fields, the transport, the core, what waits to
be written, and the common case of each step of a read (hand the loop the free end
of the buffer, account for the bytes read, write what the core produced, keep or let
go of the buffer) with no Python frame in the compiled build. The connection stays
the protocol the transport is given, but what its ``get_buffer`` and
``buffer_updated`` give the transport are the read path's own methods
(``get_buffer``, and ``_lend_read`` or ``_queue_read``): uvloop takes them once, when
the protocol is set, and calls them on every read with nothing in between. The read
path hands back to its owner through a small
interface: ``_dispatch(events)`` (what the core parsed, beyond what a message sink
took), ``_closing()`` (the core says the connection closes), ``_drained()`` (writing
may go on), and, for a connection that queues, ``_queue``, ``_fill_into`` and
``_filled_into`` (see ``ReceiveBuffer``).

Anything beyond the common case (a buffer to take or to grow, an incomplete frame, a
waiting ``read_message_into``, SO_RCVLOWAT) goes to the Python methods of
``ReceiveBuffer``, named here.

Why compiled: after the loop wakes up for a read, every Python frame and every module
the read passes through runs cold; on 1-in-flight echo of 256 B through a Listener
(uvloop), the Python glue around the core cost ~1 us per side of a ~100 us round
trip. :class:`SendHandle` is the same for ``ListenerConnection.send``, kept in this
module since a message's read has just run through it. What a coroutine-API
connection does per message (queue, read, send) is :mod:`._queued`.

Like the core, Cython compiles this file (as the module ``_readpath_c``, typed by
``_readpath_c.pxd``) into ``_readpath_c``; :mod:`._receive` picks the build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ..sansio._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

from ..sansio.extensions._deflate_codec import PerMessageDeflate
from ..sansio.frames import MaskLater, MessageType
from ..sansio.states import Side, State
from ._send import stable

if cython.compiled:  # for broadcast (see ReadPath._write_direct and write_frame_all)
    from cython.cimports.cpython.bytes import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        PyBytes_AS_STRING,
        PyBytes_GET_SIZE,
    )
    from cython.cimports.cpython.list import PyList_GET_ITEM  # type: ignore[import-untyped, import-not-found, unused-ignore]

if cython.compiled:  # the kernels' C functions
    from cython.cimports.blazews._native._kernels import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        prefetch,
        socket_send,
        sub_view,
        view_nbytes,
    )

if TYPE_CHECKING:
    import asyncio

    from ..sansio.protocol import Protocol as CoreProtocol
    from ._receive import _Direct
    from ._send import Outbox
    from .base import BaseConnection

__all__ = [
    "COMPILED",
    "LOOPS_HOLDING_VIEWS",
    "POOLED_SIZE",
    "ReadPath",
    "SendHandle",
    "write_frame_all",
]

# Whether this is the compiled build of the module (:mod:`._queued` is built the same
# way: it cimports ReadPath).
COMPILED: bool = cython.compiled

# The size of a pooled receive buffer (_receive.RECEIVE_BUFFER_SIZE is this): a larger
# one was taken for large frames or read-ahead, which the Python methods handle.
POOLED_SIZE = 16384

# Loop classes seen holding the view they read into while buffer_updated runs.
LOOPS_HOLDING_VIEWS: set[type] = set()

_OPEN = State.OPEN
_CLOSING = State.CLOSING
_SERVER = Side.SERVER
# (send's kinds, compared by identity first: a comparison is a Python call)
_TEXT = MessageType.TEXT
_BINARY = MessageType.BINARY

# The last transport type _write met, and its write, is_closing and
# get_write_buffer_size, taken from the type instead of looked up by name on each
# write (None: looked up): only for a type whose instances cannot override them (no
# instance dict, no attribute hook of its own), as uvloop's. Cuts two lookups by name
# per message written. One tuple, read once per write: connections of loops in other
# threads may replace it meanwhile.
_wmethods: tuple[Any, Any, Any, Any] = (None, None, None, None)


# Transport types over a socket of their own, written in order as it comes (no TLS):
# where one holds nothing, a write(2) to its socket is what its own write would do.
_SOCKET_TRANSPORTS = {
    ("uvloop.loop", "TCPTransport"),
    ("uvloop.loop", "UnixTransport"),
    ("asyncio.selector_events", "_SelectorSocketTransport"),
}


def _socket_fd(transport: Any) -> int:
    """The descriptor of ``transport``'s socket where it is one of _SOCKET_TRANSPORTS,
    else -1."""
    kind = type(transport)
    if (kind.__module__, kind.__name__) not in _SOCKET_TRANSPORTS:
        return -1
    sock = transport.get_extra_info("socket")
    try:
        return int(sock.fileno()) if sock is not None else -1
    except (AttributeError, OSError, ValueError):
        return -1


def _learn_transport(t: Any) -> tuple[Any, Any, Any, Any]:
    """Make ``t`` the transport type ``_write`` knows; return ``_wmethods`` for it."""
    global _wmethods
    direct = t.__dictoffset__ == 0 and t.__getattribute__ is object.__getattribute__
    _wmethods = (
        (t, t.write, t.is_closing, t.get_write_buffer_size) if direct else (t, None, None, None)
    )
    return _wmethods


@cython.cclass
class ReadPath:
    """A connection's read path: its receive buffer (the pooled buffer, a view of all
    of it, the view the loop is reading into, and where the unparsed bytes begin and
    end), its transport and core, what waits to be written, and the common case of a
    read. Owned by the connection (``owner``), which it hands events to.

    Its subclass, ``ReceiveBuffer``, provides the Python methods named below:
    ``_get_buffer``, ``_parsed_rest``, ``_write_rest`` and ``_read_rest``.
    """

    __slots__ = (
        "_batching",
        "_direct",
        "_fd",
        "_holds_views",
        "_into",
        "_lowat",
        "_lowat_sock",
        "_out",
        "_rbuf",
        "_release_pending",
        "_rend",
        "_rfull",
        "_rstart",
        "_rtail",
        "_rview",
        "_write_cap",
        "_writing_paused",
        "loop",
        "owner",
        "protocol",
        "transport",
    )

    if TYPE_CHECKING:
        owner: BaseConnection
        protocol: CoreProtocol
        loop: asyncio.AbstractEventLoop
        transport: asyncio.Transport | None
        _out: Outbox | None
        _into: memoryview | None  # the buffer of a waiting read_message_into call
        _direct: _Direct | None  # a payload being read into _into

    def __init__(
        self,
        owner: Any,
        protocol: CoreProtocol,
        loop: asyncio.AbstractEventLoop,
        write_cap: int,
    ) -> None:
        self.owner = owner  # the connection: see the module's docstring
        self.protocol = protocol
        self.loop = loop
        self.transport = None  # (set by the owner's connection_made)
        self._out = None  # chunks held back behind a large client frame (the outbox)
        self._rbuf: bytearray | None = None
        self._rview: memoryview | None = None
        self._rtail: memoryview | None = None
        self._rstart = 0
        self._rend = 0
        self._rfull = False  # the last read filled the buffer to its end
        self._release_pending = False
        self._lowat_sock: Any = None  # the socket, where SO_RCVLOWAT is used
        self._lowat = 1  # its current value
        self._into = None  # (the coroutine API's Connection sets it while a read waits)
        self._writing_paused = False  # the transport's buffer is above its high-water mark
        self._write_cap = write_cap  # max_write_buffer, or 0: see SendHandle.send
        self._direct = None
        self._fd = -2  # the socket's descriptor for _write_direct (-1: none; -2: not known yet)
        self._batching = False  # a Listener's callbacks run: their sends wait
        # The loop holds the view it read into until buffer_updated returns (uvloop).
        self._holds_views = False

    # -- the subclass's part -----------------------------------------------------------

    def _get_buffer(self, sizehint: int) -> memoryview:
        """``get_buffer`` beyond its common case."""
        raise NotImplementedError

    def _parsed_rest(self, buf: bytearray, start: int, end: int, released: bool) -> None:
        """``_parsed`` beyond its common case."""
        raise NotImplementedError

    def _write_rest(self, out: list[Any]) -> None:
        """Write ``out`` beyond the common case of one frame and nothing held back."""
        raise NotImplementedError

    def _read_rest(self, nbytes: int) -> None:
        """``_queue_read`` beyond its common case."""
        raise NotImplementedError

    # -- reading -----------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        view = self._rview
        if view is not None and self._direct is None and self._into is None and not self._rfull:
            start = self._rend
            if start == 0 and self._holds_views:
                # All of an empty buffer: its view, not a new one. (Where the loop
                # lets go of the view, _took releases the one it read into: that
                # must not be this one.)
                self._rtail = view
                return view
            # (compiled: view[start:] without a slice object)
            end = len(view)
            tail = sub_view(view, start, end) if cython.compiled else view[start:end]
            self._rtail = tail
            return tail
        return self._get_buffer(sizehint)

    def _took(self, nbytes: int) -> bool:
        """Account for ``nbytes`` the loop read; return whether it let go of the view it
        read into (then a buffer emptied by this read may go back at once)."""
        tail = self._rtail
        released = True
        if tail is not None:
            self._rtail = None
            if self._holds_views:
                released = False  # the loop lets go of it once we return
            elif type(self.loop) in LOOPS_HOLDING_VIEWS:
                self._holds_views = True
                released = False
            else:
                try:
                    tail.release()
                except BufferError:  # uvloop lets go of it only once we return
                    LOOPS_HOLDING_VIEWS.add(type(self.loop))
                    self._holds_views = True
                    released = False
        buf = self._rbuf
        assert buf is not None
        end = self._rend + nbytes
        self._rend = end
        self._rfull = end == len(buf)
        return released

    def _bytes_read(self, nbytes: int) -> tuple[bytearray, int, int, bool]:
        """Account for ``nbytes`` the loop read; return the buffer, the bounds of its
        unparsed bytes, and whether the loop let go of the view it read into."""
        released = self._took(nbytes)
        buf = self._rbuf
        assert buf is not None
        return buf, self._rstart, self._rend, released

    def _parsed(self, buf: bytearray, start: int, end: int, released: bool) -> None:
        """The core used ``buf`` up to ``start``: keep ``[start:end]``, or let the
        buffer go when nothing is left."""
        protocol = self.protocol
        if (
            start == end
            and not released
            and self._release_pending  # parked already: it waits for the sweep
            and self._into is None
            and self._lowat == 1
            and protocol.incomplete_frame_size == 0
        ):
            self._rstart = self._rend = 0
            return
        self._parsed_rest(buf, start, end, released)

    # -- writing what the core produced -----------------------------------------------

    def _flush(self) -> None:
        """Write what the core produced (a client's large frames through the outbox)."""
        out = self.protocol.data_to_send()
        if out:
            self._write(out)

    def _write(self, out: list[Any]) -> None:
        if len(out) == 1 and type(out[0]) is not MaskLater and self._write_one(out[0]):
            return
        self._write_rest(out)

    def _write_one(self, data: Any) -> bool:
        """Write ``data`` (one frame, bytes-like) straight to the transport when nothing
        is held back (no outbox) and the transport is open; return whether it did."""
        transport = self.transport
        if self._out is not None or transport is None:
            return False
        known = _wmethods
        if known[0] is not type(transport):
            known = _learn_transport(type(transport))
        if known[1] is not None:
            if known[2](transport):
                return False
            known[1](transport, data)
            return True
        if transport.is_closing():
            return False
        transport.write(data)
        return True

    def _write_direct(self, data: Any) -> bool:
        """``_write_one`` for ``broadcast``: where the transport is a plain socket's
        and holds nothing (compiled build), send ``data`` on the socket with one
        send(2), no call into the transport; what the socket does not take goes
        to the transport, after it (in order: the transport held nothing). Saves
        the transport's bookkeeping per connection (uvloop: ~1 us a write), which is
        most of what a broadcast costs beyond the system call."""
        if cython.compiled:
            transport = self.transport
            if type(data) is bytes and self._out is None and transport is not None:
                fd = self._fd
                if fd == -2:
                    fd = self._fd = _socket_fd(transport)
                if fd >= 0:
                    known = _wmethods
                    if known[0] is not type(transport):
                        known = _learn_transport(type(transport))
                    if known[1] is not None:
                        idle = known[3](transport) == 0 and not known[2](transport)
                    else:
                        idle = transport.get_write_buffer_size() == 0 and not transport.is_closing()
                    if idle:
                        size = PyBytes_GET_SIZE(data)
                        n = socket_send(fd, PyBytes_AS_STRING(data), size)
                        if n == size:
                            return True
                        if n > 0:
                            transport.write(data[n:])
                            return True
                        # (nothing taken: would block, or an error the transport's
                        # own write meets and handles as it does)
        return self._write_one(data)

    def _process(self) -> None:
        """Write what the core produced, dispatch its events, close when it says so."""
        protocol = self.protocol
        out = protocol.data_to_send()
        if out:
            self._write(out)
        events = protocol.events_received()
        if events:
            self.owner._dispatch(events)
        state = protocol.state
        if state is not _OPEN and state >= _CLOSING:
            self.owner._closing()

    # -- a Listener's read -------------------------------------------------------------

    def _lend_read(self, nbytes: int) -> None:
        """``buffer_updated`` for a connection that lends payloads to a callback (a
        Listener): it never waits in ``read_message_into`` nor queues views. Sends made
        by the callbacks during the read are written together, by ``_process``; the
        events it dispatches flush their own."""
        released = self._took(nbytes)
        buf = self._rbuf
        view = self._rview  # (all of buf: the core makes no view per read)
        assert buf is not None and view is not None
        start = self._rstart
        end = self._rend
        protocol = self.protocol
        self._batching = True
        try:
            start += protocol.receive_into_buffer(view, start, end, True)
        finally:
            self._batching = False
        self._process()
        self._parsed(buf, start, end, released)

    # -- a coroutine-API connection's read ----------------------------------------------

    def _queue_read(self, nbytes: int) -> None:
        """``buffer_updated`` of a connection that queues its messages: its common
        case. Anything else goes to ``_read_rest`` (a payload read into a waiting
        reader's buffer, a read_message_into waiting, a buffer grown for large
        frames). The messages go to the owner's ``_dispatch`` (``_queued.queue_dispatch``)."""
        buf = self._rbuf
        if (
            self._direct is not None
            or self._into is not None
            or buf is None
            or len(buf) > POOLED_SIZE
        ):
            self._read_rest(nbytes)
            return
        released = self._took(nbytes)
        start = self._rstart
        end = self._rend
        protocol = self.protocol
        view: Any = self._rview  # (all of buf: the core makes no view per read)
        start += protocol.receive_into_buffer(view, start, end, False)
        self._process()
        self._parsed(buf, start, end, released)


@cython.cclass
class SendHandle:
    """The base of ``ListenerConnection``: its connection, the connection's read path
    and protocol, and ``send``."""

    __slots__ = ("_conn", "_kept_from", "_protocol", "_rx")

    def __init__(self, conn: Any) -> None:
        self._conn: Any = conn  # the _ListenerSide connection
        self._rx: ReadPath = conn._rx
        self._protocol: CoreProtocol = conn.protocol
        self._kept_from: int = conn._kept_from  # (a class attribute: looked up once)

    def send(self, data: Any, kind: MessageType | None = None, *, compress: bool = True) -> None:
        """Send a message: ``str`` as text, any bytes-like object as binary.

        Sends made during a callback are written together once the messages of the
        current read are all dispatched; the others are written at once. ``data`` may
        change as soon as this returns: a large payload the transport would keep
        (a server's over 16 KiB, a client's over 1 MiB) is copied first unless it is
        ``bytes``; a client masks a ``bytes`` payload over 1 MiB on its way out, a
        piece at a time, with no copy.

        Args:
            data: The payload: ``str``, or any bytes-like object (a borrowed payload
                included).
            kind: :attr:`MessageType.TEXT` sends bytes-like ``data`` as a text frame
                (it must be UTF-8, not checked), :attr:`MessageType.BINARY` sends
                ``str`` as UTF-8 in a binary frame; ``None`` picks by type.
            compress: ``False`` sends it uncompressed even when permessage-deflate is
                in use.

        Raises:
            ConnectionClosed: The connection is closed or closing.
        """
        rx: ReadPath = self._rx
        t = type(data)
        if t is str:
            data = data.encode()
            opcode = 1 if kind is None or kind is _TEXT else 2 if kind == 2 else 1
        else:
            if t is not bytes and (
                t is not memoryview
                or (view_nbytes(data) if cython.compiled else data.nbytes) >= self._kept_from
            ):
                # The core copies a payload into its frame unless it is large; a large
                # one that may change (a borrowed payload, a buffer refilled once this
                # returns) is copied here, since the transport may keep what it is
                # given.
                data = stable(data, self._kept_from)
            opcode = 2 if kind is None or kind is _BINARY else 1 if kind == 1 else 2
        # (send_frame: what send_data, send_text and send_binary come to)
        if compress:
            self._protocol.send_frame(opcode, data)
        else:
            self._protocol.send_frame(opcode, data, True, compress=False)
        if not rx._batching:
            rx._flush()
        if rx._writing_paused and rx._write_cap:
            self._conn._check_write_cap()  # a peer that does not read: bounded by the cap


def write_frame_all(items: list[Any], frame: Any, frame_for: Any, rest: list[Any]) -> int:
    """The common case of ``broadcast``, compiled: write a prepared frame to each
    connection of ``items`` that is open, not slow and a server's: straight to its
    transport when its core holds nothing to send first, else through the core
    (``send_prepared``); append the others to ``rest``, for the caller's general
    path. Return how many got a frame.

    ``frame`` is the frame of connections without extensions; ``frame_for(protocol)``
    (``PreparedMessage.frame_for``) gives the others' (one per compression setting),
    or ``None`` for a connection that builds its own: it goes to ``rest`` too.
    ``items`` holds connections or Listener handles (``SendHandle``).

    Each connection's objects (read path, core, transport) lie far apart in memory,
    and a broadcast to thousands touches each of them once: left to itself, the loop
    would wait for memory at every one (measured on 10,000 connections: most of
    what the loop costs beyond its system calls). The compiled build first resolves
    every item's read path, then, while it writes to one connection, has the CPU
    load what the next ones will need, a stage per link of the chain: the read
    paths three ahead, their cores and transports two ahead, the cores' lists one
    ahead. Each write is a system call of microseconds, so one step ahead is enough.
    """
    n = 0
    count = len(items)
    last_key: Any = None  # the last permessage-deflate shared key, and its frame
    last_frame: Any = None
    rxs: list[Any] = [None] * count
    for i in range(count):
        if cython.compiled and i + 8 < count:
            prefetch(cython.cast(cython.p_void, PyList_GET_ITEM(items, i + 8)), 256)
        item = items[i]
        rx = item._rx if isinstance(item, SendHandle) else getattr(item, "_rx", None)
        if isinstance(rx, ReadPath):
            rxs[i] = rx
    for i in range(count):
        if cython.compiled:
            _prefetch_ahead(rxs, i, count)
        if rxs[i] is None:
            rest.append(items[i])
            continue
        c = rxs[i]
        rxs[i] = None  # (let go while its object is in the cache, not at the list's end)
        p = c.protocol
        if (
            p.state is not _OPEN
            or c.transport is None
            or c._writing_paused
            or c._out is not None
            or p.side is not _SERVER
        ):
            rest.append(items[i])
            continue
        own = frame
        exts = p.extensions
        if exts:
            # frame_for's answer depends on the shared key only (see there): asked
            # once per key, not once per connection.
            key = None
            if len(exts) == 1 and type(exts[0]) is PerMessageDeflate:
                key = exts[0]._broadcast_key
            if key is not None and key is last_key:
                own = last_frame
            else:
                own = frame_for(p)
                if own is None:
                    rest.append(items[i])
                    continue
                if key is not None:
                    last_key, last_frame = key, own
        # Straight to the transport when the core holds nothing to send before it
        # (the common case: no list made and emptied per connection).
        if p.holds_output() or not c._write_direct(own):
            p.send_prepared(own)
            c._flush()
        n += 1
    return n


def _prefetch_ahead(rxs: list[Any], i: int, count: int) -> None:
    """``write_frame_all``'s loads ahead (compiled build; see there). Touches only
    objects loaded a step before: a read path's fields at i + 2, its core's at i + 1."""
    if i + 3 < count:
        ahead = PyList_GET_ITEM(rxs, i + 3)
        if ahead is not cython.NULL:
            prefetch(cython.cast(cython.p_void, ahead), 256)
    if i + 2 < count:
        c = rxs[i + 2]
        if c is not None:
            prefetch(cython.cast(cython.p_void, c.protocol), 128)
            prefetch(cython.cast(cython.p_void, c.transport), 256)
    if i + 1 < count:
        c = rxs[i + 1]
        if c is not None:
            p = c.protocol
            prefetch(cython.cast(cython.p_void, p._out), 64)
            prefetch(cython.cast(cython.p_void, p.extensions), 64)
