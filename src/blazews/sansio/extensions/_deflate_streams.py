"""Deflate backends and the stream bookkeeping behind permessage-deflate.

Backends
    stdlib ``zlib``, ``zlib-ng`` (package ``zlib-ng``) and ISA-L (package ``isal``)
    produce and accept the same raw deflate format; they differ in speed and in the
    memory of a stream (see :mod:`.permessage_deflate` for the figures).

Compressor pool
    Without context takeover a compressor ends each message with a full flush, which
    makes the rest of its output independent of what it saw before, so any connection
    may use it next. Such compressors wait in a shared pool, one bounded deque per
    configuration (backend, window bits, level, memLevel). ``deque.append`` and
    ``deque.pop`` are atomic, so threads share the pool without a lock.

Parked inflaters
    With context takeover the peer's next message may refer to the last ``2**wbits``
    bytes it sent, and that window is all the state an inflater needs between
    messages: after each message the connection keeps only those bytes and drops the
    inflater; the next message's inflater starts from them as its dictionary (about
    0.2 us). Inflaters are never pooled: Python's zlib cannot reset one, and one that
    kept another connection's history would let a peer read it back through
    back-references; a new one costs about 0.1 us.
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from typing import Any

__all__ = ["POOL_SIZE", "Backend", "available_backends", "get_backend", "keep_tail"]

POOL_SIZE = 16
"""Idle compressors kept per configuration in the shared pool (no context takeover)."""

_MODULES = {"isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng", "zlib": "zlib"}
# What "auto" picks, first installed first. Compressing (level 1, 12-bit window, JSON):
# ISA-L is the fastest from about 4 KiB (16 KiB: 13 us against 22 for zlib-ng and 30
# for zlib) and compresses as well as zlib (7.8x), zlib-ng's level 1 worse (5.5x).
# Inflating: zlib-ng is the fastest (16 KiB: 10 us, zlib 13); ISA-L is slower than
# zlib below 16 KiB.
_COMPRESS_ORDER = ("isal", "zlib-ng", "zlib")
_INFLATE_ORDER = ("zlib-ng", "zlib")

PoolKey = tuple[str, int, int, int]
_POOLS: dict[PoolKey, deque[Any]] = {}


class Backend:
    """One deflate implementation: stdlib zlib, zlib-ng or ISA-L, same wire format."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.module = module
        self.error: type[Exception] = module.error
        self.sync_flush: int = module.Z_SYNC_FLUSH
        self.full_flush: int = module.Z_FULL_FLUSH
        self.can_copy = name != "isal"  # isal_zlib compressors have no copy()

    def level(self, level: int) -> int:
        """Map a zlib level (-1 to 9) onto this backend's levels."""
        if self.name != "isal":
            return level
        # ISA-L has levels 0-3 (default 2): map zlib's 1-3, 4-6, 7-9 onto 1, 2, 3.
        return 2 if level < 0 else (level + 2) // 3

    def compressor(self, wbits: int, level: int, mem_level: int) -> Any:
        """A new raw deflate compressor."""
        m = self.module
        return m.compressobj(self.level(level), m.DEFLATED, -wbits, mem_level)

    def decompressor(self, wbits: int, history: bytes = b"") -> Any:
        """A new raw inflater that continues after ``history`` (the peer's last output)."""
        if history:
            return self.module.decompressobj(-wbits, zdict=history)
        return self.module.decompressobj(-wbits)

    def take_compressor(self, key: PoolKey) -> Any:
        """A compressor for ``key`` from the shared pool, or a new one."""
        pool = _POOLS.get(key)
        if pool:
            try:
                return pool.pop()
            except IndexError:  # another thread emptied it meanwhile
                pass
        return self.compressor(key[1], key[2], key[3])


def give_compressor(key: PoolKey, compressor: Any) -> None:
    """Return a compressor that ended its message with a full flush to the pool."""
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS.setdefault(key, deque(maxlen=POOL_SIZE))
    pool.append(compressor)  # beyond POOL_SIZE the oldest is dropped


def pooled_compressors() -> int:
    """How many idle compressors the shared pool holds."""
    return sum(len(pool) for pool in list(_POOLS.values()))


def clear_pool() -> None:
    """Drop every pooled compressor (tests, or to give the memory back)."""
    _POOLS.clear()


def keep_tail(history: bytes, data: bytes, size: int) -> bytes:
    """The last ``size`` bytes of ``history + data``, copying at most ``size`` bytes."""
    n = len(data)
    if n >= size:
        return data[n - size :] if n > size else data
    keep = size - n
    return (history[-keep:] if len(history) > keep else history) + data


_LOADED: dict[str, Backend | None] = {}


def _load(name: str) -> Backend | None:
    if name not in _LOADED:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError:
            _LOADED[name] = None
        else:
            _LOADED[name] = Backend(name, module)
    return _LOADED[name]


def available_backends() -> list[str]:
    """Return the deflate backends importable here, the fastest compressor first
    (``isal``, ``zlib-ng``, then ``zlib``, which is always there)."""
    return [name for name in _COMPRESS_ORDER if _load(name) is not None]


def get_backend(name: str | None, *, inflate: bool = False) -> Backend:
    """The backend called ``name``; ``None`` reads ``BLAZEWS_DEFLATE_BACKEND``.

    ``"auto"`` (the default) is the first installed of ISA-L, zlib-ng, zlib to
    compress, of zlib-ng, zlib to inflate (``inflate=True``).

    Raises:
        ValueError: Unknown or not installed.
    """
    if name is None:
        name = os.environ.get("BLAZEWS_DEFLATE_BACKEND", "") or "auto"
    if name == "auto":
        for candidate in _INFLATE_ORDER if inflate else _COMPRESS_ORDER:
            backend = _load(candidate)
            if backend is not None:
                return backend
    if name not in _MODULES:
        raise ValueError(f"unknown deflate backend {name!r}: use auto, zlib, zlib-ng or isal")
    backend = _load(name)
    if backend is None:
        raise ValueError(f"deflate backend {name!r} is not installed")
    return backend
