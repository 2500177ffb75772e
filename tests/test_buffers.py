"""BufferPool: tiers, get/put/get_exact, the put rules, the bound, and threads."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import blazews
from blazews import _buffers_py
from blazews.buffers import (
    DEFAULT_BUFFER_POOL,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIERS,
    BufferPool,
    PoolStats,
)

try:
    from blazews import _buffers_c
except ImportError:  # pragma: no cover - the pure build
    _buffers_c = None  # type: ignore[assignment]

TIERS = (256, 1024, 4096, 16384)


def held(pool: BufferPool) -> list[bytearray]:
    """Every buffer the pool holds, read from its free stacks (white box)."""
    return pool._held_buffers()


def check_invariants(pool: BufferPool) -> None:
    """The free stacks, the identity set and the byte count agree, within the bound."""
    bufs = held(pool)
    assert len({id(b) for b in bufs}) == len(bufs), "a buffer is held twice"
    assert {id(b) for b in bufs} == pool._held
    assert sum(len(b) for b in bufs) == pool.stats().held_bytes <= pool.max_bytes
    assert all(type(b) is bytearray and len(b) in pool.tiers for b in bufs)
    assert [len(b) for b in bufs] == sorted(len(b) for b in bufs)  # each in its own tier


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads very often, to shake out races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# ---- construction -------------------------------------------------------------------


def test_defaults() -> None:
    pool = BufferPool()
    assert pool.tiers == TIERS == DEFAULT_TIERS
    assert pool.max_bytes == DEFAULT_MAX_BYTES == 4 * 1024 * 1024
    assert isinstance(DEFAULT_BUFFER_POOL, BufferPool)
    assert DEFAULT_BUFFER_POOL.tiers == TIERS
    assert DEFAULT_BUFFER_POOL.max_bytes == DEFAULT_MAX_BYTES


def test_custom_tiers_are_sorted() -> None:
    pool = BufferPool(max_bytes=100, tiers=[64, 8, 32])
    assert pool.tiers == (8, 32, 64)
    assert len(pool.get(9)) == 32


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": -1},
        {"tiers": ()},
        {"tiers": (0, 256)},
        {"tiers": (-256,)},
        {"tiers": (256, 256)},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BufferPool(**kwargs)  # type: ignore[arg-type]


def test_non_integer_arguments() -> None:
    with pytest.raises(TypeError):
        BufferPool(max_bytes=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BufferPool(tiers=(256.0,))  # type: ignore[arg-type]


# ---- get ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tier"),
    [
        (0, 256),
        (1, 256),
        (255, 256),
        (256, 256),
        (257, 1024),
        (1023, 1024),
        (1024, 1024),
        (1025, 4096),
        (4096, 4096),
        (4097, 16384),
        (16384, 16384),
    ],
)
def test_get_returns_the_smallest_tier(size: int, tier: int) -> None:
    pool = BufferPool()
    buf = pool.get(size)
    assert type(buf) is bytearray
    assert len(buf) == tier
    assert buf == bytearray(tier)  # a fresh allocation is zeroed


@pytest.mark.parametrize("size", [16385, 65536, 1 << 20])
def test_get_beyond_the_largest_tier_is_exact_and_unpooled(size: int) -> None:
    pool = BufferPool()
    buf = pool.get(size)
    assert type(buf) is bytearray and len(buf) == size and not any(buf)
    pool.put(buf)  # harmless: dropped
    assert held(pool) == []
    stats = pool.stats()
    assert (stats.unpooled, stats.dropped, stats.held_bytes) == (1, 1, 0)
    assert pool.get(size) is not buf


def test_get_rejects_bad_sizes() -> None:
    pool = BufferPool()
    with pytest.raises(ValueError):
        pool.get(-1)
    with pytest.raises(TypeError):
        pool.get(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pool.get("256")  # type: ignore[arg-type]


def test_get_reuses_a_buffer_put_back() -> None:
    pool = BufferPool()
    buf = pool.get(1000)
    buf[:5] = b"hello"
    pool.put(buf)
    again = pool.get(600)
    assert again is buf
    assert again[:5] == b"hello"  # stale contents, as documented
    assert pool.get(600) is not buf  # handed out once only
    check_invariants(pool)


def test_each_tier_has_its_own_free_list() -> None:
    pool = BufferPool()
    small, large = pool.get(10), pool.get(10000)
    pool.put(small)
    pool.put(large)
    assert pool.get(5000) is large
    assert pool.get(200) is small


# ---- put rules ----------------------------------------------------------------------


def test_double_put_is_ignored() -> None:
    pool = BufferPool()
    buf = pool.get(256)
    pool.put(buf)
    pool.put(buf)
    pool.put(buf)
    assert held(pool) == [buf]
    assert pool.stats().held_bytes == 256
    assert pool.stats().dropped == 2
    first, second = pool.get(256), pool.get(256)
    assert first is buf and second is not buf


@pytest.mark.parametrize(
    "foreign",
    [
        bytearray(100),  # not a tier size
        bytearray(300),
        bytes(256),  # right size, wrong type
        memoryview(bytes(256)),  # a view on something immutable
        type("Sub", (bytearray,), {})(256),  # a subclass
        [0] * 256,
    ],
    ids=["bytearray100", "bytearray300", "bytes", "view-on-bytes", "subclass", "list"],
)
def test_foreign_buffers_are_dropped(foreign: object) -> None:
    pool = BufferPool()
    pool.put(foreign)  # type: ignore[arg-type]
    assert held(pool) == []
    assert pool.stats().dropped == 1


def test_a_tier_sized_bytearray_from_elsewhere_is_kept() -> None:
    # Not dangerous: it is exactly what the pool would have allocated itself.
    pool = BufferPool()
    buf = bytearray(4096)
    pool.put(buf)
    assert pool.get(4096) is buf


@pytest.mark.parametrize(
    "resize",
    [
        lambda b: b.append(0),
        lambda b: b.extend(b"xyz"),
        lambda b: b.__delitem__(slice(0, 1)),
        lambda b: b.clear(),
    ],
    ids=["append", "extend", "shrink", "clear"],
)
def test_resized_buffers_are_dropped(resize: Callable[[bytearray], None]) -> None:
    pool = BufferPool()
    buf = pool.get(1024)
    resize(buf)
    pool.put(buf)
    assert held(pool) == []
    assert pool.stats().dropped == 1


def test_a_buffer_resized_onto_another_tier_is_kept_in_that_tier() -> None:
    # Its length is a tier size again, so it is as good as a fresh buffer of that tier.
    pool = BufferPool()
    buf = pool.get(256)
    buf.extend(bytes(768))
    pool.put(buf)
    assert pool.get(1024) is buf
    check_invariants(pool)


# ---- bound --------------------------------------------------------------------------


def test_the_pool_never_holds_more_than_max_bytes() -> None:
    pool = BufferPool(max_bytes=1024)
    bufs = [pool.get(256) for _ in range(6)]
    for buf in bufs:
        pool.put(buf)
    assert len(held(pool)) == 4
    assert pool.stats().held_bytes == 1024
    assert pool.stats().dropped == 2
    pool.put(pool.get(1024))  # no room for a whole 1 KiB buffer either
    assert pool.stats().held_bytes == 1024
    check_invariants(pool)
    pool.get(1)  # frees room for one 256 B buffer
    pool.put(bytearray(256))
    assert pool.stats().held_bytes == 1024


def test_a_buffer_larger_than_max_bytes_is_never_held() -> None:
    pool = BufferPool(max_bytes=1000)
    pool.put(pool.get(1024))
    assert held(pool) == []


def test_max_bytes_zero_disables_pooling() -> None:
    pool = BufferPool(max_bytes=0)
    buf = pool.get(256)
    pool.put(buf)
    assert held(pool) == []
    assert pool.get(256) is not buf


def test_mixed_tiers_under_the_bound() -> None:
    pool = BufferPool(max_bytes=20000)
    rng = random.Random(1)
    for _ in range(500):
        if rng.random() < 0.5:
            pool.get(rng.randrange(0, 17000))
        else:
            pool.put(bytearray(rng.choice(TIERS)))
        check_invariants(pool)


# ---- get_exact ----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "tier"), [(0, 256), (7, 256), (256, 256), (3000, 4096)])
def test_get_exact_within_the_tiers(size: int, tier: int) -> None:
    pool = BufferPool()
    view, pooled = pool.get_exact(size)
    assert pooled is True
    assert type(view) is memoryview
    assert len(view) == view.nbytes == size
    assert not view.readonly
    base = view.obj
    assert type(base) is bytearray and len(base) == tier
    view[:size] = b"\x01" * size  # writable through the view
    pool.put(view)
    with pytest.raises(ValueError):
        view[0:0] = b""  # the view was released by put
    assert pool.get(size) is base  # the base went back to the pool
    check_invariants(pool)


@pytest.mark.parametrize("size", [16385, 100000])
def test_get_exact_beyond_the_tiers(size: int) -> None:
    pool = BufferPool()
    buf, pooled = pool.get_exact(size)
    assert pooled is False
    assert type(buf) is bytearray and len(buf) == size
    pool.put(buf)
    assert held(pool) == []


def test_get_exact_reuses_pooled_buffers() -> None:
    pool = BufferPool()
    buf = pool.get(1024)
    pool.put(buf)
    view, pooled = pool.get_exact(1000)
    assert pooled and isinstance(view, memoryview) and view.obj is buf
    assert pool.stats().hits == 1


def test_get_exact_rejects_bad_sizes() -> None:
    pool = BufferPool()
    with pytest.raises(ValueError):
        pool.get_exact(-1)
    with pytest.raises(TypeError):
        pool.get_exact(2.5)  # type: ignore[arg-type]


def test_a_view_put_back_twice_is_ignored() -> None:
    pool = BufferPool()
    view, _ = pool.get_exact(100)
    assert isinstance(view, memoryview)
    base = view.obj
    pool.put(view)
    pool.put(view)  # released now: dropped
    assert held(pool) == [base]
    assert pool.stats().dropped == 1


def test_a_view_and_its_base_put_back_are_held_once() -> None:
    pool = BufferPool()
    view, _ = pool.get_exact(100)
    assert isinstance(view, memoryview)
    base = view.obj
    assert isinstance(base, bytearray)
    pool.put(view)
    pool.put(base)
    assert held(pool) == [base]


def test_a_view_still_exported_is_dropped() -> None:
    pool = BufferPool()
    view, _ = pool.get_exact(64)
    assert isinstance(view, memoryview)
    base = view.obj
    assert isinstance(base, bytearray)
    alias = (ctypes.c_char * 64).from_buffer(view)  # still aliases the memory
    pool.put(view)
    assert held(pool) == []  # still in use: must not be handed out again
    alias[0] = b"x"
    assert base[0] == ord("x")


def test_a_view_with_a_live_slice_is_dropped() -> None:
    pool = BufferPool()
    view, _ = pool.get_exact(64)
    assert isinstance(view, memoryview)
    part = view[8:16]
    pool.put(view)
    assert held(pool) == []
    part[0] = 1  # still usable, and nobody else was given this memory


def test_a_bytearray_with_a_live_view_is_dropped() -> None:
    pool = BufferPool()
    buf = pool.get(256)
    view = memoryview(buf)
    pool.put(buf)
    assert held(pool) == []
    view.release()
    pool.put(buf)  # released: now it may go back
    assert held(pool) == [buf]


def test_the_export_probe_keeps_contents() -> None:
    pool = BufferPool()
    for size in TIERS:
        buf = bytearray(random.Random(size).randbytes(size))
        copy = bytes(buf)
        pool.put(buf)
        assert pool.get(size) is buf
        assert buf == copy


def test_a_view_on_a_foreign_buffer_is_dropped() -> None:
    pool = BufferPool()
    pool.put(memoryview(bytearray(100)))
    assert held(pool) == []


# ---- stats and clear ----------------------------------------------------------------


def test_stats() -> None:
    pool = BufferPool()
    assert pool.stats() == PoolStats(0, 0, 0, 0, 0, 0, 0)
    a = pool.get(10)  # miss
    b = pool.get(2000)  # miss
    pool.get(20000)  # unpooled
    pool.put(a)
    pool.put(b)
    pool.put(b)  # dropped (duplicate)
    pool.get(1)  # hit
    s = pool.stats()
    assert s == PoolStats(
        hits=1, misses=2, unpooled=1, returned=2, dropped=1, held_buffers=1, held_bytes=4096
    )
    assert "held_bytes=4096" in repr(pool)


def test_clear() -> None:
    pool = BufferPool()
    buf = pool.get(256)
    pool.put(buf)
    pool.clear()
    assert held(pool) == [] and pool.stats().held_bytes == 0
    assert pool.get(256) is not buf
    pool.put(buf)  # may be put back after a clear
    assert held(pool) == [buf]


# ---- threads ------------------------------------------------------------------------


def run_threads(target: Callable[[int], None], n: int = 8) -> None:
    errors: list[BaseException] = []

    def wrapper(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.usefixtures("fast_switching")
def test_threads_never_share_a_buffer() -> None:
    pool = BufferPool(max_bytes=64 * 1024)
    in_use: dict[int, int] = {}  # id(buf) -> thread currently owning it
    guard = threading.Lock()
    iterations = 3000

    def worker(me: int) -> None:
        rng = random.Random(me)
        mine: list[bytearray] = []
        for _ in range(iterations):
            if mine and rng.random() < 0.5:
                buf = mine.pop(rng.randrange(len(mine)))
                assert buf[0] == me and buf[-1] == me, "someone else wrote into my buffer"
                with guard:
                    del in_use[id(buf)]
                pool.put(buf)
            else:
                if rng.random() < 0.3:
                    view, pooled = pool.get_exact(rng.randrange(1, 5000))
                    assert pooled and isinstance(view, memoryview)
                    buf = view.obj  # type: ignore[assignment]
                    view.release()
                else:
                    buf = pool.get(rng.randrange(0, 17000))
                with guard:
                    owner = in_use.setdefault(id(buf), me)
                assert owner == me, f"buffer handed to thread {me} while thread {owner} has it"
                buf[0] = buf[-1] = me
                mine.append(buf)
        for buf in mine:
            with guard:
                del in_use[id(buf)]
            pool.put(buf)

    run_threads(worker)
    check_invariants(pool)
    assert pool.stats().hits > 0


@pytest.mark.usefixtures("fast_switching")
def test_threads_putting_the_same_buffer_hold_it_once() -> None:
    for _ in range(50):
        pool = BufferPool()
        buf = bytearray(1024)
        start = threading.Barrier(8)

        def worker(
            _: int, buf: bytearray = buf, pool: BufferPool = pool, start: threading.Barrier = start
        ) -> None:
            start.wait()
            for _ in range(20):
                pool.put(buf)

        run_threads(worker)
        assert held(pool) == [buf]
        check_invariants(pool)


@pytest.mark.usefixtures("fast_switching")
def test_threads_respect_the_bound() -> None:
    pool = BufferPool(max_bytes=10 * 1024)
    peak = 0
    stop = threading.Event()

    def watcher() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, pool.stats().held_bytes)

    watching = threading.Thread(target=watcher)
    watching.start()

    def worker(me: int) -> None:
        rng = random.Random(me)
        for _ in range(2000):
            if rng.random() < 0.7:
                pool.put(bytearray(rng.choice(TIERS[:3])))
            else:
                pool.get(rng.choice(TIERS))

    try:
        run_threads(worker)
    finally:
        stop.set()
        watching.join()
    assert peak <= pool.max_bytes
    check_invariants(pool)


# ---- the compiled and the pure pool -------------------------------------------------


def test_compiled_pool_is_live_in_the_default_build() -> None:
    if os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0"):
        assert blazews.implementation_report()["_buffers"] == "python"
        assert BufferPool is _buffers_py.BufferPool
    else:
        assert blazews.implementation_report()["_buffers"] == "compiled"
        assert _buffers_c is not None
        assert BufferPool is _buffers_c.BufferPool  # type: ignore[comparison-overlap]
        assert type(BufferPool.__dict__["get"]).__name__ != "function"
        assert BufferPool()._lock is None  # no lock needed under the GIL (see _buffers_py)
    assert type(DEFAULT_BUFFER_POOL) is BufferPool


def trace(cls: Any, seed: int) -> list[Any]:
    """Random get/get_exact/put/clear calls on a small pool; what each one did."""
    rng = random.Random(seed)
    pool = cls(max_bytes=rng.choice([0, 3000, 20000]), tiers=rng.choice([TIERS, (8, 32, 64)]))
    names: dict[int, int] = {}  # id -> the order a buffer was first seen in
    out: list[Any] = []
    mine: list[Any] = []

    def name(buf: Any) -> int:
        return names.setdefault(id(buf), len(names))

    for _ in range(400):
        op = rng.random()
        if op < 0.4:
            buf = pool.get(rng.randrange(0, 20000))
            mine.append(buf)
            out.append(("get", name(buf), len(buf)))
        elif op < 0.5:
            view, pooled = pool.get_exact(rng.randrange(0, 20000))
            out.append(("exact", len(view), pooled))
            mine.append(view)
        elif op < 0.85 and mine:
            buf = rng.choice(mine)  # maybe again: double puts, released views
            if type(buf) is bytearray and rng.random() < 0.1:
                with contextlib.suppress(BufferError):  # a live view may forbid it
                    buf.append(0)  # resized
            name(buf)
            pool.put(buf)
            out.append(("put", pool.stats()))
        elif op < 0.9:
            foreign = bytearray(rng.choice(pool.tiers))
            mine.append(foreign)  # alive, so that no later buffer reuses its id
            pool.put(foreign)
            out.append(("foreign", pool.stats()))
        elif op < 0.92:
            pool.clear()
        out.append(tuple(pool.stats()))
    return out


@pytest.mark.skipif(_buffers_c is None, reason="the compiled pool was not built")
@pytest.mark.parametrize("seed", range(20))
def test_compiled_and_pure_pools_agree(seed: int) -> None:
    assert _buffers_c is not None
    assert trace(_buffers_py.BufferPool, seed) == trace(_buffers_c.BufferPool, seed)


def test_a_pool_keeps_its_memory_when_cycling() -> None:
    # A free stack does not shrink: a get/put cycle hands the same buffer back.
    pool = BufferPool()
    first = pool.get(1024)
    pool.put(first)
    for _ in range(100):
        buf = pool.get(1024)
        assert buf is first
        pool.put(buf)
    assert pool.stats().held_buffers == 1
