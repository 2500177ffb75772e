"""The seed's before/after table, in Python: read_message vs read_message_into.

Every row reads 1 KiB binary messages, one per masked frame (client to server, a fresh
key per frame), from an in-memory stream (``io.BytesIO``, rewound when it runs out):
no sockets, no threads.

The main rows are the public API of :class:`blazews.sync.FrameReader` over the stream:

- ``FrameReader.read_message()``: returns ``(MessageType, bytes)``: the seed's
  ``ReadMessage``;
- ``FrameReader.read_message_into(buf)``: unmasks straight into the caller's buffer and
  returns ``(MessageType, n)``: the seed's ``ReadMessageInto``;
- ``FrameReader.read_frame_into(buf)``: one frame, returned as a ``Frame`` object;
- ``read_message_into`` with the buffer taken from and given back to
  ``DEFAULT_BUFFER_POOL`` on every message.

The same rows run again on the pure-Python reader (``_frame_reader_py``, still with
the compiled kernels) when the compiled one is in use, labelled ``[pure Python]``.

:class:`blazews.sync.Connection` itself needs a connected socket (``recv_into``,
``settimeout``, ``shutdown``, ``getpeername``) and a reader thread, so it cannot be
driven from an in-memory stream. Two rows, labelled ``sans-I/O core``, run its data
path single-threaded instead: ``readinto`` a reusable 64 KiB buffer
(``RECV_BUFFER_SIZE``), feed it to the sans-I/O
:class:`~blazews.sansio.protocol.Protocol`, queue its events, return
``(MessageType, bytes)``; or copy the payload into the caller's buffer, as
``Connection.read_message_into`` does.

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

Both are net of the same measurement around an empty operation. A payload-sized
allocation shows as about 1 KiB in one of them.
"""

from __future__ import annotations

import collections
import gc
import io
import random
import statistics
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

from blazews._bench.common import time_stmt

__all__ = ["GO_SEED", "MESSAGE_SIZE", "bench_pool", "bench_seed", "measure_allocs"]

MESSAGE_SIZE = 1024
RECV_BUFFER_SIZE = 65536  # blazews.sync.connection.RECV_BUFFER_SIZE
FRAGMENTS = 4  # frames per message in the fragmented row: 4 x 256 B

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


def masked_frames(
    count: int, size: int = MESSAGE_SIZE, seed: int = 6455, fragments: int = 1
) -> bytes:
    """Return ``count`` masked binary messages of ``size`` bytes each, each in
    ``fragments`` frames of equal size (``size`` must divide evenly)."""
    from blazews._kernels_py import apply_mask

    rng = random.Random(seed)
    piece = size // fragments
    assert piece * fragments == size
    parts = []
    for _ in range(count):
        for i in range(fragments):
            first = (0x02 if i == 0 else 0x00) | (0x80 if i == fragments - 1 else 0)
            key = rng.randbytes(4)
            parts.append(_header(first, piece) + key + apply_mask(rng.randbytes(piece), key))
    return b"".join(parts)


def _header(first: int, size: int) -> bytes:
    """A masked frame's header (without the key), minimal length encoding (RFC 6455 §5.2)."""
    if size < 126:
        return struct.pack("!BB", first, 0x80 | size)
    if size < 65536:
        return struct.pack("!BBH", first, 0x80 | 126, size)
    return struct.pack("!BBQ", first, 0x80 | 127, size)


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


def reader_ops(data: bytes, cls: Any = None, size: int = 4096) -> dict[str, Callable[[], Any]]:
    """Return zero-argument ``read_message``, ``read_message_into`` and
    ``read_frame_into`` operations of one FrameReader over ``data``.

    Each rewinds the stream at its end, within the one Python call the timing makes
    (no wrapper call per operation).

    Args:
        data: The frames.
        cls: The reader class; :class:`blazews.sync.FrameReader` by default.
        size: The size of the buffer the ``_into`` operations read into.
    """
    if cls is None:
        from blazews.sync import FrameReader as cls

    stream = _Stream(data)
    reader = cls(stream.bio, max_message_size=None)
    rewind = stream.rewind
    message, message_into, frame_into = (
        reader.read_message,
        reader.read_message_into,
        reader.read_frame_into,
    )
    buf = bytearray(size)

    def read_message() -> Any:
        try:
            return message()
        except EOFError:
            rewind()
            return message()

    def read_message_into() -> Any:
        try:
            return message_into(buf)
        except EOFError:
            rewind()
            return message_into(buf)

    def read_frame_into() -> Any:
        try:
            return frame_into(buf)
        except EOFError:
            rewind()
            return frame_into(buf)

    return {
        "read_message": read_message,
        "read_message_into": read_message_into,
        "read_frame_into": read_frame_into,
        "read_message_into(buf)": message_into,
        "rewind": rewind,
    }


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
    fragmented = masked_frames(frames, fragments=FRAGMENTS)
    pool = _default_pool()

    def rows() -> list[tuple[str, str, Callable[[], Callable[[], Any]]]]:
        out: list[tuple[str, str, Callable[[], Callable[[], Any]]]] = []
        for suffix, cls in _reader_classes():
            out += _reader_rows(data, pool, suffix, cls)

        def msg() -> Callable[[], Any]:
            return core_reader(data)[0]

        def msg_into() -> Callable[[], Any]:
            into = core_reader(data)[1]
            buf = bytearray(4096)
            return lambda: into(buf)

        out.append(
            (
                "sans-I/O core read_message (sync.Connection's data path)",
                "core.read_message",
                msg,
            )
        )
        out.append(
            (
                "sans-I/O core read_message_into (sync.Connection's data path + copy)",
                "core.read_message_into",
                msg_into,
            )
        )

        def msg_fragmented() -> Callable[[], Any]:
            return core_reader(fragmented)[0]

        out.append(
            (
                f"sans-I/O core read_message, the message in {FRAGMENTS} frames (assembled)",
                "core.read_message (fragmented)",
                msg_fragmented,
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


def _reader_classes() -> list[tuple[str, Any]]:
    """The reader the package selected, then the pure one if that is not it."""
    from blazews.sync import FrameReader, _frame_reader_py

    classes: list[tuple[str, Any]] = [("", FrameReader)]
    if FrameReader is not _frame_reader_py.FrameReader:
        classes.append((" [pure Python]", _frame_reader_py.FrameReader))
    return classes


def _reader_rows(
    data: bytes, pool: Any, suffix: str, cls: Any
) -> list[tuple[str, str, Callable[[], Callable[[], Any]]]]:
    """The FrameReader rows of the seed table, for one reader class."""
    tag = " (pure)" if suffix else ""

    def msg() -> Callable[[], Any]:
        return reader_ops(data, cls)["read_message"]

    def msg_into() -> Callable[[], Any]:
        return reader_ops(data, cls)["read_message_into"]

    def frame_into() -> Callable[[], Any]:
        return reader_ops(data, cls)["read_frame_into"]

    rows = [
        (f"FrameReader.read_message (BytesIO){suffix}", f"FrameReader.read_message{tag}", msg),
        (
            f"FrameReader.read_message_into (BytesIO){suffix}",
            f"FrameReader.read_message_into{tag}",
            msg_into,
        ),
        (
            f"FrameReader.read_frame_into (BytesIO){suffix}",
            f"FrameReader.read_frame_into{tag}",
            frame_into,
        ),
    ]
    if pool is not None and not suffix:

        def pooled() -> Callable[[], Any]:
            ops = reader_ops(data, cls)
            into, rewind = ops["read_message_into(buf)"], ops["rewind"]
            get, put = pool.get, pool.put

            def op() -> Any:
                buf = get(MESSAGE_SIZE)
                try:
                    result = into(buf)
                except EOFError:
                    rewind()
                    result = into(buf)
                put(buf)
                return result

            return op

        rows.append(
            (
                "FrameReader.read_message_into + DEFAULT_BUFFER_POOL get/put",
                "FrameReader.read_message_into+pool",
                pooled,
            )
        )
    return rows


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
        pure = _pure_pool()
        if pure is not None:
            pget, pput = pure.get, pure.put
            cases.append(
                (
                    "BufferPool().get(1024) + put [pure Python]",
                    "pput(pget(1024))",
                    {"pget": pget, "pput": pput},
                    lambda: lambda: pput(pget(1024)),
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


def _pure_pool() -> Any:
    """A pure-Python pool when the compiled one is in use (else ``None``)."""
    from blazews import _buffers_py
    from blazews.buffers import BufferPool

    return None if BufferPool is _buffers_py.BufferPool else _buffers_py.BufferPool()


def _discard(op: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        op()

    return run
