"""FrameReader, written once: the pure-Python module and the source of ``_frame_reader_c``.

Cython compiles this same file into ``blazews.sync._frame_reader_c`` with the C types
of ``_frame_reader_c.pxd`` (DESIGN §2: one source, two builds). Compiled, the header is
parsed and a payload unmasked by typed indexing into the buffers; pure, the unmasking
calls the kernel (``mask_bytes``). :mod:`blazews.sync.frame_reader` picks one and
documents the class.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._impl import Utf8Validator, mask_bytes, validate_utf8
from ..exceptions import (
    OK_CLOSE_CODES,
    BufferTooSmall,
    ConnectionClosedError,
    ConnectionClosedOK,
    MessageTooBig,
    ProtocolError,
)
from ..sansio.frames import DEFAULT_MAX_MESSAGE_SIZE, Close, Frame, MessageType, Opcode

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ..sansio._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

if cython.compiled:  # the core's rules, as C functions
    from cython.cimports.blazews.sansio._protocol_c import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        header_rule,
        rule_error,
    )
else:
    from ..sansio._protocol_py import header_rule, rule_error

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "READ_BUFFER_SIZE", "FrameReader"]

READ_BUFFER_SIZE = 16384
"""Size of a reader's internal buffer, in bytes."""

_DIRECT = 4096  # payload bytes still missing beyond which reads go to the caller's buffer
# read_message() allocates a frame's payload up to this length at once; a longer one
# in chunks, each allocated once the bytes before it arrived (_payload_chunks): a
# header's claim alone allocates nothing, even with no max_message_size.
_GROW = 1 << 20

# Opcode and MessageType members by number: cheaper than calling the enum.
_OPCODES: tuple[Any, ...] = tuple(
    Opcode(i) if i in Opcode._value2member_map_ else None for i in range(16)
)
_TYPES: tuple[Any, ...] = (None, MessageType.TEXT, MessageType.BINARY)


def _xor_into(
    dst: Any, d: int, src: Any, s: int, n: int, k0: int, k1: int, k2: int, k3: int
) -> None:
    """Compiled only: ``dst[d:d+n] = src[s:s+n]`` XOR the key bytes ``k0..k3``.

    A typed loop the C compiler vectorizes (SSE2 at the default flags); ``dst`` must
    not overlap ``src``. For 1 KiB it takes ~30 ns: less than calling the kernel's
    ``mask_bytes``, which needs a 4-byte key object and a memoryview of the exact
    payload (~80 ns with them, measured), and it copies as it unmasks.
    """
    i = 0
    while i + 4 <= n:
        dst[d + i] = src[s + i] ^ k0
        dst[d + i + 1] = src[s + i + 1] ^ k1
        dst[d + i + 2] = src[s + i + 2] ^ k2
        dst[d + i + 3] = src[s + i + 3] ^ k3
        i += 4
    if i < n:
        dst[d + i] = src[s + i] ^ k0
        if i + 1 < n:
            dst[d + i + 1] = src[s + i + 1] ^ k1
            if i + 2 < n:
                dst[d + i + 2] = src[s + i + 2] ^ k2


# Compiled by Cython, a module-level function is no longer a Python function.


def _xor_in_place(buf: Any, s: int, n: int, k0: int, k1: int, k2: int, k3: int) -> None:
    """Compiled only: XOR ``buf[s:s+n]`` in place with the key bytes ``k0..k3``.

    Separate from :func:`_xor_into`, whose vectorized loop would fall back to bytes
    one at a time for a source that overlaps its destination.
    """
    i = s
    end = s + n
    while i + 4 <= end:
        buf[i] ^= k0
        buf[i + 1] ^= k1
        buf[i + 2] ^= k2
        buf[i + 3] ^= k3
        i += 4
    if i < end:
        buf[i] ^= k0
        if i + 1 < end:
            buf[i + 1] ^= k1
            if i + 2 < end:
                buf[i + 2] ^= k2


def _byte_view(buf: Any) -> memoryview:
    """Return a writable, contiguous, one-byte-per-item view of ``buf``."""
    view = memoryview(buf)
    if view.readonly:
        raise TypeError("a writable buffer is needed")
    if not view.c_contiguous:
        raise TypeError("a contiguous buffer is needed")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


# Compiled by Cython, a module-level function is no longer a Python function.
_COMPILED = type(_byte_view).__name__ != "function"


def _pyview(buf: Any) -> memoryview:
    """Return a memoryview of ``buf``, a ``bytearray`` or already a byte view."""
    return buf if type(buf) is memoryview else memoryview(buf)


def _truncated() -> ProtocolError:
    return ProtocolError("input ended in the middle of a frame", 1006)


class FrameReader:
    """Read WebSocket frames, or whole messages, from a blocking socket
    (``recv_into``) or a binary stream (``readinto``).

    Small reads go through an internal 16 KiB buffer; a large payload is read
    straight into the caller's buffer, then unmasked in place.

    Frames:
        :meth:`read_frame_into` reads one frame, whatever it is, and checks only
        what needs no connection state (see :mod:`blazews.sync.frame_reader`).

    Messages:
        :meth:`read_message_into` and :meth:`read_message` read one whole message:
        they join a fragmented message's frames, check their order (a continuation
        without a message, or a new message inside one: ``ProtocolError`` 1002),
        validate text as it arrives (``ProtocolError`` 1007, even when an invalid
        sequence is cut between two frames), enforce ``max_message_size``
        (:class:`~blazews.exceptions.MessageTooBig`, 1009) and refuse RSV bits (no
        extension is negotiated here: 1002). Pings and pongs met on the way, between
        messages or between the fragments of one, are read whole and handed to
        ``on_control`` (or skipped when it is ``None``); nothing is answered. A close
        frame ends the reading: it raises
        :class:`~blazews.exceptions.ConnectionClosedOK` (codes 1000, 1001 or none)
        or :class:`~blazews.exceptions.ConnectionClosedError` (any other code),
        whose ``rcvd`` is the close frame, also kept in :attr:`close_rcvd`.
        A frame whose header :meth:`read_frame_into` read and left pending
        (``BufferTooSmall``) is checked like any other when a message read takes it.
        These protocol errors, and the close, are final for messages: every later
        ``read_message[_into]`` raises the same exception again (the connection is
        to be closed with its ``close_code``); :meth:`read_frame_into` still reads
        the frames that follow.

    End of input:
        At a frame boundary (a message boundary for the message methods), reads
        raise :class:`EOFError`: the stream ended cleanly. In the middle of a frame
        (header or payload), or between the fragments of a message, they raise
        :class:`~blazews.exceptions.ProtocolError` with ``close_code`` 1006
        (abnormal closure).

    Errors:
        A header that breaks RFC 6455 raises :class:`~blazews.exceptions.ProtocolError`
        with ``close_code`` 1002; at the frame level the header stays unread, so
        calling again raises again. An I/O error (or the 1006 above) in the middle of
        a payload leaves part of it in the caller's buffer and the stream out of
        step: later calls raise :class:`ValueError`. An I/O error while reading a
        header loses nothing: a later call resumes (useful with socket timeouts),
        also in the middle of a fragmented message, whose bytes so far are kept.

    Args:
        source: A connected blocking socket, or a binary stream with ``readinto``
            (a file opened in ``"rb"`` mode, :class:`io.BytesIO`, ``socket.makefile("rb")``).
            The reader does not close it.
        pool: A :class:`~blazews.buffers.BufferPool` to take the internal buffer from
            (``pool.get(READ_BUFFER_SIZE)``); :meth:`close` gives it back. ``None``
            (the default) allocates it.
        max_message_size: The largest message the message methods accept, in bytes
            (1 MiB by default); ``None`` for no limit. Frames are not limited.
        on_control: Called as ``on_control(opcode, payload)`` with each ping and pong
            the message methods read (``opcode`` is :attr:`Opcode.PING` or
            :attr:`Opcode.PONG`, ``payload`` unmasked bytes). Its exceptions
            propagate; the frame is consumed, a message being read is kept.

    Raises:
        TypeError: ``source`` has neither ``recv_into`` nor ``readinto``.
        ValueError: ``max_message_size`` is negative.
    """

    def __init__(
        self,
        source: Any,
        *,
        pool: Any = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        on_control: Callable[[Opcode, bytes], Any] | None = None,
    ) -> None:
        read = getattr(source, "recv_into", None)
        if read is None:
            read = getattr(source, "readinto", None)
        if read is None:
            raise TypeError("source must be a socket or a binary stream with readinto")
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must not be negative")
        self.source = source
        self._read = read
        self._pool = pool
        buf = bytearray(READ_BUFFER_SIZE) if pool is None else pool.get(READ_BUFFER_SIZE)
        self._buf: bytearray | None = buf
        self._view: memoryview | None = memoryview(buf)
        self._data: Any = buf  # compiled: a typed view, indexed in C
        self._size = len(buf)
        self._start = 0
        self._end = 0
        # The pending header: parsed and consumed from the buffer, payload not read yet.
        self._hdr = False
        self._h_opcode = 0
        self._h_fin = False
        self._h_rsv = 0
        self._h_length = 0
        self._h_masked = False
        self._k0 = self._k1 = self._k2 = self._k3 = 0
        self._broken = False
        # Message reading.
        self._limit = -1 if max_message_size is None else int(max_message_size)
        self._max_message_size = max_message_size
        self.on_control = on_control
        self._msg_opcode = 0  # the opcode of the message being read, 0 between messages
        self._partial: bytearray | None = None  # its bytes so far, while not in a buffer
        self._utf8: Any = None
        self._error: BaseException | None = None  # fails every later message read
        self.close_rcvd: Close | None = None
        """The close frame the message methods read, or ``None``."""

    @property
    def max_message_size(self) -> int | None:
        """The largest message :meth:`read_message[_into]` accepts (``None``: no limit)."""
        return self._max_message_size

    # -- reading bytes ---------------------------------------------------------------

    def _recv(self, view: Any) -> int:
        n = self._read(view)
        if n is None:
            raise BlockingIOError("the source would block; FrameReader needs a blocking source")
        return int(n)

    def _fill(self, need: int) -> bool:
        """Buffer at least ``need`` unread bytes; return ``False`` at end of input."""
        while self._end - self._start < need:
            view = self._view
            assert view is not None
            if self._size - self._start < need:
                avail = self._end - self._start
                view[:avail] = view[self._start : self._end]
                self._start = 0
                self._end = avail
            n = self._recv(view[self._end :])
            if not n:
                return False
            self._end += n
        return True

    def _read_header(self) -> None:
        """Parse the next header into the pending header, consuming its bytes.

        Raises:
            EOFError: The input ended at a frame boundary.
            ProtocolError: A header breaking RFC 6455 (1002; left unread), or the input
                ended inside the header (1006).
        """
        if self._end - self._start < 14 and not self._fill(2):
            if self._end == self._start:
                raise EOFError("end of input")
            raise _truncated()
        data = self._data
        start = self._start
        b0 = data[start]
        b1 = data[start + 1]
        opcode = b0 & 0x0F
        masked = b1 & 0x80
        length = b1 & 0x7F
        hlen = 2
        if length == 126:
            hlen = 4
        elif length == 127:
            hlen = 10
        if masked:
            hlen += 4
        if self._end - start < hlen:
            if not self._fill(hlen):
                raise _truncated()
            data = self._data
            start = self._start  # _fill may have moved the bytes
        if length == 126:
            length = (data[start + 2] << 8) | data[start + 3]
        elif length == 127:
            length = 0
            for i in range(start + 2, start + 10):
                length = (length << 8) | data[i]
        # The rules of single frames are the core's; the order of fragments and the
        # reserved bits are checked by the message reads (_next_data_frame).
        rule = header_rule(b0, length, -1, -1)
        if rule:
            raise rule_error(rule, b0)
        if masked:
            self._k0 = data[start + hlen - 4]
            self._k1 = data[start + hlen - 3]
            self._k2 = data[start + hlen - 2]
            self._k3 = data[start + hlen - 1]
        else:
            self._k0 = self._k1 = self._k2 = self._k3 = 0
        self._start = start + hlen
        self._h_opcode = opcode
        self._h_fin = b0 & 0x80 != 0
        self._h_rsv = b0 & 0x70
        self._h_length = length
        self._h_masked = masked != 0
        self._hdr = True

    def _key(self) -> bytes:
        return bytes((self._k0, self._k1, self._k2, self._k3))

    def _payload_into(self, buf: Any, out: Any, pos: int, length: int) -> None:
        """Read the pending frame's payload, unmasked, into ``out[pos:pos+length]``.

        ``buf`` is the caller's buffer (a ``bytearray`` or a byte view) and ``out`` the
        same (compiled: a typed view of it). The pending header is consumed. An error
        in the middle of the payload leaves the reader out of step (``_broken``).
        """
        self._hdr = False
        start = self._start
        if self._end - start >= length:  # all there: the common case for small frames
            self._start = start + length
            if _COMPILED:  # the key bytes are 0 when unmasked: a plain copy
                _xor_into(
                    out, pos, self._data, start, length, self._k0, self._k1, self._k2, self._k3
                )
                return
            view = self._view
            assert view is not None
            mv = _pyview(buf)
            mv[pos : pos + length] = view[start : start + length]
        else:
            mv = _pyview(buf)
            try:
                self._read_payload(mv, pos, length)
            except BaseException:
                self._broken = True
                raise
        if self._h_masked and length:
            mask_bytes(self._key(), mv[pos : pos + length], 0)

    def _read_payload(self, out: memoryview, pos: int, length: int) -> None:
        """Copy ``length`` raw payload bytes to ``out[pos:]``, reading as needed."""
        view = self._view
        assert view is not None
        end = pos + length
        take = min(self._end - self._start, length)
        if take:
            out[pos : pos + take] = view[self._start : self._start + take]
            self._start += take
        if self._start == self._end:
            self._start = self._end = 0
        pos += take
        while pos < end:
            # The internal buffer is empty here: everything in it went to ``out``.
            missing = end - pos
            if missing >= _DIRECT:
                n = self._recv(out[pos:end])
                if not n:
                    raise _truncated()
                pos += n
            else:
                n = self._recv(view)
                if not n:
                    raise _truncated()
                take = min(n, missing)
                out[pos : pos + take] = view[:take]
                self._start = take
                self._end = n
                pos += take

    def _payload_bytes(self, length: int) -> bytes:
        """Read the pending frame's payload, unmasked, as bytes (control frames, messages)."""
        self._hdr = False
        start = self._start
        if self._end - start >= length:
            self._start = start + length
            view = self._view
            assert view is not None
            if self._h_masked:
                if _COMPILED:
                    k0, k1, k2, k3 = self._k0, self._k1, self._k2, self._k3
                    _xor_in_place(self._data, start, length, k0, k1, k2, k3)
                else:
                    mask_bytes(self._key(), view[start : start + length], 0)
            return view[start : start + length].tobytes()  # cheaper than bytes(view)
        if length > _GROW:
            return b"".join(self._payload_chunks(length, None))
        out = bytearray(length)
        self._payload_into(out, out, 0, length)
        return bytes(out)

    def _payload_chunks(self, length: int, out: bytearray | None) -> list[bytearray]:
        """Read the pending frame's payload, unmasked, in chunks allocated as it arrives.

        For a payload longer than ``_GROW``: each chunk is at most max(``_GROW``, the
        payload bytes before it) long and is allocated only once the bytes before it
        were received, so that memory follows the bytes received, not the length the
        header claims (there may be no limit). Each chunk is appended to ``out`` as
        soon as it is read (and an empty list returned), or else returned in a list
        (``b"".join`` makes the payload with one copy). An error in the middle of
        the payload leaves the reader out of step (``_broken``).
        """
        self._hdr = False
        chunks = []
        done = 0
        try:
            while done < length:
                step = min(length - done, max(_GROW, done))
                chunk = bytearray(step)
                self._read_payload(memoryview(chunk), 0, step)
                if self._h_masked:
                    mask_bytes(self._key(), chunk, done)
                if out is None:
                    chunks.append(chunk)
                else:
                    out += chunk
                done += step
        except BaseException:
            self._broken = True
            raise
        return chunks

    def _check(self) -> None:
        if self._view is None:
            raise ValueError("I/O operation on a closed frame reader")
        if self._broken:
            raise ValueError("frame reader out of step after an error in the middle of a frame")

    # -- frames ----------------------------------------------------------------------

    def read_frame_into(self, buf: Any) -> tuple[Frame, int]:
        """Read the next frame; unmask its payload into ``buf``.

        Args:
            buf: Any writable, contiguous buffer (bytearray, memoryview, numpy
                array...); the payload goes to its first bytes.

        Returns:
            The frame (opcode, fin, rsv bits, length) and the payload length.

        Raises:
            BufferTooSmall: ``buf`` is smaller than the payload; the frame stays
                pending and the next call, with a larger buffer, gets it.
            EOFError: The input ended at a frame boundary.
            ProtocolError: The header breaks RFC 6455 (``close_code`` 1002), or the
                input ended in the middle of a frame (``close_code`` 1006).
            TypeError: ``buf`` is read-only or not contiguous.
            ValueError: The reader is closed, or out of step after an error in the
                middle of a payload.
        """
        self._check()
        if type(buf) is not bytearray:
            buf = _byte_view(buf)
        out = buf
        if not self._hdr:
            self._read_header()
        length = self._h_length
        if length > len(buf):
            raise BufferTooSmall(length, len(buf))
        frame = Frame.__new__(Frame)
        frame.opcode = _OPCODES[self._h_opcode]
        frame.fin = self._h_fin
        frame.length = length
        rsv = self._h_rsv
        frame.rsv1 = rsv & 0x40 != 0
        frame.rsv2 = rsv & 0x20 != 0
        frame.rsv3 = rsv & 0x10 != 0
        self._payload_into(buf, out, 0, length)
        return frame, length

    # -- messages --------------------------------------------------------------------

    def _fail(self, error: BaseException) -> BaseException:
        """Make ``error`` the reader's message-level error: every later read raises it."""
        self._error = error
        self._msg_opcode = 0
        self._partial = None
        return error

    def _next_data_frame(self, size: int) -> None:
        """Read headers until a data frame of the message is pending, and check it.

        The one way the message reads take a frame: every call checks the pending
        header (RSV bits, frame order, control opcodes, ``max_message_size``) against
        the message as it is now, whoever read that header: this call, an earlier
        message read that raised ``BufferTooSmall`` (the message has not changed since:
        checking again is harmless), or :meth:`read_frame_into` (which checks none of
        this). So a message read never assumes a pending header was checked.

        Control frames on the way are read whole: pings and pongs go to
        :attr:`on_control` (or are skipped), a close frame ends the reading. ``size``
        is the length of the message so far.
        """
        while True:
            if not self._hdr:
                try:
                    self._read_header()
                except EOFError:
                    if self._msg_opcode:
                        raise self._fail(
                            ProtocolError("input ended in the middle of a message", 1006)
                        ) from None
                    raise
                except ProtocolError as exc:
                    raise self._fail(exc) from None
            opcode = self._h_opcode
            b0 = opcode | self._h_rsv | (0x80 if self._h_fin else 0)
            rule = header_rule(b0, 0, 0, self._msg_opcode)
            if rule:
                raise self._fail(rule_error(rule, b0))
            if opcode & 0x8:
                payload = self._payload_bytes(self._h_length)
                if opcode == 0x8:
                    self._closed(payload)
                elif self.on_control is not None:
                    self.on_control(_OPCODES[opcode], payload)
                continue
            limit = self._limit
            if limit >= 0 and self._h_length > limit - size:
                raise self._fail(
                    MessageTooBig(f"message larger than max_message_size ({limit} bytes)")
                )
            return

    def _closed(self, payload: bytes) -> None:
        """A close frame arrived: fail every later message read with ConnectionClosed."""
        try:
            close = Close.parse(payload)
        except ProtocolError as exc:
            raise self._fail(exc) from None
        self.close_rcvd = close
        if close.code in OK_CLOSE_CODES:
            error: BaseException = ConnectionClosedOK(close, None)
        else:
            error = ConnectionClosedError(close, None)
        raise self._fail(error)

    def _start_message(self) -> None:
        opcode = self._h_opcode
        self._msg_opcode = opcode
        if opcode == 0x1:
            if self._utf8 is None:
                self._utf8 = Utf8Validator()
            else:
                self._utf8.reset()

    def _check_text(self, chunk: Any, fin: bool) -> None:
        """Validate the next chunk of a text message (the whole of it if ``fin``)."""
        utf8 = self._utf8
        if not utf8.feed(chunk) or (fin and not utf8.finish()):
            raise self._fail(ProtocolError("invalid UTF-8 in a text message", 1007))

    def read_message_into(self, buf: Any) -> tuple[MessageType, int]:
        """Read the next message; unmask its payload straight into ``buf``.

        No payload-sized object is allocated: the frames' payloads are unmasked from
        the internal buffer (or read, when large) into ``buf``, one after the other.

        Args:
            buf: Any writable, contiguous buffer (bytearray, memoryview, numpy
                array...); the message goes to its first bytes.

        Returns:
            The message type and the message length.

        Raises:
            BufferTooSmall: The message does not fit in ``buf``. Nothing is lost:
                call again with a larger buffer. In a message of one frame, the
                frame stays pending and ``needed`` is the message size. In a
                fragmented message, the fragments read so far are kept by the reader
                (copied out of ``buf``) with the frame that did not fit, and
                ``needed`` is their size plus that frame's: a lower bound, as more
                fragments may follow. Control frames before it were consumed. That
                frame has passed the message checks: a resumed message whose
                fragments alone overflow ``buf`` reads and checks its next frame
                before raising, so ``needed`` never counts a frame to be refused.
            EOFError: The input ended at a message boundary.
            ProtocolError: See the class description (1002, 1006, 1007;
                :class:`~blazews.exceptions.MessageTooBig` for 1009).
            ConnectionClosedOK: A close frame arrived with 1000, 1001 or no code.
            ConnectionClosedError: A close frame arrived with another code.
            TypeError: ``buf`` is read-only or not contiguous.
            ValueError: The reader is closed, or out of step after an error in the
                middle of a payload.

        Warning:
            After an exception other than ``BufferTooSmall``, the first bytes of
            ``buf`` may hold part of a message: only the returned length is
            meaningful.
        """
        self._check()
        if self._error is not None:
            raise self._error
        if type(buf) is not bytearray:
            buf = _byte_view(buf)
        out = buf
        cap = len(buf)
        # Resuming a message: its bytes so far stay in ``partial`` until the next
        # frame, checked like any other, fits in ``buf`` after them.
        partial = self._partial
        pos = 0 if partial is None else len(partial)
        try:
            while True:
                self._next_data_frame(pos)
                length = self._h_length
                if length > cap - pos:
                    if partial is None and self._msg_opcode:
                        self._partial = bytearray(_pyview(buf)[:pos])
                    raise BufferTooSmall(pos + length, cap)
                if partial is not None:
                    _pyview(buf)[:pos] = partial
                    self._partial = partial = None
                if not self._msg_opcode:
                    self._start_message()
                fin = self._h_fin
                self._payload_into(buf, out, pos, length)
                if self._msg_opcode == 0x1:
                    self._check_text(_pyview(buf)[pos : pos + length], fin)
                pos += length
                if fin:
                    kind = self._msg_opcode
                    self._msg_opcode = 0
                    return _TYPES[kind], pos
        except BufferTooSmall:
            raise
        except BaseException:
            # A resumable error (a timeout while reading a header): keep what was read
            # (still in ``self._partial`` if it was not copied to ``buf`` yet).
            if partial is None and self._msg_opcode and self._error is None and not self._broken:
                self._partial = bytearray(_pyview(buf)[:pos])
            raise

    def read_message(self) -> tuple[MessageType, bytes]:
        """Read the next message and return its payload as bytes.

        A message of one frame is unmasked in the internal buffer and copied once,
        into the returned bytes; a fragmented one is joined in a bytearray of the
        reader's, then copied into the returned bytes. A frame longer than 1 MiB is
        read in chunks, each allocated once the bytes before it arrived (a chunk is at
        most as long as them, or 1 MiB): memory follows the bytes received, not the
        length a header claims, also with ``max_message_size=None``.

        Returns:
            The message type and the payload (UTF-8 bytes for a text message: decode
            them for a ``str``).

        Raises:
            EOFError: The input ended at a message boundary.
            ProtocolError: See the class description (1002, 1006, 1007;
                :class:`~blazews.exceptions.MessageTooBig` for 1009).
            ConnectionClosedOK: A close frame arrived with 1000, 1001 or no code.
            ConnectionClosedError: A close frame arrived with another code.
            ValueError: The reader is closed, or out of step after an error in the
                middle of a payload.
        """
        self._check()
        if self._error is not None:
            raise self._error
        partial = self._partial  # a message being resumed, or None
        pos = 0 if partial is None else len(partial)
        while True:
            self._next_data_frame(pos)
            fin = self._h_fin
            if partial is None:  # the message's first frame
                if fin:  # a message in one frame: no assembly
                    opcode = self._h_opcode
                    payload = self._payload_bytes(self._h_length)
                    if opcode == 0x1 and not validate_utf8(payload):
                        raise self._fail(ProtocolError("invalid UTF-8 in a text message", 1007))
                    return _TYPES[opcode], payload
                self._start_message()
                partial = self._partial = bytearray()
            length = self._h_length
            if length > _GROW:
                self._payload_chunks(length, partial)
            else:
                partial.extend(bytes(length))
                self._payload_into(partial, partial, pos, length)
            if self._msg_opcode == 0x1:
                self._check_text(memoryview(partial)[pos:], fin)
            if fin:
                kind = self._msg_opcode
                self._msg_opcode = 0
                self._partial = None
                return _TYPES[kind], bytes(partial)
            pos = len(partial)

    # -- lifetime --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._view is None

    def close(self) -> None:
        """Release the internal buffer; later reads raise :class:`ValueError`.

        A buffer taken from ``pool`` goes back to it. The source is left open.
        Calling it again does nothing.
        """
        buf = self._buf
        if self._view is not None:
            self._view.release()
        self._view = None
        self._data = None
        self._buf = None
        self._hdr = False
        self._partial = None
        if buf is not None and self._pool is not None:
            self._pool.put(buf)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
