"""The buffer pool, written once: the pure-Python module and the source of ``_buffers_c``.

Cython compiles this same file into ``blazews._buffers_c`` with the C types of
``_buffers_c.pxd`` (DESIGN §2: one source, two builds); :mod:`blazews.buffers` picks
one and documents the rules.
"""

from __future__ import annotations

import array
import operator
import sys
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_TIERS", "BufferPool", "PoolStats"]

DEFAULT_TIERS: tuple[int, ...] = (256, 1024, 4096, 16384)
"""The tier sizes of a pool built without ``tiers``, in bytes."""

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""The most bytes a pool built without ``max_bytes`` holds (4 MiB)."""


def _exported(buf: bytearray) -> bool:
    """Tell whether something still exports ``buf``'s memory (a view, an array...).

    A bytearray with exports refuses to change size, and CPython does not tell the
    export count otherwise. Popping and re-appending the last byte leaves the
    contents and the allocation as they were (a shrink by one byte never moves the
    buffer, and the append fits in the room the pop left). It allocates no object
    (the byte is a cached small int) and runs no Python code.
    """
    try:
        last = buf.pop()
    except BufferError:
        return True
    buf.append(last)
    return False


# Compiled by Cython, a module-level function is no longer a Python function.
_COMPILED = type(_exported).__name__ != "function"


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


# Thread safety. put() is a check-then-act sequence (is the buffer held already? is it
# exported? is there room under max_bytes?) and get() a take-then-count one; each must
# be atomic as a whole, or two threads putting the same buffer back could both pass the
# identity check (and the pool would later hand it out twice), or both pass the bound.
#
# - Pure Python: a thread switch may happen between any two bytecodes, so a lock
#   guards both sequences.
# - Compiled, with the GIL: each sequence is C code that holds the GIL throughout and
#   never runs Python code: it calls no Python function, allocates no object the
#   garbage collector tracks (so no collection, no finalizer, no __del__, can run in
#   the middle), and only touches exact built-in types (int, set, list, bytearray),
#   whose operations do not release the GIL. (id(), which runs the audit hooks, is
#   called before the sequence.) Nothing else can run in between, so the lock would
#   only cost time: it is skipped.
# - Compiled, on a free-threaded build (no GIL): the lock is back.
_LOCKED = not _COMPILED or not _gil_enabled()


class PoolStats(NamedTuple):
    """Counters of a :class:`BufferPool`, as :meth:`BufferPool.stats` returns them.

    Attributes:
        hits: ``get`` calls served with a held buffer.
        misses: ``get`` calls within the tiers that had to allocate a new buffer.
        unpooled: ``get`` calls beyond the largest tier (always a fresh buffer).
        returned: ``put`` calls whose buffer the pool kept.
        dropped: ``put`` calls whose buffer the pool refused (foreign, resized,
            already held, or the pool was full).
        held_buffers: Buffers the pool holds now.
        held_bytes: Bytes the pool holds now.
    """

    hits: int
    misses: int
    unpooled: int
    returned: int
    dropped: int
    held_buffers: int
    held_bytes: int


class BufferPool:
    """A bounded, thread-safe pool of ``bytearray`` buffers in fixed size tiers.

    Args:
        max_bytes: The most bytes the pool holds at once; buffers put back beyond it
            are dropped. ``0`` disables pooling (every ``get`` allocates).
        tiers: The buffer sizes the pool deals in, in bytes; positive and distinct,
            in any order.

    Raises:
        ValueError: ``max_bytes`` is negative, or ``tiers`` is empty or holds a size
            that is not positive or appears twice.

    Warning:
        A buffer from the pool is handed out as it was put back: it holds whatever
        its previous user wrote, possibly another connection's data. Write before
        you read, or clear it yourself.

    Warning:
        After ``put(buf)`` the buffer belongs to the pool: do not use it, and do not
        put it back again after a later ``get`` handed it to someone else. The pool
        detects a buffer put back twice while it holds it, and drops a buffer that
        something still exports (a live memoryview or array over it), but cannot know
        about plain references you kept.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, tiers: Iterable[int] = DEFAULT_TIERS
    ) -> None:
        max_bytes = operator.index(max_bytes)
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        sizes = [operator.index(size) for size in tiers]
        if not sizes:
            raise ValueError("at least one tier is needed")
        if any(size <= 0 for size in sizes):
            raise ValueError("tier sizes must be positive")
        if len(set(sizes)) != len(sizes):
            raise ValueError("tier sizes must be distinct")
        self._tiers: tuple[int, ...] = tuple(sorted(sizes))
        # The sizes again, as machine integers (compiled: a typed view, read in C).
        self._sizes: Any = array.array("q", self._tiers)
        self._ntiers = len(self._tiers)
        self._largest = self._tiers[self._ntiers - 1]
        self._max_bytes = max_bytes
        # One free stack per tier: _stacks[i][:_counts[i]] are the held buffers of
        # _sizes[i] bytes, the slots beyond are None. A stack never shrinks, so a get/put
        # cycle moves no memory (a list popped empty would be reallocated each time).
        self._stacks: list[list[Any]] = [[] for _ in self._tiers]
        # _keys[i][j] is id(_stacks[i][j]): get() needs no id() call (which runs the
        # audit hooks, that is Python code, inside the critical section).
        self._keys: list[list[Any]] = [[] for _ in self._tiers]
        self._counts: Any = array.array("q", bytes(8 * self._ntiers))
        # id() of every buffer held. The pool references each held buffer, so an id in
        # this set cannot be reused by another object while the buffer is held.
        self._held: set[int] = set()
        self._held_bytes = 0
        self._hits = 0
        self._misses = 0
        self._unpooled = 0
        self._returned = 0
        self._dropped = 0
        self._lock: Any = threading.Lock() if _LOCKED else None

    @property
    def tiers(self) -> tuple[int, ...]:
        """The tier sizes, smallest first."""
        return self._tiers

    @property
    def max_bytes(self) -> int:
        """The most bytes the pool holds at once."""
        return self._max_bytes

    def get(self, size: int) -> bytearray:
        """Return a buffer of at least ``size`` bytes.

        Within the tiers, the buffer's length is that of the smallest tier holding
        ``size`` bytes, not ``size``: ``get(100)`` returns a 256-byte buffer. Slice or
        use the length the read returns. Give it back with :meth:`put`.

        Beyond the largest tier, the buffer is a fresh ``bytearray(size)`` of exactly
        ``size`` zero bytes that the pool will not take back (``put`` drops it), so
        calling ``put`` on it anyway is harmless.

        Args:
            size: The bytes needed; ``0`` gets the smallest tier.

        Returns:
            A ``bytearray``; from the pool its contents are stale (see the class
            warning), freshly allocated it is zeroed.

        Raises:
            ValueError: ``size`` is negative.
            TypeError: ``size`` is not an integer.
        """
        if type(size) is not int:
            size = operator.index(size)
        if size < 0:
            raise ValueError("size must not be negative")
        # The smallest tier holding ``size``: a linear scan over a handful of tiers
        # beats a bisect call. Here and below the code is inline, not in methods: in
        # pure Python a call costs more than the work.
        i = 0
        while i < self._ntiers and size > self._sizes[i]:
            i += 1
        if i == self._ntiers:
            self._count_unpooled()
            return bytearray(size)
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            n = self._counts[i]
            if n:
                n -= 1
                stack = self._stacks[i]
                buf = stack[n]
                stack[n] = None
                keys = self._keys[i]
                self._held.discard(keys[n])
                keys[n] = None
                self._counts[i] = n
                self._held_bytes -= self._sizes[i]
                self._hits += 1
                return buf  # type: ignore[no-any-return]
            self._misses += 1
        finally:
            if lock is not None:
                lock.release()
        return bytearray(self._sizes[i])

    def get_exact(self, size: int) -> tuple[memoryview | bytearray, bool]:
        """Return a buffer of exactly ``size`` bytes and whether it came from the pool.

        Within the tiers, the buffer is a ``memoryview`` of the first ``size`` bytes of
        a pooled ``bytearray`` and ``pooled`` is ``True``: give it back by passing the
        view to :meth:`put`, which releases the view and keeps its underlying buffer.
        Beyond the largest tier, it is a fresh ``bytearray(size)`` and ``pooled`` is
        ``False``: nothing needs to be given back (``put`` would drop it).

        Args:
            size: The exact length wanted.

        Returns:
            ``(buffer, pooled)``.

        Raises:
            ValueError: ``size`` is negative.
            TypeError: ``size`` is not an integer.

        Warning:
            The view aliases the pooled buffer: after ``put(view)`` the view is
            released and using it raises ``ValueError``. Views sliced from it, or
            arrays made over it, keep the buffer exported: release them before
            ``put``, or the pool drops the buffer rather than hand out memory still in
            use.
        """
        size = operator.index(size)
        if size < 0:
            raise ValueError("size must not be negative")
        if size > self._largest:
            self._count_unpooled()
            return bytearray(size), False
        return memoryview(self.get(size))[:size], True

    def _count_unpooled(self) -> None:
        lock = self._lock
        if lock is None:
            self._unpooled += 1
        else:
            with lock:
                self._unpooled += 1

    def put(self, buf: bytearray | memoryview) -> None:
        """Give a buffer back to the pool.

        Kept only if it is a ``bytearray`` whose length is one of the tiers, that
        nothing exports any more (no live memoryview, numpy array... over it), that
        the pool does not already hold, and that fits under ``max_bytes``; otherwise
        it is dropped silently and counted in :attr:`PoolStats.dropped`. A
        ``memoryview`` (as :meth:`get_exact` returns) is released and the
        ``bytearray`` it views, if any, is put back by the same rules.

        Args:
            buf: A buffer from :meth:`get`, or a view from :meth:`get_exact`.
        """
        base: Any = buf
        if type(base) is not bytearray:
            base = self._unwrap(base)
            if base is None:
                self._drop()
                return
        size = len(base)
        i = 0
        while i < self._ntiers and size > self._sizes[i]:
            i += 1
        key = id(base)
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:  # the critical section (see the thread-safety note above)
            if (
                i == self._ntiers
                or self._sizes[i] != size  # not a tier size: foreign or resized
                or self._held_bytes + size > self._max_bytes
                or key in self._held  # put back twice
                or _exported(base)
            ):
                self._dropped += 1
                return
            self._held.add(key)
            n = self._counts[i]
            stack = self._stacks[i]
            keys = self._keys[i]
            if n < len(stack):
                stack[n] = base
                keys[n] = key
            else:
                stack.append(base)
                keys.append(key)
            self._counts[i] = n + 1
            self._held_bytes += size
            self._returned += 1
        finally:
            if lock is not None:
                lock.release()

    @staticmethod
    def _unwrap(buf: Any) -> Any:
        """Release a view and return the ``bytearray`` it viewed; ``None`` if unfit."""
        if type(buf) is not memoryview:
            return None
        try:
            base = buf.obj
            buf.release()
        except ValueError:  # already released: this view was put back before
            return None
        except BufferError:  # something still exports from this view: in use
            return None
        return base if type(base) is bytearray else None

    def _drop(self) -> None:
        lock = self._lock
        if lock is None:
            self._dropped += 1
        else:
            with lock:
                self._dropped += 1

    def clear(self) -> None:
        """Drop every held buffer (the counters other than held ones are kept)."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            for i in range(self._ntiers):
                self._stacks[i].clear()
                self._keys[i].clear()
                self._counts[i] = 0
            self._held.clear()
            self._held_bytes = 0
        finally:
            if lock is not None:
                lock.release()

    def _held_buffers(self) -> list[bytearray]:
        """Every buffer the pool holds, smallest tier first (for tests)."""
        return [buf for i in range(self._ntiers) for buf in self._stacks[i][: self._counts[i]]]

    def stats(self) -> PoolStats:
        """Return a consistent snapshot of the pool's counters."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            counts = (
                self._hits,
                self._misses,
                self._unpooled,
                self._returned,
                self._dropped,
                len(self._held),
                self._held_bytes,
            )
        finally:
            if lock is not None:
                lock.release()
        return PoolStats(*counts)

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<BufferPool tiers={self._tiers} max_bytes={self._max_bytes} "
            f"held_bytes={s.held_bytes} hits={s.hits} misses={s.misses}>"
        )
