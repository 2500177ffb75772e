"""The seed's before/after table, in Python: read_message vs read_message_into.

Every row reads 1 KiB binary messages, one per masked frame (client to server, a fresh
key per frame), from an in-memory stream (``io.BytesIO``, rewound when it runs out):
no sockets, no threads.

Why not :class:`blazews.sync.Connection` itself: it needs a connected socket
(``recv_into``, ``settimeout``, ``shutdown``, ``getpeername``) and hands the bytes to
a reader thread, so it cannot be driven from an in-memory stream. The rows below
run its data path single-threaded instead:

- ``read_message``: what ``Connection.read_message`` does once the reader thread has
  run: ``readinto`` a reusable 64 KiB buffer (``RECV_BUFFER_SIZE``), feed it to the
  sans-I/O :class:`~blazews.sansio.protocol.Protocol`, queue its events, return
  ``(MessageType, bytes)``.
- ``read_message_into``: the same, then copy the payload into the caller's buffer, as
  ``Connection.read_message_into`` does today (the core still builds the payload).
- ``FrameReader.read_frame_into``: :class:`blazews.sync.FrameReader` over the stream,
  unmasking straight into the caller's buffer: the seed's ``ReadMessageInto`` path
  (a single-frame message is one frame).

Allocations are measured with :mod:`tracemalloc`, tracing off while timing. CPython
frees most temporaries at once, and tracemalloc sees only memory that is alive, so it
cannot count every allocation as Go's ``-benchmem`` does. Two figures stand in:

- retained B/op and blocks/op: a snapshot before and after ``N`` operations whose
  results are all kept alive (``N`` = one pass over the stream, starting and ending
  at the same point, so buffers and queues are in the same state); the difference,
  divided by ``N``, is what each operation leaves behind: the payload, the message
  object, the result tuple;
- peak B/op: the traced size before each operation, then ``tracemalloc.reset_peak()``,
  and after it the traced peak minus that size: the temporaries' high-water mark
  above the starting point (results included), averaged
  over the ``N`` operations (a refill of the 64 KiB buffer is spread over the
  messages it brings).

Both are net of the same measurement around an empty operation.
"""

from __future__ import annotations

import collections
import gc
import io
import random
import statistics
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks.common import time_stmt

__all__ = ["GO_SEED", "MESSAGE_SIZE", "bench_pool", "bench_seed", "measure_allocs"]

MESSAGE_SIZE = 1024
RECV_BUFFER_SIZE = 65536  # blazews.sync.connection.RECV_BUFFER_SIZE

GO_SEED = [
    {
        "label": "Go seed: ReadMessage",
        "ns_per_op": 5544,
        "mb_per_s": 185.2,
        "bytes_per_op": 2120,
        "allocs_per_op": 4,
    },
    {
        "label": "Go seed: ReadMessageInto",
        "ns_per_op": 1492,
        "mb_per_s": 687.7,
        "bytes_per_op": 48,
        "allocs_per_op": 1,
    },
]
GO_POOL = [
    {
        "label": "Go seed: make([]byte, 1024)",
        "ns_per_op": 300,
        "bytes_per_op": 1024,
        "allocs_per_op": 1,
    },
    {
        "label": "Go seed: Pool.Get (1 KiB)",
        "ns_per_op": 330,
        "bytes_per_op": 24,
        "allocs_per_op": 1,
    },
]


def masked_frames(count: int, size: int = MESSAGE_SIZE, seed: int = 6455) -> bytes:
    """Return ``count`` masked single-frame binary messages of ``size`` bytes each."""
    from blazews._kernels_py import apply_mask
    from blazews.sansio.frames import encode_header

    rng = random.Random(seed)
    parts = []
    for _ in range(count):
        key = rng.randbytes(4)
        parts.append(encode_header(0x82, size, True) + key + apply_mask(rng.randbytes(size), key))
    return b"".join(parts)


class _Stream:
    """An ``io.BytesIO`` over ``data`` that rewinds when it runs out."""

    def __init__(self, data: bytes) -> None:
        self.bio = io.BytesIO(data)
        self.readinto = self.bio.readinto

    def rewind(self) -> None:
        self.bio.seek(0)


def core_reader(data: bytes) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """Return ``read_message()`` and ``read_message_into(buf)`` over the sans-I/O core.

    They follow ``blazews.sync.Connection``: receive into a reusable buffer, feed the
    protocol, queue the messages it assembled; take the oldest.
    """
    from blazews.exceptions import BufferTooSmall
    from blazews.sansio.frames import MessageType
    from blazews.sansio.protocol import Message, Protocol, Side

    types = (MessageType.BINARY, MessageType.TEXT, MessageType.BINARY)
    stream = _Stream(data)
    protocol = Protocol(Side.SERVER, max_message_size=None)
    queue: collections.deque[Any] = collections.deque()
    rbuf = memoryview(bytearray(RECV_BUFFER_SIZE))

    def fill() -> None:
        while not queue:
            n = stream.readinto(rbuf)
            if not n:
                stream.rewind()
                continue
            protocol.receive_data(rbuf[:n])
            protocol.data_to_send()
            for event in protocol.events_received():
                if type(event) is Message:
                    queue.append(event)

    def read_message() -> tuple[Any, bytes]:
        if not queue:
            fill()
        message = queue.popleft()
        return types[message.type], message.data

    def read_message_into(buf: Any) -> tuple[Any, int]:
        view = memoryview(buf)
        if view.readonly:
            raise TypeError("read_message_into needs a writable buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not queue:
            fill()
        message = queue[0]
        n = len(message.data)
        if n > len(view):
            raise BufferTooSmall(n, len(view))
        queue.popleft()
        view[:n] = message.data
        return types[message.type], n

    return read_message, read_message_into


def frame_reader(data: bytes) -> Callable[[Any], Any]:
    """Return ``read_frame_into(buf)`` over a :class:`blazews.sync.FrameReader`."""
    from blazews.sync import FrameReader

    stream = _Stream(data)
    reader = FrameReader(stream.bio)
    read = reader.read_frame_into

    def read_frame_into(buf: Any) -> Any:
        try:
            return read(buf)
        except EOFError:
            stream.rewind()
            return read(buf)

    return read_frame_into


def measure_allocs(make_op: Callable[[], Callable[[], Any]], ops: int) -> dict[str, float]:
    """Measure what an operation allocates, with tracemalloc (see the module docstring).

    Args:
        make_op: Builds a fresh operation (fresh stream and reader).
        ops: Operations per measurement: a whole number of passes over the stream.

    Returns:
        ``retained_bytes``, ``retained_blocks`` and ``peak_bytes`` per operation.
    """
    was_tracing = tracemalloc.is_tracing()
    # The snapshots' own bookkeeping is allocated in tracemalloc.py: leave it out.
    ignore = (tracemalloc.Filter(False, tracemalloc.__file__),)

    def one(op: Callable[[], Any]) -> tuple[float, float, float]:
        for _ in range(ops):  # one warm pass: lazy buffers, caches, interned objects
            op()
        keep: list[Any] = [None] * ops
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot().filter_traces(ignore)
            for i in range(ops):
                keep[i] = op()
            after = tracemalloc.take_snapshot().filter_traces(ignore)
            stats = after.compare_to(before, "filename")
            size = sum(s.size_diff for s in stats)
            count = sum(s.count_diff for s in stats)
            keep = [None] * ops
            peaks = [0] * ops
            reset_peak = tracemalloc.reset_peak
            traced = tracemalloc.get_traced_memory
            for i in range(ops):
                start = traced()[0]
                reset_peak()  # after traced(): its result tuple is gone by now
                keep[i] = op()
                peaks[i] = traced()[1] - start
        finally:
            if not was_tracing:
                tracemalloc.stop()
        return size / ops, count / ops, statistics.fmean(peaks)

    size, count, peak = one(make_op())
    base_size, base_count, base_peak = one(lambda: None)
    return {
        "retained_bytes": size - base_size,
        "retained_blocks": count - base_count,
        "peak_bytes": peak - base_peak,
    }


def bench_seed(*, target: float, repeat: int, frames: int) -> list[dict[str, Any]]:
    """Time and measure every row of the seed table.

    Args:
        target: Seconds per timing repeat.
        repeat: Timing repeats (the report shows their median).
        frames: Messages in the in-memory stream (one pass = one allocation measurement).
    """
    data = masked_frames(frames)
    pool = _default_pool()

    def rows() -> list[tuple[str, str, Callable[[], Callable[[], Any]]]]:
        def msg() -> Callable[[], Any]:
            return core_reader(data)[0]

        def msg_into() -> Callable[[], Any]:
            into = core_reader(data)[1]
            buf = bytearray(4096)
            return lambda: into(buf)

        def frame_into() -> Callable[[], Any]:
            into = frame_reader(data)
            buf = bytearray(4096)
            return lambda: into(buf)

        out = [
            ("read_message (sans-I/O core, as sync.Connection)", "core.read_message", msg),
            (
                "read_message_into (sans-I/O core + copy, as sync.Connection)",
                "core.read_message_into",
                msg_into,
            ),
            ("FrameReader.read_frame_into (BytesIO)", "FrameReader.read_frame_into", frame_into),
        ]
        if pool is not None:

            def pooled() -> Callable[[], Any]:
                into = frame_reader(data)
                get, put = pool.get, pool.put

                def op() -> Any:
                    buf = get(MESSAGE_SIZE)
                    result = into(buf)
                    put(buf)
                    return result

                return op

            out.append(
                (
                    "FrameReader.read_frame_into + DEFAULT_BUFFER_POOL get/put",
                    "FrameReader.read_frame_into+pool",
                    pooled,
                )
            )
        return out

    results = []
    for label, impl, make in rows():
        op = make()
        check = op()
        got = check[1] if isinstance(check[1], int) else len(check[1])
        assert got == MESSAGE_SIZE, f"{label} read {got} bytes, not {MESSAGE_SIZE}"
        timing = time_stmt("op()", {"op": op}, target=target, repeat=repeat)
        allocs = measure_allocs(make, frames)
        results.append(
            {
                "label": label,
                "impl": impl,
                **timing.as_dict(),
                "mb_per_s": MESSAGE_SIZE / timing.median * 1e3,
                **allocs,
            }
        )
    return results


def _default_pool() -> Any:
    try:
        from blazews.buffers import DEFAULT_BUFFER_POOL
    except ImportError:
        return None
    return DEFAULT_BUFFER_POOL


def bench_pool(*, target: float, repeat: int) -> list[dict[str, Any]]:
    """Time ``DEFAULT_BUFFER_POOL`` get+put of 1 KiB against ``bytearray(1024)``.

    Returns rows with ``available: False`` when ``blazews.buffers`` does not exist yet.
    """
    pool = _default_pool()
    cases: list[tuple[str, str, dict[str, Any], Callable[[], Callable[[], Any]]]] = [
        ("bytearray(1024)", "bytearray(1024)", {}, lambda: lambda: bytearray(1024)),
    ]
    if pool is not None:
        get, put, get_exact = pool.get, pool.put, pool.get_exact

        def exact() -> None:
            put(get_exact(1024)[0])

        cases.append(
            (
                "DEFAULT_BUFFER_POOL.get(1024) + put",
                "put(get(1024))",
                {"get": get, "put": put},
                lambda: lambda: put(get(1024)),
            )
        )
        cases.append(
            (
                "DEFAULT_BUFFER_POOL.get_exact(1024) + put",
                "exact()",
                {"exact": exact},
                lambda: exact,
            )
        )
    results: list[dict[str, Any]] = []
    for label, stmt, ns, make in cases:
        timing = time_stmt(stmt, ns, target=target, repeat=repeat)
        # Results are dropped, as in a get/use/put loop: peak is the figure here.
        allocs = measure_allocs(lambda make=make: _discard(make()), 1024)
        results.append({"label": label, "available": True, **timing.as_dict(), **allocs})
    if pool is None:
        results.append({"label": "DEFAULT_BUFFER_POOL.get(1024) + put", "available": False})
    return results


def _discard(op: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        op()

    return run
