"""The compiled protocol core against the pure one: same events, same bytes, same codes.

``_protocol_c`` is ``_protocol_py.py`` compiled by Cython (DESIGN §2: one source, two
builds). Any frame stream, cut into arbitrary chunks, must give the same result.
"""

from __future__ import annotations

import array
import os
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import blazews
from blazews.sansio import _protocol_py, protocol
from blazews.sansio.states import Side
from tests.helpers import parse_frames

try:
    from blazews.sansio import _protocol_c
except ImportError:  # pragma: no cover - the pure build
    _protocol_c = None  # type: ignore[assignment]

compiled_only = pytest.mark.skipif(
    _protocol_c is None or blazews.IMPLEMENTATION != "compiled", reason="pure build"
)


def test_compiled_codec_is_live_in_the_default_build() -> None:
    if os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0"):
        assert blazews.implementation_report()["sansio._protocol"] == "python"
        assert protocol.Protocol is _protocol_py.Protocol
    else:
        assert blazews.implementation_report()["sansio._protocol"] == "compiled"
        assert _protocol_c is not None
        assert protocol.Protocol is _protocol_c.Protocol
        assert type(protocol.Protocol.__dict__["_parse"]).__name__ != "function"


def frame(opcode: int, payload: bytes, fin: bool, rsv: int, mask: bytes | None, form: int) -> bytes:
    """A frame with any header: ``form`` picks 7, 16 or 64-bit length encoding."""
    n = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if mask is not None else 0
    if form == 0 and n < 126:
        head = bytes([first, bit | n])
    elif form <= 1 and n < 65536:
        head = bytes([first, bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60).map(str.encode),
    st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\x03\xe8", b"\x03\xe8ok", b"\x00", b"\xce"]),
)
frames = st.tuples(
    st.sampled_from([0, 1, 2, 8, 9, 10, 3, 11]),
    payloads,
    st.booleans(),
    st.sampled_from([0, 0, 0, 4, 2]),
    st.booleans(),
    st.integers(0, 2),
)


def run(cls: Any, side: Side, stream: bytes, cuts: list[int], limit: int | None) -> Any:
    proto = cls(side, max_message_size=limit)
    events: list[Any] = []
    out: list[bytes] = []
    pos = 0
    for cut in [*sorted(cuts), len(stream)]:
        proto.receive_data(stream[pos:cut])
        pos = max(pos, cut)
        events += [
            (type(e).__name__, getattr(e, "type", None), e.data) for e in proto.events_received()
        ]
        out += proto.data_to_send()
    error = proto.protocol_error
    return (
        events,
        # Client output is masked with random keys: compare frame count and size only.
        [len(chunk) for chunk in out] if side is Side.CLIENT else out,
        None if error is None else (type(error).__name__, error.close_code, str(error)),
        proto.state,
        proto.close_rcvd,
        proto.close_sent,
        proto.buffered,
    )


@compiled_only
@settings(max_examples=300, deadline=None)
@given(
    st.lists(frames, max_size=12),
    st.lists(st.integers(0, 5000), max_size=6),
    st.sampled_from([None, 64, 1000]),
    st.booleans(),
    st.binary(max_size=16),
)
def test_same_behaviour_compiled_and_pure(
    spec: list[tuple[int, bytes, bool, int, bool, int]],
    cuts: list[int],
    limit: int | None,
    to_server: bool,
    garbage: bytes,
) -> None:
    side = Side.SERVER if to_server else Side.CLIENT
    stream = (
        b"".join(
            frame(
                op,
                data,
                fin,
                rsv,
                os.urandom(4) if (to_server if good else not to_server) else None,
                form,
            )
            for op, data, fin, rsv, good, form in spec
        )
        + garbage
    )
    assert run(_protocol_c.Protocol, side, stream, cuts, limit) == run(
        _protocol_py.Protocol, side, stream, cuts, limit
    )


@compiled_only
def test_large_and_64bit_lengths_agree() -> None:
    big = os.urandom(70000)
    stream = frame(2, big, True, 0, os.urandom(4), 2) + frame(2, b"x", True, 0, os.urandom(4), 2)
    top_bit = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"k" * 4
    for data in (stream, top_bit):
        for cuts in ([], [1, 2, 9, 10, 14, 5000]):
            assert run(_protocol_c.Protocol, Side.SERVER, data, cuts, None) == run(
                _protocol_py.Protocol, Side.SERVER, data, cuts, None
            )
    # A server's frames (unmasked) to a client: the copy without a key, large and small.
    plain = frame(2, big, True, 0, None, 2) + frame(2, b"y", True, 0, None, 0)
    for cuts in ([], [3, 69000]):
        result = run(_protocol_c.Protocol, Side.CLIENT, plain, cuts, None)
        assert result == run(_protocol_py.Protocol, Side.CLIENT, plain, cuts, None)
        assert result[0] == [("Message", 2, big), ("Message", 2, b"y")]


# -- receive_into_buffer: the buffer entry point against receive_data ---------------


def run_into(
    cls: Any,
    side: Side,
    stream: bytes,
    cuts: list[int],
    limit: int | None,
    borrow: bool,
    offset: int,
    compact: bool,
) -> tuple[Any, list[int]]:
    """Feed ``stream`` as a BufferedProtocol would: the caller keeps what is not used.

    The unparsed bytes start at ``offset`` in the buffer; they are either moved back
    there before each read (``compact``) or left where they are, the buffer growing.
    Returns what :func:`run` returns, and the ``incomplete_frame_size`` of each call.
    """
    proto = cls(side, max_message_size=limit)
    guard = bytes(range(256))[:offset]
    buf = bytearray(guard)
    start = offset
    events: list[Any] = []
    out: list[bytes] = []
    sizes: list[int] = []
    pos = 0
    for cut in [*sorted(cuts), len(stream)]:
        if compact:
            buf = bytearray(guard) + buf[start:]
            start = offset
        buf += stream[pos:cut]
        pos = max(pos, cut)
        end = len(buf)
        used = proto.receive_into_buffer(buf, start, end, borrow)
        assert 0 <= used <= end - start
        start += used
        sizes.append(proto.incomplete_frame_size)
        if start < end and proto.incomplete_frame_size:
            assert proto.incomplete_frame_size > end - start
        for e in proto.events_received():
            data = e.data
            if type(data) is memoryview:
                assert borrow
                assert data.obj is buf  # a view of the caller's buffer, no copy
                data = data.tobytes()
                e.data.release()
            events.append((type(e).__name__, getattr(e, "type", None), data))
        out += proto.data_to_send()
        assert buf[:offset] == guard  # nothing before start is touched
    error = proto.protocol_error
    return (
        events,
        [len(chunk) for chunk in out] if side is Side.CLIENT else out,
        None if error is None else (type(error).__name__, error.close_code, str(error)),
        proto.state,
        proto.close_rcvd,
        proto.close_sent,
        len(buf) - start + proto.buffered,  # the bytes kept, by the caller or the core
    ), sizes


def stream_of(spec: list[tuple[int, bytes, bool, int, bool, int]], to_server: bool) -> bytes:
    """The frames of ``spec``, masked as they should be when ``good``, else the reverse."""
    out = []
    for op, data, fin, rsv, good, form in spec:
        mask = os.urandom(4) if (to_server if good else not to_server) else None
        out.append(frame(op, data, fin, rsv, mask, form))
    return b"".join(out)


implementations = [_protocol_py.Protocol] + ([] if _protocol_c is None else [_protocol_c.Protocol])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(frames, max_size=12),
    st.lists(st.integers(0, 5000), max_size=6),
    st.sampled_from([None, 64, 1000]),
    st.booleans(),
    st.binary(max_size=16),
    st.booleans(),
    st.integers(0, 7),
    st.booleans(),
)
def test_receive_into_buffer_behaves_as_receive_data(
    spec: list[tuple[int, bytes, bool, int, bool, int]],
    cuts: list[int],
    limit: int | None,
    to_server: bool,
    garbage: bytes,
    borrow: bool,
    offset: int,
    compact: bool,
) -> None:
    side = Side.SERVER if to_server else Side.CLIENT
    stream = stream_of(spec, to_server) + garbage
    expected = run(_protocol_py.Protocol, side, stream, cuts, limit)
    sizes = []
    for cls in implementations:
        result, incomplete = run_into(cls, side, stream, cuts, limit, borrow, offset, compact)
        assert result == expected
        sizes.append(incomplete)
    assert all(s == sizes[0] for s in sizes)


@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
@pytest.mark.parametrize(
    "size",
    # (the kernels' SIMD paths switch at multiples of 16, 32 and 64 bytes)
    [
        *(0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 125, 126, 1000),
        *(4095, 4096, 4097, 65535, 65536, 70001),
    ],
)
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_in_place_unmasking_at_boundary_sizes(cls: Any, size: int, offset: int) -> None:
    payload = os.urandom(size)
    key = os.urandom(4)
    head = frame(2, payload, True, 0, key, 0)
    stream = head + frame(1, b"ok", True, 0, os.urandom(4), 0)
    for borrow in (False, True):
        proto = cls(Side.SERVER, max_message_size=None)
        buf = bytearray(b"\xaa" * offset + stream + b"\xbb" * 5)
        used = proto.receive_into_buffer(buf, offset, offset + len(stream), borrow)
        assert used == len(stream)
        first, second = proto.events_received()
        assert bytes(first.data) == payload and first.type == 2
        assert bytes(second.data) == b"ok"
        assert (type(first.data) is memoryview) == borrow
        assert buf[:offset] == b"\xaa" * offset and buf[-5:] == b"\xbb" * 5
        if borrow:
            start = offset + len(head) - size
            assert buf[start : start + size] == payload  # unmasked where it lay
            # A view of exactly the payload (compiled, not made by slicing): its
            # length, its bytes, and the views made of it.
            view = first.data
            assert view.obj is buf and len(view) == view.nbytes == size
            assert view.format == "B" and view.c_contiguous and not view.readonly
            assert view[1:-1] == payload[1:-1] and view[::-1] == payload[::-1]


@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
def test_incomplete_frame_size(cls: Any) -> None:
    proto = cls(Side.SERVER, max_message_size=None)
    data = frame(2, b"x" * 70000, True, 0, os.urandom(4), 0)  # 14-byte header
    assert proto.receive_into_buffer(bytearray(data[:1]), 0, 1) == 0
    assert proto.incomplete_frame_size == 0  # the header is not complete
    assert proto.receive_into_buffer(bytearray(data[:9]), 0, 9) == 0
    assert proto.incomplete_frame_size == 0  # nor its length
    assert proto.receive_into_buffer(bytearray(data[:10]), 0, 10) == 0
    assert proto.incomplete_frame_size == 70014  # the length is known
    assert proto.receive_into_buffer(bytearray(data[:14]), 0, 14) == 0
    assert proto.incomplete_frame_size == 70014
    assert proto.receive_into_buffer(bytearray(data[:-1]), 0, len(data) - 1) == 0
    assert proto.incomplete_frame_size == 70014
    buf = bytearray(data)
    assert proto.receive_into_buffer(buf, 0, len(buf)) == len(buf)
    assert proto.incomplete_frame_size == 0
    claim = bytes([0x82, 0xFF]) + struct.pack("!Q", (1 << 63) - 1) + b"kkkk"
    assert proto.receive_into_buffer(bytearray(claim), 0, 14) == 0
    assert proto.incomplete_frame_size == 1 << 62  # capped; the caller grows gradually


@compiled_only
def test_compiled_codec_unmasks_small_payloads_in_c() -> None:
    assert _protocol_c._COMPILED is True
    assert _protocol_py._COMPILED is False


def _masked_binary(payload: bytes) -> bytes:
    return frame(2, payload, True, 0, b"\x01\x02\x03\x04", 0)


@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
@pytest.mark.parametrize(
    "make",
    [
        bytes,  # read-only
        lambda data: memoryview(array.array("H", data + b"\x00" * (len(data) % 2))),  # not bytes
        lambda data: memoryview(bytearray(b"".join(bytes([b, 0]) for b in data)))[::2],  # strided
    ],
    ids=["read-only", "items of 2 bytes", "strided"],
)
def test_receive_into_buffer_refuses_what_it_cannot_parse_in_place(cls: Any, make: Any) -> None:
    # The compiled parser reads the buffer through a pointer: a buffer it could not
    # read as contiguous bytes, or unmask in, is refused, in both builds alike.
    proto = cls(Side.SERVER)
    data = _masked_binary(b"hello")
    with pytest.raises(TypeError, match="writable, contiguous buffer"):
        proto.receive_into_buffer(make(data), 0, len(data), True)
    assert proto.events_received() == []
    view = memoryview(bytearray(data))  # a view of a bytearray is fine
    assert proto.receive_into_buffer(view, 0, len(data), True) == len(data)
    assert [bytes(e.data) for e in proto.events_received()] == [b"hello"]


@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
@pytest.mark.parametrize(
    "make",
    [
        lambda buf: memoryview(buf),  # flat bytes: parsed as it is
        lambda buf: memoryview(buf).cast("c"),  # bytes of another format
        lambda buf: memoryview(buf).cast("b"),
        lambda buf: memoryview(buf).cast("B", (2, len(buf) // 2)),  # two dimensions
    ],
    ids=["B", "c", "b", "2-D"],
)
def test_receive_into_buffer_reads_any_view_of_writable_bytes_as_flat_bytes(
    cls: Any, make: Any
) -> None:
    # A front end passes the view of its whole buffer it keeps (no view per read).
    # Whatever its shape and format, the frames are parsed as bytes, payloads are
    # lent as flat views of bytes, and the caller's view is left as it was.
    proto = cls(Side.SERVER)
    data = _masked_binary(b"hello") + _masked_binary(b"world!")
    buf = bytearray(data + b"\x00" * (len(data) % 2))
    view = make(buf)
    assert proto.receive_into_buffer(view, 0, len(data), True) == len(data)
    events = proto.events_received()
    assert [bytes(e.data) for e in events] == [b"hello", b"world!"]
    for e in events:
        assert type(e.data) is memoryview
        assert (e.data.format, e.data.ndim, e.data.readonly) == ("B", 1, False)
    assert bytes(buf[6:11]) == b"hello"  # unmasked in place: lent from buf itself
    assert view.tobytes()[:2] == data[:2]  # not released
    view.release()
    assert bytes(events[1].data) == b"world!"  # a lent payload outlives the view
    with pytest.raises(ValueError, match="released"):
        proto.receive_into_buffer(view, 0, len(data), True)


@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
def test_receive_into_buffer_refuses_bounds_outside_the_buffer(cls: Any) -> None:
    proto = cls(Side.SERVER)
    data = _masked_binary(b"hello")
    buf = bytearray(data)
    with pytest.raises(ValueError, match="within the buffer"):
        proto.receive_into_buffer(buf, 0, len(buf) + 1)  # would read past the end
    with pytest.raises(ValueError, match="within the buffer"):
        proto.receive_into_buffer(buf, -1, len(buf))
    assert proto.events_received() == []
    assert proto.receive_into_buffer(buf, 0, len(buf)) == len(buf)
    assert [e.data for e in proto.events_received()] == [b"hello"]


@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
@pytest.mark.parametrize(
    "make",
    [
        lambda data: memoryview(b"".join(bytes([b, 0]) for b in data))[::2],
        lambda data: memoryview(data).cast("H"),
        lambda data: array.array("H", data),
    ],
    ids=["strided", "memoryview of 2-byte items", "array of 2-byte items"],
)
def test_receive_data_parses_any_bytes_like_as_its_bytes(cls: Any, make: Any) -> None:
    # Before, the compiled build refused a view of 2-byte items and the pure one
    # misparsed it (it read items where bytes were meant, len() of them).
    data = _masked_binary(b"hello!") * 2  # an even length, for the 2-byte forms
    assert len(data) % 2 == 0
    proto = cls(Side.SERVER)
    proto.receive_data(make(data))
    assert [e.data for e in proto.events_received()] == [b"hello!", b"hello!"]
    assert proto.protocol_error is None


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
@pytest.mark.parametrize("cls", implementations, ids=lambda c: c.__module__.rsplit(".", 1)[1])
def test_sending_a_released_view_raises_and_queues_nothing(cls: Any, side: Side) -> None:
    # The compiled core reads a view's size in C: a released one is refused as
    # memoryview.nbytes refuses it, at any size (a large server payload is sent as
    # itself: it must not reach the transport).
    proto = cls(side)
    for size in (5, 100_000):
        view = memoryview(bytes(size))
        view.release()
        with pytest.raises(ValueError, match="released"):
            proto.send_binary(view)
        assert proto.data_to_send() == []
    proto.send_binary(memoryview(b"still open"))
    (sent,) = parse_frames(b"".join(bytes(b) for b in proto.data_to_send()))
    assert (sent.opcode, sent.payload) == (2, b"still open")
