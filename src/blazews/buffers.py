"""Pooled receive buffers: :class:`BufferPool` and :data:`DEFAULT_BUFFER_POOL`.

A pool keeps free ``bytearray`` objects in a few size tiers (256 B, 1 KiB, 4 KiB and
16 KiB by default) so that code reading many messages with
:meth:`~blazews.Connection.read_message_into` does not allocate a buffer per message::

    pool = blazews.DEFAULT_BUFFER_POOL
    buf = pool.get(4096)
    try:
        kind, n = await conn.read_message_into(buf)
        process(kind, buf[:n])
    finally:
        pool.put(buf)

The rules, all enforced by :meth:`BufferPool.put`:

- Only ``bytearray`` objects whose length is exactly one of the tiers are kept; anything
  else (a foreign object, a buffer resized since it was handed out) is dropped and left
  to the garbage collector.
- A buffer already held by the pool is recognised by identity and ignored, so a double
  ``put`` never lets two callers receive the same buffer.
- A buffer something still exports (a live memoryview or array over it) is dropped:
  its memory is still in use.
- The pool never holds more than ``max_bytes``; extra buffers are dropped.
- Sizes beyond the largest tier are served by a fresh, unpooled ``bytearray``.
"""

from __future__ import annotations

import operator
import threading
from bisect import bisect_left
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["DEFAULT_BUFFER_POOL", "DEFAULT_MAX_BYTES", "DEFAULT_TIERS", "BufferPool", "PoolStats"]

DEFAULT_TIERS: tuple[int, ...] = (256, 1024, 4096, 16384)
"""The tier sizes of a pool built without ``tiers``, in bytes."""

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""The most bytes a pool built without ``max_bytes`` holds (4 MiB)."""


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

    # Thread safety: one lock guards every method that reads or changes the free lists
    # and the counters. list.append and list.pop are each atomic under the GIL, but
    # put() is a check-then-act sequence (is it held already? is there room under
    # max_bytes?) that must be atomic as a whole: without the lock two threads putting
    # the same buffer back could both pass the identity check and the pool would then
    # hand it out twice, and two threads could both pass the bound check and exceed it.
    # A lock is also what keeps the pool correct on free-threaded builds, which have
    # no GIL at all. Uncontended it costs well under a microsecond per call, which is
    # small beside the allocation and the read it saves.

    __slots__ = (
        "_dropped",
        "_free",
        "_held",
        "_held_bytes",
        "_hits",
        "_lock",
        "_max_bytes",
        "_misses",
        "_returned",
        "_tiers",
        "_unpooled",
    )

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
        self._max_bytes = max_bytes
        self._free: dict[int, list[bytearray]] = {size: [] for size in self._tiers}
        # id() of every buffer held. The pool references each held buffer, so an id in
        # this set cannot be reused by another object while the buffer is held.
        self._held: set[int] = set()
        self._held_bytes = 0
        self._hits = 0
        self._misses = 0
        self._unpooled = 0
        self._returned = 0
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def tiers(self) -> tuple[int, ...]:
        """The tier sizes, smallest first."""
        return self._tiers

    @property
    def max_bytes(self) -> int:
        """The most bytes the pool holds at once."""
        return self._max_bytes

    def _tier(self, size: int) -> int | None:
        """Return the smallest tier holding ``size`` bytes, or ``None`` beyond them."""
        i = bisect_left(self._tiers, size)
        return self._tiers[i] if i < len(self._tiers) else None

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
        tiers = self._tiers
        i = bisect_left(tiers, size)
        if i == len(tiers):
            with self._lock:
                self._unpooled += 1
            return bytearray(size)
        tier = tiers[i]
        free = self._free[tier]
        with self._lock:
            if free:
                buf = free.pop()
                self._held.discard(id(buf))
                self._held_bytes -= tier
                self._hits += 1
                return buf
            self._misses += 1
        return bytearray(tier)

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
        if self._tier(size) is None:
            with self._lock:
                self._unpooled += 1
            return bytearray(size), False
        return memoryview(self.get(size))[:size], True

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
        if type(buf) is memoryview:
            try:
                base = buf.obj
                buf.release()
            except ValueError:  # already released: this view was put back before
                self._drop()
                return
            except BufferError:  # something still exports from this view: in use
                self._drop()
                return
            if type(base) is not bytearray:
                self._drop()
                return
            buf = base
        elif type(buf) is not bytearray:
            self._drop()
            return
        size = len(buf)
        free = self._free.get(size)
        with self._lock:
            if (
                free is None  # not a tier size: foreign or resized
                or id(buf) in self._held  # put back twice
                or self._held_bytes + size > self._max_bytes
                or _exported(buf)
            ):
                self._dropped += 1
                return
            self._held.add(id(buf))
            free.append(buf)
            self._held_bytes += size
            self._returned += 1

    def _drop(self) -> None:
        with self._lock:
            self._dropped += 1

    def clear(self) -> None:
        """Drop every held buffer (the counters other than held ones are kept)."""
        with self._lock:
            for free in self._free.values():
                free.clear()
            self._held.clear()
            self._held_bytes = 0

    def stats(self) -> PoolStats:
        """Return a consistent snapshot of the pool's counters."""
        with self._lock:
            return PoolStats(
                hits=self._hits,
                misses=self._misses,
                unpooled=self._unpooled,
                returned=self._returned,
                dropped=self._dropped,
                held_buffers=len(self._held),
                held_bytes=self._held_bytes,
            )

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<BufferPool tiers={self._tiers} max_bytes={self._max_bytes} "
            f"held_bytes={s.held_bytes} hits={s.hits} misses={s.misses}>"
        )


def _exported(buf: bytearray) -> bool:
    """Tell whether something still exports ``buf``'s memory (a view, an array...).

    A bytearray with exports refuses to change size, and CPython does not tell the
    export count otherwise. Popping and re-appending the last byte leaves the
    contents and the allocation as they were (a shrink by one byte never moves the
    buffer, and the append fits in the room the pop left). The caller holds the pool
    lock, so no other ``put`` probes the same buffer at the same time.
    """
    try:
        last = buf.pop()
    except BufferError:
        return True
    buf.append(last)
    return False


DEFAULT_BUFFER_POOL = BufferPool()
"""The process-wide pool with the default tiers and a 4 MiB bound."""
