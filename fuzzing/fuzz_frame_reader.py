"""Fuzz the blocking frame reader (``blazews.sync.FrameReader``): compiled against pure
Python, against a model, and ``read_message_into`` against ``read_message``.

Each input becomes: a ``max_message_size``, a SIMD level, how often ``on_control``
raises (never, or at every Nth ping or pong), whether the readers take their internal
buffer from a ``BufferPool`` (one of 17084 bytes, handed from reader to reader with
the last one's bytes in it), a byte stream (raw fuzz bytes, or frames
built from the input: masked, unmasked or both, some with non-minimal lengths, RSV bits,
reserved opcodes, close payloads, UTF-8 cut anywhere, payloads of 4-70 KiB, the last
frame sometimes truncated), the cuts at which the stream's ``readinto`` returns short,
and up to 12 calls: ``read_frame_into(buf)`` (retried with a buffer of ``needed`` bytes
after ``BufferTooSmall``, or not), ``read_message_into(buf)`` (always retried so) or
``read_message()``, each ``buf`` of a size and a kind the input picks (``bytearray``,
``memoryview``, an ``array('I')``, a view into the middle of a larger buffer; a
read-only or non-contiguous one, which must be refused). The reader has no masking or
role setting: it reads masked and unmasked frames alike, so the stream mixes both.

The stream is read by ``_frame_reader_py.FrameReader`` (with the pure kernels) and, when
built, ``_frame_reader_c.FrameReader`` (with the C kernels at the input's level), both
cut as the input says, and the compiled one from the stream in one piece as well.
Checked:

- nothing but the documented exceptions comes out: ``BufferTooSmall``, ``EOFError``,
  ``ProtocolError`` (frames: 1002 or 1006; messages: 1002, 1006, 1007, and
  ``MessageTooBig`` with 1009), ``ConnectionClosedOK`` (close code 1000, 1001, none) and
  ``ConnectionClosedError`` (any other valid code) on a close frame, what ``on_control``
  raised, ``ValueError`` only once a payload was cut short (the reader is then out of
  step), ``TypeError`` only for a read-only or non-contiguous buffer;
- a returned length never exceeds the buffer, nor ``max_message_size``; the payload
  goes to the first bytes of the buffer and nothing else in it (or around the view)
  changes; ``BufferTooSmall.needed`` exceeds the buffer, strictly grows from one retry
  to the next, and a retry with ``needed`` bytes reads the message (or frame) (no retry
  past 1 MiB, ``SAFE``: the harness allocates no larger buffer);
- a header that ``read_frame_into`` left pending (``BufferTooSmall``) goes through the
  message checks when a message read resumes over it, with either method (the model
  checks every frame a message read takes);
- without a limit, a header's claim allocates nothing by itself: ``read_message()``
  over a stream that claims up to 2**63-1 bytes and ends early raises 1006, not
  ``MemoryError``;
- a message error (``ProtocolError``, ``ConnectionClosed``) is raised again, the same
  object, by every later message read;
- every result (frames, messages with their ``needed`` values, exceptions with their
  close codes, the ``on_control`` calls, ``close_rcvd``) is what a model of RFC 6455
  and of the reader's documentation says (:class:`Model`);
- a fresh reader of the same stream given the same calls, ``read_message()`` instead
  of each ``read_message_into(buf)``, gives the same messages and exceptions;
- compiled and pure give the same results, cut or in one piece;
- once closed, the reader refuses every read with ``ValueError``, and gives its buffer
  back to the pool.

The two findings of ``fuzzing/README.md`` (fixed) are replayed by
``corpus/frame_reader/regression-*``.

Run ``python fuzzing/fuzz_frame_reader.py [corpus dirs] [-runs=N | -max_total_time=S]``.
"""

from __future__ import annotations

import array
import contextlib
import io
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _driver import Input, instrumented, main  # noqa: E402
from fuzz_utf8 import completable, valid  # noqa: E402

with instrumented():
    from blazews import _kernels_py
    from blazews.buffers import BufferPool
    from blazews.exceptions import (
        BufferTooSmall,
        ConnectionClosed,
        ConnectionClosedError,
        ConnectionClosedOK,
        MessageTooBig,
        ProtocolError,
    )
    from blazews.sansio import frames
    from blazews.sync import _frame_reader_py

try:
    from blazews._native import _kernels as native
except ImportError:
    native = None
try:
    from blazews.sync import _frame_reader_c
except ImportError:
    _frame_reader_c = None
else:  # a .py of that name on the path would not be the compiled build
    if not _frame_reader_c.__file__ or _frame_reader_c.__file__.endswith(".py"):
        _frame_reader_c = None

LEVELS = list(native.available_levels()) if native is not None else []
DEFAULT = _frame_reader_py.DEFAULT_MAX_MESSAGE_SIZE
SIZES = (None, 0, 1, 125, 126, 1024, 65536, DEFAULT)
CAPS = (0, 1, 2, 5, 125, 126, 127, 1000, 4096, 4097, 16384, 16400, 70000, 1 << 20)
LARGE = (4095, 4096, 4097, 16370, 16384, 16400, 40000, 70000)
SAFE = 1 << 20  # the largest buffer the harness allocates for a retry
POOL_TIER = _frame_reader_py.READ_BUFFER_SIZE + 700  # an internal buffer of another size
SENTINEL = 0xA5
_FILL = bytes([SENTINEL]) * (max(CAPS) + 64)

# The pure run: pure codec and pure kernels.
_frame_reader_py.mask_bytes = _kernels_py.mask_bytes
_frame_reader_py.validate_utf8 = _kernels_py.validate_utf8
_frame_reader_py.Utf8Validator = _kernels_py.Utf8Validator
# The compiled run: compiled codec and C kernels, whatever BLAZEWS_NO_EXTENSIONS says.
if _frame_reader_c is not None and native is not None:
    _frame_reader_c.mask_bytes = native.mask_bytes
    _frame_reader_c.validate_utf8 = native.validate_utf8
    _frame_reader_c.Utf8Validator = native.Utf8Validator


@contextlib.contextmanager
def close_utf8(validate: Any) -> Iterator[None]:
    """Make ``Close.parse`` (shared by both readers) use ``validate``."""
    saved = frames.validate_utf8
    frames.validate_utf8 = validate
    try:
        yield
    finally:
        frames.validate_utf8 = saved


class Interrupt(Exception):
    """What ``on_control`` raises when the input says so."""


# -- the stream ---------------------------------------------------------------------


def header(first: int, length: int, key: bytes | None, width: int) -> bytes:
    """A frame header. ``width``: 0 minimal length encoding, 1 16-bit, 2 64-bit, 3 64-bit
    with the top bit set (invalid)."""
    bit = 0x80 if key is not None else 0
    if width == 0:
        width = 0 if length < 126 else 1 if length < 65536 else 2
    if width == 0:
        head = bytes((first, bit | length))
    elif width == 1 and length < 65536:
        head = struct.pack("!BBH", first, bit | 126, length)
    else:
        if width == 3:
            length |= 1 << 63
        head = struct.pack("!BBQ", first, bit | 127, length)
    return head + (key or b"")


_OPCODES = (0x1, 0x2, 0x0, 0x0, 0x9, 0xA, 0x8, 0x1, 0x2, 0x0, 0x9, 0x0)
_TEXT = "aé€😀 z".encode()


def build_stream(inp: Input, masking: int) -> bytes:
    """Frames from the input: mostly well formed, with occasional defects.
    ``masking``: 0 none masked, 1 all masked, else each as the input says."""
    parts = []
    for _ in range(inp.num(0, 10)):
        kind = inp.byte()
        opcode = _OPCODES[kind % len(_OPCODES)] if kind < 0xF0 else kind & 0x0F
        flags = inp.byte()
        fin = not flags & 0x01 or (opcode & 0x8 and not flags & 0x10)
        rsv = (flags & 0x70) if flags & 0x80 else 0
        masked = masking == 1 or (masking > 1 and bool(flags & 0x02))
        width = (flags >> 2) & 3 if flags & 0x20 else 0
        body = inp.byte()
        if opcode == 0x8 and body & 0x80:  # a close payload: code and reason
            code = inp.num(0, 5000) if body & 0x40 else (1000, 1001, 1002, 1005, 3000)[body % 5]
            payload = struct.pack("!H", code) + _TEXT[: body & 0x0F]
        elif body & 0xE0 == 0xE0:  # text, cut anywhere
            payload = (_TEXT * inp.num(1, 60))[: inp.num(0, 400)]
        elif body == 0xDF:  # a large payload
            payload = (bytes(range(256)) * 300)[: LARGE[inp.num(0, len(LARGE) - 1)]]
        else:
            payload = inp.take(body % 140)
        first = (0x80 if fin else 0) | rsv | opcode
        key = inp.take(4).ljust(4, b"\x00") if masked else None
        frame = header(first, len(payload), key, width)
        frame += _kernels_py.apply_mask(payload, key) if key is not None else payload
        if flags & 0x44 == 0x04:  # sometimes cut the frame short
            frame = frame[: inp.num(0, len(frame) - 1)]
        parts.append(frame)
    return b"".join(parts)


class ShortReads(io.BytesIO):
    """An in-memory stream whose ``readinto`` returns at most the next cut (>= 1)."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        super().__init__(data)
        self._cuts = list(reversed(cuts))

    def readinto(self, buffer: Any) -> int:
        if self._cuts:
            buffer = memoryview(buffer)[: max(1, self._cuts.pop())]
        return super().readinto(buffer)


# -- the model ----------------------------------------------------------------------


@dataclass
class Item:
    """One step of the stream: a frame, or where reading stops for good.

    ``kind``: ``"frame"``; ``"eof"`` (the input ends at a frame boundary); ``"cut"``
    (it ends inside a header); ``"bad"`` (a header breaking RFC 6455)."""

    kind: str
    opcode: int = 0
    fin: bool = True
    rsv: int = 0
    length: int = 0
    payload: bytes = b""
    truncated: bool = False  # the payload is cut short by the end of the input


def parse(stream: bytes) -> list[Item]:
    """What a reader meets, frame after frame (RFC 6455 5.2 and the reader's checks)."""
    items = []
    pos = 0
    while True:
        rest = len(stream) - pos
        if rest == 0:
            items.append(Item("eof"))
            return items
        if rest < 2:
            items.append(Item("cut"))
            return items
        b0, b1 = stream[pos], stream[pos + 1]
        short = b1 & 0x7F
        size = 2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if b1 & 0x80 else 0)
        if rest < size:
            items.append(Item("cut"))
            return items
        if short == 126:
            length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        elif short == 127:
            length = int.from_bytes(stream[pos + 2 : pos + 10], "big")
        else:
            length = short
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        if (
            length >= 1 << 63
            or (opcode >= 0x8 and (not fin or length > 125))
            or 0x3 <= opcode <= 0x7
            or opcode >= 0xB
        ):
            items.append(Item("bad"))
            return items
        payload = stream[pos + size : pos + size + length]
        if b1 & 0x80:
            key = stream[pos + size - 4 : pos + size]
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        item = Item("frame", opcode, fin, b0 & 0x70, length, payload, len(payload) < length)
        items.append(item)
        if item.truncated:
            return items
        pos += size + length


_OK_CLOSE = (1000, 1001, 1005)


def close_outcome(payload: bytes) -> tuple[tuple[Any, ...], tuple[int, str] | None]:
    """What a close frame with ``payload`` raises, and the ``close_rcvd`` it gives."""
    if not payload:
        return ("ConnectionClosedOK", 1005, ""), (1005, "")
    if len(payload) == 1:
        return ("ProtocolError", 1002), None
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        return ("ProtocolError", 1002), None
    if not valid(payload[2:]):
        return ("ProtocolError", 1007), None
    reason = payload[2:].decode()
    name = "ConnectionClosedOK" if code in _OK_CLOSE else "ConnectionClosedError"
    return (name, code, reason), (code, reason)


Result = tuple[tuple[Any, ...], tuple[int, ...]]  # the outcome, the BufferTooSmall needs


class Model:
    """The reader as RFC 6455 and its documentation describe it, over :func:`parse`."""

    def __init__(self, stream: bytes, limit: int | None, interrupt_every: int) -> None:
        self.items = parse(stream)
        self.limit = limit
        self.every = interrupt_every
        self.index = 0  # the item the next read meets
        self.pending = False  # its header was read, its payload not
        self.broken = False
        self.error: tuple[Any, ...] | None = None
        self.opcode = 0  # the message being read
        self.partial = b""
        self.controls: list[tuple[int, bytes]] = []
        self.close: tuple[int, str] | None = None

    def _consume(self) -> Item:
        item = self.items[self.index]
        self.index += 1
        self.pending = False
        return item

    def _fail(self, outcome: tuple[Any, ...]) -> tuple[Any, ...]:
        self.error = outcome
        self.opcode = 0
        self.partial = b""
        return outcome

    def read_frame(self, cap: int, ok_buffer: bool, retry: bool) -> Result:
        if self.broken:
            return ("ValueError",), ()
        if not ok_buffer:
            return ("TypeError",), ()
        item = self.items[self.index]
        if item.kind == "eof":
            return ("EOFError",), ()
        if item.kind != "frame":
            return ("ProtocolError", 1006 if item.kind == "cut" else 1002), ()
        self.pending = True
        needs: tuple[int, ...] = ()
        if item.length > cap:
            needs = (item.length,)
            if not (retry and item.length <= SAFE):
                return ("BufferTooSmall", item.length), needs
        if item.truncated:
            self.broken = True
            return ("ProtocolError", 1006), needs
        self._consume()
        return ("frame", item.opcode, item.fin, item.rsv, item.payload), needs

    def read_message(self, cap: int | None, ok_buffer: bool) -> Result:
        """``read_message()`` (``cap`` ``None``), or ``read_message_into`` retried with a
        buffer of ``needed`` bytes after each ``BufferTooSmall``."""
        if self.broken:
            return ("ValueError",), ()
        if self.error is not None:
            return self.error, ()
        if not ok_buffer:
            return ("TypeError",), ()
        needs: list[int] = []
        size = len(self.partial)
        # Resuming a message, over a pending header or not, is no special case: the
        # message so far waits for the next data frame, checked like every other
        # (then a buffer smaller than the message so far needs it and that frame).
        while True:
            item = self.items[self.index]
            if item.kind == "eof":
                if self.opcode:
                    return self._fail(("ProtocolError", 1006)), tuple(needs)
                return ("EOFError",), tuple(needs)
            if item.kind != "frame":
                code = 1006 if item.kind == "cut" else 1002
                return self._fail(("ProtocolError", code)), tuple(needs)
            self.pending = True
            if item.opcode & 0x8:
                if item.rsv:
                    return self._fail(("ProtocolError", 1002)), tuple(needs)
                if item.truncated:
                    self.broken = True
                    return ("ProtocolError", 1006), tuple(needs)
                self._consume()
                if item.opcode == 0x8:
                    outcome, self.close = close_outcome(item.payload)
                    return self._fail(outcome), tuple(needs)
                self.controls.append((item.opcode, item.payload))
                if self.every and len(self.controls) % self.every == 0:
                    return ("Interrupt",), tuple(needs)
                continue
            if item.rsv or bool(item.opcode) == bool(self.opcode):
                return self._fail(("ProtocolError", 1002)), tuple(needs)
            if self.limit is not None and item.length > self.limit - size:
                return self._fail(("MessageTooBig", 1009)), tuple(needs)
            if cap is not None and item.length > cap - size:
                cap = size + item.length
                needs.append(cap)
                if cap > SAFE:  # the harness does not retry
                    return ("BufferTooSmall", cap), tuple(needs)
            if item.truncated:
                self.broken = True
                return ("ProtocolError", 1006), tuple(needs)
            self._consume()
            if item.opcode:
                self.opcode = item.opcode
            self.partial += item.payload
            size = len(self.partial)
            if self.opcode == 0x1 and not (
                valid(self.partial) if item.fin else completable(self.partial)
            ):
                return self._fail(("ProtocolError", 1007)), tuple(needs)
            if item.fin:
                outcome = ("message", self.opcode, self.partial)
                self.opcode = 0
                self.partial = b""
                return outcome, tuple(needs)


# -- driving a reader ---------------------------------------------------------------

FRAME, INTO, MESSAGE = 0, 1, 2
BYTEARRAY, VIEW, WORDS, MIDDLE, READONLY, STRIDED = range(6)
_KINDS = (BYTEARRAY, BYTEARRAY, VIEW, WORDS, MIDDLE, BYTEARRAY, READONLY, STRIDED)


@dataclass
class Op:
    """One call: ``FRAME``, ``INTO`` or ``MESSAGE``, with a buffer of ``cap`` bytes of a
    kind (``retry``: after ``BufferTooSmall``, ``read_frame_into`` tries again)."""

    method: int
    kind: int
    cap: int
    retry: bool

    @property
    def ok_buffer(self) -> bool:
        """Whether the buffer is writable and contiguous."""
        return self.kind not in (READONLY, STRIDED)


class Buffer:
    """A caller's buffer of ``cap`` bytes, filled with a sentinel, and what was around it."""

    def __init__(self, kind: int, cap: int) -> None:
        self.kind = kind
        self.cap = cap
        self.backing: Any
        if kind == WORDS:
            self.backing = array.array("I", _FILL[:cap])
            self.arg: Any = self.backing
            self.view = memoryview(self.backing).cast("B")
        elif kind == MIDDLE:
            self.backing = bytearray(_FILL[: cap + 16])
            self.arg = self.view = memoryview(self.backing)[8 : 8 + cap]
        elif kind == READONLY:
            self.backing = self.arg = _FILL[:cap]
            self.view = memoryview(self.backing)
        elif kind == STRIDED:
            self.backing = bytearray(_FILL[: 2 * cap])
            self.arg = self.view = memoryview(self.backing)[::2]
        else:
            self.backing = bytearray(_FILL[:cap])
            self.arg = self.backing if kind == BYTEARRAY else memoryview(self.backing)
            self.view = memoryview(self.backing)

    def payload(self, n: int) -> bytes:
        """The first ``n`` bytes, checking that nothing else changed."""
        assert 0 <= n <= self.cap, f"length {n} for a buffer of {self.cap} bytes"
        if self.kind == MIDDLE:
            rest = bytes(self.backing[:8]) + bytes(self.view[n:]) + bytes(self.backing[-8:])
        else:
            rest = bytes(self.view[n:])
        assert rest == _FILL[: len(rest)], "bytes past the payload changed"
        return bytes(self.view[:n])


def _name(exc: BaseException) -> str:
    return type(exc).__name__


class Driver:
    """Runs the calls on one reader, checks each result, and records them."""

    def __init__(
        self, cls: Any, source: Any, limit: int | None, every: int, pool: Any = None
    ) -> None:
        self.controls: list[tuple[int, bytes]] = []
        self.every = every
        self.limit = limit
        self.pool = pool
        self.reader = cls(source, pool=pool, max_message_size=limit, on_control=self.on_control)
        assert self.reader.max_message_size == limit
        self.error: BaseException | None = None  # the message error, raised again
        self.cut = False  # a read ended with 1006: the reader may be out of step

    def on_control(self, opcode: Any, payload: bytes) -> None:
        assert type(payload) is bytes, f"on_control got {type(payload).__name__}"
        assert opcode in (frames.Opcode.PING, frames.Opcode.PONG), f"on_control({opcode!r})"
        self.controls.append((int(opcode), payload))
        if self.every and len(self.controls) % self.every == 0:
            raise Interrupt

    def _error(self, exc: BaseException, op: Op, message: bool) -> tuple[Any, ...]:
        """Check an exception a call raised; return its outcome."""
        if isinstance(exc, ValueError):
            assert self.cut, f"ValueError with no payload cut short: {exc}"
            return ("ValueError",)
        if isinstance(exc, TypeError):
            assert not op.ok_buffer, f"TypeError for a good buffer: {exc}"
            return ("TypeError",)
        if isinstance(exc, EOFError):
            return ("EOFError",)
        if isinstance(exc, Interrupt):
            assert message, "on_control called by read_frame_into"
            return ("Interrupt",)
        if isinstance(exc, BufferTooSmall):
            assert op.cap < exc.needed, f"BufferTooSmall({exc.needed}) for {op.cap} bytes"
            return ("BufferTooSmall", exc.needed)
        if isinstance(exc, ConnectionClosed):
            assert message, "ConnectionClosed from read_frame_into"
            rcvd = exc.rcvd
            assert rcvd is not None and self.reader.close_rcvd == rcvd, "close_rcvd not kept"
            ok = rcvd.code in _OK_CLOSE
            assert type(exc) is (ConnectionClosedOK if ok else ConnectionClosedError), (
                f"{_name(exc)} for close code {rcvd.code}"
            )
            return (_name(exc), rcvd.code, rcvd.reason)
        if isinstance(exc, MessageTooBig):
            assert message and self.limit is not None, "MessageTooBig with no limit"
            assert exc.close_code == 1009, f"MessageTooBig with {exc.close_code}"
            return ("MessageTooBig", 1009)
        if type(exc) is ProtocolError:
            allowed = (1002, 1006, 1007) if message else (1002, 1006)
            assert exc.close_code in allowed, f"ProtocolError with {exc.close_code}: {exc}"
            if exc.close_code == 1006:
                self.cut = True
            return ("ProtocolError", exc.close_code)
        raise AssertionError(f"undocumented {_name(exc)} from the reader: {exc!r}") from exc

    def read_frame(self, op: Op) -> Result:
        buf = Buffer(op.kind, op.cap)
        needs: tuple[int, ...] = ()
        try:
            try:
                frame, n = self.reader.read_frame_into(buf.arg)
            except BufferTooSmall as exc:
                assert exc.needed > op.cap, f"BufferTooSmall({exc.needed}) for {op.cap}"
                needs = (exc.needed,)
                if not (op.retry and exc.needed <= SAFE):
                    raise
                buf = Buffer(BYTEARRAY, exc.needed)
                frame, n = self.reader.read_frame_into(buf.arg)
                assert n == exc.needed, f"needed {exc.needed}, then read {n} bytes"
        except Exception as exc:
            return self._error(exc, op, False), needs
        assert op.ok_buffer, "a read-only or non-contiguous buffer accepted"
        assert n == frame.length, f"read_frame_into returned {n}, frame.length {frame.length}"
        rsv = frame.rsv1 << 6 | frame.rsv2 << 5 | frame.rsv3 << 4
        return ("frame", int(frame.opcode), bool(frame.fin), rsv, buf.payload(n)), needs

    def read_message(self, op: Op) -> Result:
        before = self.error
        needs: list[int] = []
        try:
            if op.method == MESSAGE:
                kind, payload = self.reader.read_message()
                assert type(payload) is bytes, f"read_message gave {type(payload).__name__}"
            else:
                buf = Buffer(op.kind, op.cap)
                while True:
                    try:
                        kind, n = self.reader.read_message_into(buf.arg)
                        break
                    except BufferTooSmall as exc:
                        last = needs[-1] if needs else buf.cap
                        assert exc.needed > last, f"needed {exc.needed} after {last}"
                        needs.append(exc.needed)
                        if exc.needed > SAFE:  # no buffer that large
                            raise
                        buf = Buffer(BYTEARRAY, exc.needed)
                payload = buf.payload(n)
                assert op.ok_buffer, "a read-only or non-contiguous buffer accepted"
        except Exception as exc:
            if before is not None and not isinstance(exc, ValueError):
                assert exc is before, f"{exc!r} after {before!r}, not the same again"
            if isinstance(exc, (ProtocolError, ConnectionClosed)):
                self.error = exc
            return self._error(exc, op, True), tuple(needs)
        assert before is None, f"a message read after {before!r}"
        assert kind in (frames.MessageType.TEXT, frames.MessageType.BINARY), repr(kind)
        if self.limit is not None:
            assert len(payload) <= self.limit, f"{len(payload)}-byte message, limit {self.limit}"
        if kind == frames.MessageType.TEXT:
            assert valid(payload), "a text message of invalid UTF-8"
        return ("message", int(kind), payload), tuple(needs)

    def run(self, ops: list[Op]) -> dict[str, Any]:
        results = [
            self.read_frame(op) if op.method == FRAME else self.read_message(op) for op in ops
        ]
        close = self.reader.close_rcvd
        before = None if self.pool is None else self.pool.stats()
        self.reader.close()
        assert self.reader.closed, "closed is false after close()"
        if before is not None:
            after = self.pool.stats()
            assert after.returned == before.returned + 1, f"buffer not given back: {after}"
        for call in (lambda: self.reader.read_frame_into(bytearray(10)), self.reader.read_message):
            try:
                call()
            except ValueError:
                pass
            else:
                raise AssertionError("a closed reader read on")
        return {
            "results": results,
            "controls": self.controls,
            "close": None if close is None else (close.code, close.reason),
        }


def run_model(
    stream: bytes, limit: int | None, every: int, ops: list[Op]
) -> tuple[list[bool], dict[str, Any]]:
    """What the model says of the calls, and for each whether it is a
    ``read_message_into`` left with a ``BufferTooSmall`` larger than the harness
    retries with (``SAFE``)."""
    model = Model(stream, limit, every)
    results = []
    for op in ops:
        if op.method == FRAME:
            results.append(model.read_frame(op.cap, op.ok_buffer, op.retry))
        else:
            cap = None if op.method == MESSAGE else op.cap
            results.append(model.read_message(cap, op.method == MESSAGE or op.ok_buffer))
    given_up = [
        op.method == INTO and result[0][0] == "BufferTooSmall"
        for op, result in zip(ops, results, strict=True)
    ]
    expected = {"results": results, "controls": model.controls, "close": model.close}
    return given_up, expected


def run_reference(
    cls: Any,
    stream: bytes,
    limit: int | None,
    every: int,
    ops: list[Op],
    given_up: list[bool],
    pool: Any,
) -> list[Any]:
    """A fresh reader given the same calls with ``read_message()`` for every message
    read (calls with a refused buffer left out): the outcome of each. A
    ``read_message_into`` whose ``BufferTooSmall`` was not retried (too large) is made
    as it is: ``read_message()`` would read that message, and the readers part ways."""
    driver = Driver(cls, io.BytesIO(stream), limit, every, pool)
    outcomes: list[Any] = []
    for op, keep in zip(ops, given_up, strict=True):
        if op.method != MESSAGE and not op.ok_buffer:
            outcomes.append(None)
        elif op.method == FRAME:
            outcomes.append(driver.read_frame(op)[0])
        elif keep:
            outcomes.append(driver.read_message(op)[0])
        else:
            outcomes.append(driver.read_message(Op(MESSAGE, BYTEARRAY, 0, False))[0])
    return outcomes


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = [k for k in a if a[k] != b[k]]
    return "; ".join(f"{k}: {a[k]!r:.600} != {b[k]!r:.600}" for k in keys)


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    limit = SIZES[inp.num(0, len(SIZES) - 1)]
    every = inp.num(0, 3)
    ops = []
    for _ in range(inp.num(1, 12)):
        b = inp.byte()
        kind = _KINDS[(b >> 3) & 7]
        cap = CAPS[inp.num(0, len(CAPS) - 1)]
        if kind == WORDS:
            cap = -(-cap // 4) * 4
        elif kind == STRIDED:
            cap = max(cap, 2)  # a view of 1 item is contiguous, of 0 items is not
        ops.append(Op(b % 3, kind, cap, bool(b & 0x04)))
    cuts = inp.cuts(16, 300)
    stream = build_stream(inp, (flags >> 1) & 3) if flags & 0x01 else inp.rest()

    given_up, expected = run_model(stream, limit, every, ops)

    # A pool shared by the readers: each after the first gets a used internal buffer.
    pool = BufferPool(tiers=(POOL_TIER,)) if flags & 0x08 else None
    with close_utf8(_kernels_py.validate_utf8):
        cls = _frame_reader_py.FrameReader
        got = Driver(cls, ShortReads(stream, cuts), limit, every, pool).run(ops)
        reference = run_reference(cls, stream, limit, every, ops, given_up, pool)
    assert got == expected, f"pure != model: {_diff(got, expected)}"
    for i, (outcome, (result, _)) in enumerate(zip(reference, got["results"], strict=True)):
        assert outcome is None or outcome == result, (
            f"call {i}: {result!r:.300} but {outcome!r:.300} with read_message()"
        )

    if _frame_reader_c is not None and native is not None:
        native._set_level(LEVELS[(flags >> 4) % len(LEVELS)])
        cls = _frame_reader_c.FrameReader
        with close_utf8(native.validate_utf8):
            compiled = Driver(cls, ShortReads(stream, cuts), limit, every, pool).run(ops)
            whole = Driver(cls, io.BytesIO(stream), limit, every, pool).run(ops)
        assert compiled == got, f"compiled != pure: {_diff(compiled, got)}"
        assert whole == compiled, f"one piece != cut: {_diff(whole, compiled)}"


if __name__ == "__main__":
    main(test_one_input)
