"""What the protocol core hands to front ends: message, ping and pong events, and
:class:`MessageCallback`, the compiled message sink of callback front ends.

Like the core, one source for two builds: Cython compiles this file (as the module
``_events_c``, typed by ``_events_c.pxd``) into ``_events_c``, whose types the
compiled core cimports; :mod:`blazews.sansio.protocol` exports the ones in use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

if cython.compiled:  # C functions (compiled only): for the queue and deliver
    from cython.cimports.cpython.bytearray import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        PyByteArray_AS_STRING,
        PyByteArray_GET_SIZE,
    )
    from cython.cimports.cpython.bytes import PyBytes_AS_STRING, PyBytes_GET_SIZE  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.list import PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.ref import Py_REFCNT  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.libc.string import memcpy  # type: ignore[import-untyped, import-not-found, unused-ignore]

__all__ = ["Message", "MessageCallback", "MessageQueue", "Ping", "Pong"]


# Events hold only ints and bytes or views: they cannot be part of a reference cycle,
# so, compiled, the garbage collector does not track them (a batch of 1,000 messages
# would otherwise trigger collections), and a free list recycles their memory.
@cython.no_gc
@cython.freelist(256)
@cython.cclass
class Message:
    """A complete data message.

    Attributes:
        type: ``1`` (text) or ``2`` (binary), a :class:`MessageType` value.
        data: The payload; for text, valid UTF-8 bytes. A ``memoryview`` of the
            caller's buffer instead when ``Protocol.receive_into_buffer`` borrowed it
            (``borrow=True``).
    """

    __slots__ = ("data", "type")

    def __init__(self, type: int, data: bytes) -> None:
        self.type = type
        self.data = data

    def __repr__(self) -> str:
        more = "..." if len(self.data) > 32 else ""
        return f"Message(type={self.type}, data={self.data[:32]!r}{more})"


@cython.no_gc
@cython.cclass
class Ping:
    """A ping arrived (the pong is already queued)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


@cython.no_gc
@cython.cclass
class Pong:
    """A pong arrived."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


@cython.cclass
class MessageCallback:
    """A ``Protocol.message_sink`` that calls ``callback(arg, kinds[type], view)`` and
    releases a borrowed payload after the call, all in compiled code (the compiled
    core calls :meth:`deliver` as a C method).

    For callback front ends: the payload is always a ``memoryview`` (of the receive
    buffer when borrowed, else of the message's bytes), released when the callback
    returns (a view the callback made of it stays valid). If the callback raises,
    ``on_error()`` is called inside the ``except`` block (``logging.exception``
    works there) and the callback is not called again; the exception goes no further.

    Args:
        callback: Called with ``(arg, kinds[type], payload)``.
        arg: Its first argument (the connection handle, typically).
        kinds: What to pass for each message type: ``kinds[1]`` for text and
            ``kinds[2]`` for binary.
        on_error: Called with no argument when the callback raised.
    """

    __slots__ = ("arg", "callback", "failed", "kinds", "on_error")

    def __init__(
        self,
        callback: Callable[[Any, Any, memoryview], object],
        arg: Any,
        kinds: Sequence[Any],
        on_error: Callable[[], object],
    ) -> None:
        self.callback = callback
        self.arg = arg
        self.kinds = tuple(kinds)
        self.on_error = on_error
        self.failed = False

    def deliver(self, opcode: int, data: Any) -> None:
        """Hand one message to the callback (what a message sink is called with)."""
        if type(data) is not memoryview:
            data = memoryview(data)  # (assembled from fragments, or inflated)
        if not self.failed:
            refs = Py_REFCNT(data) if cython.compiled else 0
            try:
                self.callback(self.arg, self.kinds[opcode], data)
            except Exception:
                self.failed = True
                self.on_error()
            else:
                # Compiled: when the callback kept no reference to the view, nobody
                # can use it after the call; it goes with the core's own references,
                # without a release() call (Listener ingest of 64 B: +12% messages/s).
                if cython.compiled and Py_REFCNT(data) == refs:
                    return
        try:
            data.release()
        except BufferError:  # the callback made an array of it and kept it
            pass

    def __call__(self, opcode: int, data: Any) -> None:
        self.deliver(opcode, data)


# take_into's results for lengths up to _RESULT_MAX, made once and kept: a
# read_message_into of a small message would otherwise make a tuple its caller drops
# at once (and, past 256, an int), ~130 of its ~2,500 instructions (callgrind, 64 B
# ingest). A tuple is immutable: one shared by calls is the same result. Kept for the
# kinds of the first queue that takes into a buffer (every asyncio connection's are
# the same tuple); for others, made per call. At most 2 x 2,049 tuples, made as
# lengths come: 32 KiB of slots, and ~180 KiB if every length is seen.
_RESULT_MAX = 2048
_results: list[Any] = [None] * (2 * (_RESULT_MAX + 1))
_results_kinds: Any = None


@cython.cclass
class MessageQueue(list):  # type: ignore[type-arg]
    """The messages a front end received and its application has not read yet:
    ``self[head:]``, oldest first. Taking advances ``head``; the list is cleared (its
    array freed) when the last is taken, so an idle connection holds none.

    Compiled, :meth:`take_into` is the hot path of ``read_message_into``: one C call
    that copies the next payload with ``memcpy`` (a Python ``buf[:n] = data`` and the
    bookkeeping around it cost ~230 ns more per message).

    Flow control: while ``paused`` (the front end sets it when it stops reading, with
    ``resume_at`` and ``on_resume``), the take that leaves ``resume_at`` messages or
    fewer clears it and calls ``on_resume()``. ``full_reads`` is the front end's count
    of reads that found the queue full before its reader had a turn.

    Args:
        kinds: What :meth:`take_into` returns for each message type: ``kinds[1]``
            for text and ``kinds[2]`` for binary.
    """

    __slots__ = ("full_reads", "head", "kinds", "on_resume", "paused", "resume_at")

    def __init__(self, kinds: Sequence[Any]) -> None:
        super().__init__()
        self.head = 0
        self.kinds = tuple(kinds)
        self.on_resume: Callable[[], object] | None = None
        self.paused = False
        self.resume_at = 0
        self.full_reads = 0

    def pending(self) -> int:
        """How many messages are queued."""
        return len(self) - self.head

    def peek(self) -> Message | None:
        """The oldest message, left queued; ``None`` if there is none.

        Compiled: read from the list's array (a subclass's item lookup goes through
        an index object, ~50 instructions per message taken)."""
        head = self.head
        if head >= (PyList_GET_SIZE(self) if cython.compiled else len(self)):
            return None
        if cython.compiled:
            return cython.cast(Message, PyList_GET_ITEM(self, head))  # type: ignore[no-any-return]
        return self[head]  # type: ignore[no-any-return]

    def take(self) -> Message:
        """Remove and return the oldest message.

        Raises:
            IndexError: None is queued.
        """
        message = self.peek()
        if message is None:
            raise IndexError("no message is queued")
        self._advance()
        return message

    def _advance(self) -> None:
        """The oldest message was taken."""
        head = self.head + 1
        # (compiled: a list's size as a C macro; len() is a call through the type)
        if head == (PyList_GET_SIZE(self) if cython.compiled else len(self)):
            self.clear()
            head = 0
        self.head = head
        if self.paused and len(self) - head <= self.resume_at:
            self.paused = False
            on_resume, self.on_resume = self.on_resume, None
            if on_resume is not None:
                on_resume()

    def unread(self, message: Message) -> None:
        """Put ``message`` back in front of the others."""
        if self.head:
            self.head -= 1
            self[self.head] = message
        else:
            self.insert(0, message)

    def queue_messages(self, events: list[Any]) -> list[Any] | None:
        """Queue the :class:`Message` events of ``events``; return the others, in
        their order, or ``None`` if there are none."""
        others: list[Any] | None = None
        for event in events:
            if type(event) is Message:
                if cython.compiled:  # (self.append: a method looked up by name)
                    PyList_Append(self, event)
                else:
                    self.append(event)
            elif others is None:
                others = [event]
            else:
                others.append(event)
        return others

    def take_into(self, buf: Any) -> Any:
        """Copy the oldest message into ``buf`` and take it; return ``(kind, length)``.

        Only for a ``bytes`` payload and a ``bytearray`` ``buf`` large enough: else
        (or if nothing is queued) return ``None`` and take nothing.
        """
        message = self.peek()
        if message is None:
            return None
        data = message.data
        if type(data) is not bytes or type(buf) is not bytearray:
            return None
        if cython.compiled:  # (the sizes as C macros, not len() calls)
            n = PyBytes_GET_SIZE(data)
            if n > PyByteArray_GET_SIZE(buf):
                return None
            memcpy(PyByteArray_AS_STRING(buf), PyBytes_AS_STRING(data), n)
        else:
            n = len(data)
            if n > len(buf):
                return None
            buf[:n] = data
        self._advance()
        kinds = self.kinds
        if n <= _RESULT_MAX:
            global _results_kinds
            if _results_kinds is None:
                _results_kinds = kinds
            if kinds is _results_kinds:
                op = message.type
                slot = (op - 1) * (_RESULT_MAX + 1) + n if op == 1 or op == 2 else -1
                if slot >= 0:
                    result = _results[slot]
                    if result is None:
                        result = _results[slot] = (kinds[op], n)
                    return result
        return (kinds[message.type], n)
