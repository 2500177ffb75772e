"""The sending half of the protocol core: frames out, masking keys, the closing frame.

:class:`Writer` is the base of :class:`~blazews.sansio.protocol.Protocol`, which adds
the receiving half; it is not used alone. Like the rest of the core it is written
once: plain Python, and the source of the extension ``_sending_c`` that Cython
compiles with the C types of ``_sending_c.pxd`` (the compiled core cimports them).
Nothing here does I/O: :meth:`Writer.data_to_send` hands the front end what to write.
"""

from __future__ import annotations

import os
from typing import Any

from .._impl import encode_frame, frame_header
from ..exceptions import ConnectionClosed, ProtocolError, _closed
from .extensions import Extension
from .frames import COALESCE_MAX, Close, MaskLater
from .states import Side, State

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

if cython.compiled:  # the kernels' C functions
    from cython.cimports.blazews._native._kernels import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        frame_of,
        view_nbytes,
    )
    from cython.cimports.cpython.buffer import PyBuffer_IsContiguous  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.memoryview import PyMemoryView_GET_BUFFER  # type: ignore[import-untyped, import-not-found, unused-ignore]

__all__ = ["Writer"]

# Bytes of masking keys drawn from os.urandom at once (256 keys).
_KEY_BATCH = 1024

# The states as module constants (a global is cheaper than an enum attribute).
_OPEN = State.OPEN
_CLOSING = State.CLOSING

# A server frame whose payload is at most this long is sent as one object, the
# payload copied behind the header; a longer one is sent as header + payload.
_COALESCE = COALESCE_MAX


class Writer:
    """What a connection sends: the ``send_*`` verbs, ``send_close`` and the frames.

    The base of :class:`~blazews.sansio.protocol.Protocol`, which documents the
    attributes; it is not used alone.
    """

    def __init__(self, side: Side, state: State) -> None:
        self.side = side
        self.state = state
        self.extensions: list[Extension] = []
        self.close_rcvd: Close | None = None
        self.close_sent: Close | None = None
        self.close_rcvd_then_sent: bool | None = None
        self.protocol_error: ProtocolError | None = None
        self.mask_later = 0
        self._out: list[Any] = []
        self._is_client = side is Side.CLIENT
        self._key_batch = b""  # masking keys (client): os.urandom, 256 keys at a time
        self._key_pos = 0

    def data_to_send(self) -> list[Any]:
        """Return what to write since the last call, in order: bytes-like objects,
        and :class:`MaskLater` frames once ``mask_later`` is set."""
        out = self._out
        if out:
            self._out = []
        return out

    def holds_output(self) -> bool:
        """Whether frames are queued that :meth:`data_to_send` has not handed out yet
        (a front end may then write a prepared frame directly only after them)."""
        return len(self._out) != 0

    def _check_open(self) -> None:
        if self.state is not _OPEN:
            raise self.close_exc()

    def send_data(self, data: Any, fin: bool = True, *, compress: bool = True) -> None:
        """Queue a data message: ``str`` as text, any bytes-like object as binary.

        ``compress=False`` sends this message uncompressed even when
        permessage-deflate is in use.
        """
        if isinstance(data, str):
            self.send_frame(0x1, data.encode(), fin, compress=compress)
        else:
            self.send_frame(0x2, data, fin, compress=compress)

    def send_text(self, data: Any, fin: bool = True, *, compress: bool = True) -> None:
        """Queue a text frame; ``data`` is UTF-8 bytes (not checked) or ``str``."""
        if isinstance(data, str):
            data = data.encode()
        self.send_frame(0x1, data, fin, compress=compress)

    def send_binary(self, data: Any, fin: bool = True, *, compress: bool = True) -> None:
        """Queue a binary frame."""
        self.send_frame(0x2, data, fin, compress=compress)

    def send_continuation(self, data: Any, fin: bool) -> None:
        """Queue a continuation frame of a fragmented message."""
        self.send_frame(0x0, data, fin)

    def send_frame(
        self, opcode: int, data: Any, fin: bool = True, *, compress: bool = True
    ) -> None:
        """Queue one data frame (``opcode`` 0, 1 or 2).

        Args:
            compress: Whether extensions may compress the message; only the first
                frame of a message decides.

        Raises:
            ConnectionClosed: The connection is not open.
        """
        if self.state is not _OPEN:
            raise self.close_exc()
        if type(data) is memoryview and not (
            PyBuffer_IsContiguous(PyMemoryView_GET_BUFFER(data), b"C")
            if cython.compiled
            else data.c_contiguous
        ):
            data = data.tobytes()  # strided: one piece, as frames and transports need
        rsv = 0
        if self.extensions:
            for ext in self.extensions:
                bits, data = ext.encode(opcode, fin, data, compress)
                rsv |= bits
        self._write_frame((0x80 if fin else 0) | rsv | opcode, data)

    def send_prepared(self, frame: Any) -> None:
        """Queue a whole data frame built beforehand, for a server connection.

        For :class:`~blazews.sansio.broadcast.PreparedMessage`, which builds a
        message's frame once for every connection that would encode it the same
        way (a server's frames are unmasked, so their bytes do not depend on the
        connection). The frame goes out as it is: the caller vouches that this
        connection would have built the same bytes (same extensions' output).

        Raises:
            ConnectionClosed: The connection is not open.
            ValueError: This is a client connection (its frames are masked).
        """
        if self.state is not _OPEN:
            raise self.close_exc()
        if self._is_client:
            raise ValueError("a prepared frame is unmasked: only a server may send one")
        self._out.append(frame)

    def send_ping(self, data: Any = b"") -> None:
        """Queue a ping (payload at most 125 bytes)."""
        self._check_open()
        self._send_control(0x9, data)

    def send_pong(self, data: Any = b"") -> None:
        """Queue an unsolicited pong (payload at most 125 bytes)."""
        self._check_open()
        self._send_control(0xA, data)

    def _send_control(self, opcode: int, data: Any) -> None:
        if isinstance(data, str):
            data = data.encode()
        if len(data) > 125:
            raise ValueError("control frame payload must be at most 125 bytes")
        self._write_frame(0x80 | opcode, data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake.

        Args:
            code: A close code that may be sent: 1000-1003, 1007-1014 or 3000-4999.
            reason: At most 123 bytes once encoded as UTF-8.

        Raises:
            ValueError: The code may not be sent, or the reason is too long.
            ConnectionClosed: The connection is not open.
        """
        close = Close.to_send(code, reason)
        self._check_open()
        self._send_close_frame(close)
        self.close_rcvd_then_sent = False
        self.state = _CLOSING

    def _send_close_frame(self, close: Close) -> None:
        self.close_sent = close
        self._write_frame(0x88, close.serialize())

    def _write_frame(self, first: int, data: Any) -> None:
        # Header and payload in one object (encode_frame), but a server's payload over
        # _COALESCE bytes: sent as itself beside its header (writelines / sendmsg).
        t = type(data)
        if cython.compiled and t is memoryview:
            n = view_nbytes(data)  # (a C call: no attribute lookup)
        else:
            n = len(data) if t is bytes else (data if t is memoryview else memoryview(data)).nbytes
        key = -1  # where the masking key is in _key_batch (a client)
        if self._is_client:
            # RFC 6455 §5.3: keys a peer cannot predict. One os.urandom call per
            # frame would be a system call each; a batch of 256 keys is one.
            key = self._key_pos
            if key >= len(self._key_batch):
                self._key_batch = os.urandom(_KEY_BATCH)
                key = 0
            self._key_pos = key + 4
            if self.mask_later and n >= self.mask_later:
                self._out.append(MaskLater(first, data, self._key_batch[key : key + 4]))
                return
        elif n > _COALESCE:
            self._out.append(frame_header(first, n, None))
            self._out.append(data)
            return
        if cython.compiled:  # the kernels' C function: no Python call, no key object
            self._out.append(frame_of(first, data, None if key < 0 else self._key_batch, key))
        else:
            mask = None if key < 0 else self._key_batch[key : key + 4]
            self._out.append(encode_frame(first, data, mask))

    def close_exc(self) -> ConnectionClosed:
        """Return the exception to raise once the connection is closed or closing."""
        rcvd, sent = self.close_rcvd, self.close_sent
        return _closed(rcvd, sent, self.close_rcvd_then_sent, self.protocol_error)

    def _write(self, data: bytes) -> None:
        """Queue bytes as they are: the handshake's request or response."""
        self._out.append(data)
