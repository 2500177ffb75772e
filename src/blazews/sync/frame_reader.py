"""Low-level frame reading over a blocking socket or a binary stream.

:class:`FrameReader` reads one frame at a time, no handshake and no message
assembly, and unmasks each payload straight into the caller's buffer. It is the
tool for a raw frame stream (a capture, a proxy, a benchmark), not for a
WebSocket connection: :func:`blazews.sync.connect` and :func:`blazews.sync.serve`
handle those, through the sans-I/O core.

Its header checks mirror the core's frame parser (:mod:`blazews.sansio.protocol`),
the checks that need no connection state: a 64-bit length with its top bit set,
reserved opcodes, control frames that are fragmented or longer than 125 bytes. It
does not check what depends on the connection: masking direction, RSV bits (it
reports them; extensions are not negotiated here), continuation order, UTF-8.
"""

from __future__ import annotations

import struct
from types import TracebackType
from typing import Any

from .._impl import mask_bytes
from ..exceptions import BufferTooSmall, ProtocolError
from ..sansio.frames import Frame

__all__ = ["FrameReader"]

READ_BUFFER_SIZE = 16384
"""Size of a reader's internal buffer, in bytes."""

_DIRECT = 4096  # payload bytes still missing beyond which reads go to the caller's buffer

_U16 = struct.Struct("!H").unpack_from
_U64 = struct.Struct("!Q").unpack_from


class FrameReader:
    """Read WebSocket frames from a blocking socket (``recv_into``) or a binary
    stream (``readinto``).

    Small reads go through an internal 16 KiB buffer; a large payload is read
    straight into the caller's buffer, then unmasked in place.

    End of input:
        At a frame boundary, :meth:`read_frame_into` raises :class:`EOFError`: the
        stream ended cleanly. In the middle of a frame (header or payload) it raises
        :class:`~blazews.exceptions.ProtocolError` with ``close_code`` 1006
        (abnormal closure).

    Errors:
        A header that breaks RFC 6455 raises :class:`~blazews.exceptions.ProtocolError`
        with ``close_code`` 1002; the header stays unread, so calling again raises
        again. An I/O error (or the 1006 above) in the middle of a payload leaves
        part of it in the caller's buffer and the stream out of step: later calls
        raise :class:`ValueError`. An I/O error while reading a header loses
        nothing: a later call resumes (useful with socket timeouts).

    Args:
        source: A connected blocking socket, or a binary stream with ``readinto``
            (a file opened in ``"rb"`` mode, :class:`io.BytesIO`, ``socket.makefile("rb")``).
            The reader does not close it.
        pool: Reserved for a buffer pool (a later release takes the internal buffer
            from it and gives it back on :meth:`close`); ignored for now.

    Raises:
        TypeError: ``source`` has neither ``recv_into`` nor ``readinto``.
    """

    def __init__(self, source: Any, *, pool: Any = None) -> None:
        read = getattr(source, "recv_into", None)
        if read is None:
            read = getattr(source, "readinto", None)
        if read is None:
            raise TypeError("source must be a socket or a binary stream with readinto")
        self.source = source
        self._read = read
        self._pool = pool
        self._buf: bytearray | None = bytearray(READ_BUFFER_SIZE)
        self._view: memoryview | None = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._pending: tuple[Frame, bytes | None] | None = None
        self._broken = False

    # -- reading ---------------------------------------------------------------------

    def _recv(self, view: memoryview) -> int:
        n = self._read(view)
        if n is None:
            raise BlockingIOError("the source would block; FrameReader needs a blocking source")
        return int(n)

    def _fill(self, view: memoryview, need: int) -> bool:
        """Buffer at least ``need`` unread bytes; return ``False`` at end of input."""
        while self._end - self._start < need:
            if len(view) - self._start < need:
                avail = self._end - self._start
                view[:avail] = view[self._start : self._end]
                self._start, self._end = 0, avail
            n = self._recv(view[self._end :])
            if not n:
                return False
            self._end += n
        return True

    @staticmethod
    def _truncated() -> ProtocolError:
        return ProtocolError("input ended in the middle of a frame", 1006)

    def _read_header(self, view: memoryview) -> tuple[Frame, bytes | None]:
        if not self._fill(view, 2):
            if self._end == self._start:
                raise EOFError("end of input")
            raise self._truncated()
        start = self._start
        b0 = view[start]
        b1 = view[start + 1]
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        masked = b1 & 0x80
        length = b1 & 0x7F
        hlen = 2
        if length == 126:
            hlen = 4
        elif length == 127:
            hlen = 10
        if masked:
            hlen += 4
        if not self._fill(view, hlen):
            raise self._truncated()
        start = self._start  # _fill may have moved the bytes
        if length == 126:
            length = _U16(view, start + 2)[0]
        elif length == 127:
            length = _U64(view, start + 2)[0]
            if length >> 63:
                raise ProtocolError("64-bit payload length with the top bit set")
        if opcode & 0x8:
            if opcode > 0xA:
                raise ProtocolError(f"reserved opcode {opcode:#x}")
            if not fin:
                raise ProtocolError("fragmented control frame")
            if length > 125:
                raise ProtocolError("control frame payload longer than 125 bytes")
        elif opcode > 0x2:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        key = bytes(view[start + hlen - 4 : start + hlen]) if masked else None
        self._start = start + hlen
        frame = Frame(opcode, fin, length, bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10))
        return frame, key

    def _read_payload(self, view: memoryview, out: memoryview, length: int) -> None:
        take = min(self._end - self._start, length)
        if take:
            out[:take] = view[self._start : self._start + take]
            self._start += take
        if self._start == self._end:
            self._start = self._end = 0
        pos = take
        while pos < length:
            # The internal buffer is empty here: everything in it went to ``out``.
            missing = length - pos
            if missing >= _DIRECT:
                n = self._recv(out[pos:length])
                if not n:
                    raise self._truncated()
                pos += n
            else:
                n = self._recv(view)
                if not n:
                    raise self._truncated()
                take = min(n, missing)
                out[pos : pos + take] = view[:take]
                self._start, self._end = take, n
                pos += take

    def read_frame_into(self, buf: Any) -> tuple[Frame, int]:
        """Read the next frame; unmask its payload into ``buf``.

        Args:
            buf: Any writable buffer (bytearray, memoryview, numpy array...); the
                payload goes to its first bytes.

        Returns:
            The frame (opcode, fin, rsv bits, length) and the payload length.

        Raises:
            BufferTooSmall: ``buf`` is smaller than the payload; the frame stays
                pending and the next call, with a larger buffer, gets it.
            EOFError: The input ended at a frame boundary.
            ProtocolError: The header breaks RFC 6455 (``close_code`` 1002), or the
                input ended in the middle of a frame (``close_code`` 1006).
            ValueError: The reader is closed, or out of step after an error in the
                middle of a payload.
        """
        view = self._view
        if view is None:
            raise ValueError("I/O operation on a closed frame reader")
        if self._broken:
            raise ValueError("frame reader out of step after an error in the middle of a frame")
        out = memoryview(buf)
        if out.readonly:
            raise TypeError("read_frame_into needs a writable buffer")
        if out.format != "B" or out.ndim != 1:
            out = out.cast("B")
        if self._pending is None:
            self._pending = self._read_header(view)
        frame, key = self._pending
        length = frame.length
        if length > len(out):
            raise BufferTooSmall(length, len(out))
        self._pending = None
        try:
            self._read_payload(view, out, length)
        except BaseException:
            self._broken = True
            raise
        if key is not None and length:
            mask_bytes(key, out[:length], 0)
        return frame, length

    # -- lifetime --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._buf is None

    def close(self) -> None:
        """Release the internal buffer; later reads raise :class:`ValueError`.

        The source is left open. Calling it again does nothing.
        """
        self._view = None
        self._buf = None
        self._pending = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
