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

Cost: compiled, ``get`` + ``put`` takes about twice the time of ``bytearray(1024)``
(~130 ns against ~70 ns on a 2020s x86 server) and about as long as
``bytearray(16384)``; pure Python, about ten times longer. What it saves is memory
traffic: no buffer allocated and freed per message, and buffers that stay warm in the
CPU caches. The pool is written once (``_buffers_py.py``) and compiled by Cython into
``_buffers_c``; the compiled build is used unless ``BLAZEWS_NO_EXTENSIONS=1`` or it was
not built (see :mod:`blazews._impl`). ``BUFFERS`` says which runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._impl import select

__all__ = [
    "DEFAULT_BUFFER_POOL",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIERS",
    "BufferPool",
    "PoolStats",
]

if TYPE_CHECKING:
    from ._buffers_py import DEFAULT_MAX_BYTES, DEFAULT_TIERS, BufferPool, PoolStats
else:
    _built = select("blazews._buffers")
    DEFAULT_MAX_BYTES, DEFAULT_TIERS = _built.DEFAULT_MAX_BYTES, _built.DEFAULT_TIERS
    BufferPool, PoolStats = _built.BufferPool, _built.PoolStats

DEFAULT_BUFFER_POOL = BufferPool()
"""The process-wide pool with the default tiers and a 4 MiB bound."""

# A client's payloads larger than this are masked on their way out, a piece at a time
# through a pooled buffer of this size (see MaskLater), not copied whole and masked
# first: by blazews.sync and the asyncio client. The pool is shared by the process's
# connections; it keeps two buffers at most (more are made when more are in use).
_MASK_PIECE = 1 << 20
_SEND_PIECES = BufferPool(max_bytes=2 * _MASK_PIECE, tiers=(_MASK_PIECE,))
