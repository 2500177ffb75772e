"""The WebSocket protocol state machine shared by both roles (RFC 6455 §5-§7).

This file is the one source of the hot path: it runs as plain Python, and Cython
compiles it, as the module ``blazews.sansio._protocol_c`` typed by the augmenting
``_protocol_c.pxd``, into that extension. ``protocol.py`` picks one.
The events it produces (and the compiled message sink) are in ``_events_py.py``, built
the same way; compiled, this module cimports their C types.

Four verbs drive it: :meth:`Protocol.receive_data` and :meth:`Protocol.receive_eof`
feed it what arrived, :meth:`Protocol.events_received` returns what the application
should see, :meth:`Protocol.data_to_send` returns what to write. ``send_*``, ``fail``
and ``send_close`` queue frames. Nothing here does I/O or keeps time: front ends own
the sockets and the timers.

A peer's protocol error never raises out of ``receive_data``: the connection fails
with the error's close code, the error is kept in :attr:`Protocol.protocol_error`,
and from then on nothing is parsed or buffered.

:meth:`Protocol.receive_into_buffer` is ``receive_data`` for front ends that read into
a buffer they own: frames are parsed and unmasked where they lie.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

from .._impl import (
    Utf8Validator,
    encode_frame,
    frame_header,
    frame_payload,
    mask_bytes,
    validate_utf8,
)
from ..exceptions import ConnectionClosed, MessageTooBig, ProtocolError, _closed
from .extensions import Extension
from .frames import (
    COALESCE_MAX,
    DEFAULT_MAX_MESSAGE_SIZE,
    FRAGMENT_OVERHEAD,
    Close,
    MaskLater,
    fit_close_reason,
    is_valid_close_code,
)
from .states import Side, State

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

if not cython.compiled:  # compiled, the .pxd cimports them from _events_c
    from ._events_py import Message, MessageCallback, Ping, Pong
else:  # the kernels' C functions (some called with pointers into the buffer)
    from cython.cimports.blazews._native._kernels import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        byte_view,
        frame_of,
        mask_inplace,
        sub_view,
        view_nbytes,
    )
    from cython.cimports.cpython.buffer import PyBuffer_IsContiguous  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.bytes import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        _PyBytes_Resize,
    )
    from cython.cimports.cpython.memoryview import PyMemoryView_GET_BUFFER  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.object import PyObject  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.ref import Py_DECREF, Py_INCREF  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.libc.string import memcpy  # type: ignore[import-untyped, import-not-found, unused-ignore]

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "FRAGMENT_OVERHEAD", "Protocol"]

_U64 = struct.Struct("!Q").unpack_from


# Whether Cython compiled this module (for tests; the code tests cython.compiled, a
# constant to Cython, which drops the branches it rules out).
_COMPILED = cython.compiled

# Bytes of masking keys drawn from os.urandom at once (256 keys).
_KEY_BATCH = 1024

# The states as module constants: an enum attribute lookup costs ~60 ns, a global
# ~10 ns, and the hot paths test the state on every call.
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

# A server frame whose payload is at most this long is sent as one object, the
# payload copied behind the header; a longer one is sent as header + payload.
_COALESCE = COALESCE_MAX

# A message's first fragment up to this size gets an assembly buffer with room for
# three more like it; a larger one gets a buffer of its size.
_ASM_FIRST = 4096

# How _parse may treat its input: copy payloads out of a read-only buffer, unmask them
# in place in a writable one, or also lend them as views of it.
_COPY = 0
_IN_PLACE = 1
_BORROW = 2


class Protocol:
    """The frame-level protocol of one connection, without the handshake.

    Args:
        side: :attr:`Side.CLIENT` masks what it sends and expects unmasked frames;
            :attr:`Side.SERVER` the reverse.
        state: The initial state (``OPEN`` when the handshake happened elsewhere).
        max_message_size: Largest received message, in bytes, or ``None`` for no
            limit. A larger one fails the connection with 1009.
        extensions: The negotiated extensions, in the order of the handshake.

    Attributes:
        message_sink: ``None``, or a callable ``sink(type, payload)`` that receives
            each complete data message as soon as it is parsed, in place of a
            :class:`Message` event, whenever no other event is waiting in
            :meth:`events_received` (so the order of events is kept). It runs inside
            ``receive_data`` / ``receive_into_buffer``: it may queue frames
            (``send_*``, ``send_close``) but must not feed data, and must not raise.
            A borrowed payload is valid only during the call. For front ends that
            hand messages straight to callbacks: no event object per message.
        mask_later: 0, or the payload size from which a client frame comes out of
            :meth:`data_to_send` as a :class:`~blazews.sansio.frames.MaskLater`, for
            the front end to mask on its way out, instead of as bytes.
    """

    def __init__(
        self,
        side: Side,
        *,
        state: State = State.OPEN,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        extensions: Sequence[Extension] = (),
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 or None")
        self.side = side
        self.state = state
        self.max_message_size = max_message_size
        self.close_rcvd: Close | None = None
        self.close_sent: Close | None = None
        self.close_rcvd_then_sent: bool | None = None
        self.protocol_error: ProtocolError | None = None
        self.eof_rcvd = False
        self.incomplete_frame_size = 0
        self._events: list[Any] = []
        self.message_sink: Callable[[int, Any], None] | None = None
        self.mask_later = 0
        self._lend = False  # whether _parse lends payloads as views of its buffer
        self._out: list[Any] = []
        self._buf = bytearray()
        self._discard = False
        self._want_eof = False
        self._is_client = side is Side.CLIENT
        self._key_batch = b""  # masking keys (client): os.urandom, 256 keys at a time
        self._key_pos = 0
        self._set_extensions(extensions)
        # The message being assembled: its opcode (0 when none), the object its
        # fragments are copied into (None until one has bytes; see _assemble) and
        # how much of it they fill, and its charge against the limits.
        self._msg_opcode = 0
        self._asm: Any = None
        self._asm_n = 0
        self._msg_size = 0
        self._msg_frags = 0
        self._utf8 = Utf8Validator()

    def _set_extensions(self, extensions: Sequence[Extension]) -> None:
        self.extensions = list(extensions)
        self._rsv_allowed = 0
        for ext in self.extensions:
            self._rsv_allowed |= ext.rsv_bits

    # -- the four verbs ------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the network.

        Never raises for anything the peer sent: a protocol error fails the
        connection (see :attr:`protocol_error`).
        """
        if self._discard or not data:
            return
        if type(data) is not bytes and type(data) is not bytearray:
            view = data if type(data) is memoryview else memoryview(data)
            if view.itemsize != 1 or not view.c_contiguous:
                data = view.tobytes()  # (parsed as bytes, by offset)
        if self.state is _CONNECTING:
            data = self._receive_handshake(data)
            if not data or self.state is not _OPEN:
                return
        buf = self._buf
        if buf:
            buf += data
            pos = self._parse(buf, 0, len(buf), _COPY)
            if self._discard:
                buf.clear()  # (a failure inside _parse only rebinds self._buf)
            elif pos:
                del buf[:pos]
        else:
            pos = self._parse(data, 0, len(data), _COPY)
            if not self._discard and pos < len(data):
                buf += memoryview(data)[pos:]

    def receive_into_buffer(
        self, buf: bytearray | memoryview, start: int, end: int, borrow: bool = False
    ) -> int:
        """Parse the frames in ``buf[start:end]`` where they lie; return the bytes used.

        The buffer-oriented twin of :meth:`receive_data`, for a front end that reads
        into a buffer it owns (``asyncio.BufferedProtocol``, ``socket.recv_into``).
        Masked payloads may be unmasked in place (borrowed ones always are); nothing
        outside ``buf[start:end]`` is read or written. The bytes not used, at the end,
        begin an incomplete frame: the caller passes them again, followed by what
        arrives next (moved within ``buf`` or to another buffer, as it likes), and
        :attr:`incomplete_frame_size` tells how large that frame is. Events and output
        are what ``receive_data`` would give for the same bytes; the two may be mixed.

        Args:
            buf: A writable, contiguous buffer of bytes: a ``bytearray``, or a
                ``memoryview`` of all of one that the caller keeps (no view made per call).
            start: Where the unparsed bytes begin.
            end: Where they end.
            borrow: Make the payload of each message that arrived in a single frame a
                ``memoryview`` of ``buf`` instead of ``bytes``: no copy at all. Only
                without extensions; fragmented messages, pings and pongs are ``bytes``.
                With a :attr:`message_sink`, only payloads handed to the sink are
                lent; a message that waits as an event (behind another event) is
                ``bytes``. :meth:`stop_lending` ends lending for the rest of the call.

        Returns:
            How many bytes, from ``start``, were used (parsed, or kept by the
            protocol); ``end - start`` when nothing is left for the caller to keep.

        Raises:
            TypeError: ``buf`` is read-only, not contiguous, or not of bytes.
            ValueError: ``start`` or ``end`` lies outside ``buf``.

        Warning:
            A borrowed payload is the caller's buffer itself: it is valid only until
            the caller changes those bytes (compacts, refills or pools the buffer),
            normally right after handling the events of this call. ``bytes(payload)``
            keeps a copy. While any borrowed view lives, a ``bytearray`` cannot be
            resized and a :class:`~blazews.buffers.BufferPool` refuses it back.
        """
        t: Any = type(buf)
        if t is not bytearray and not (cython.compiled and t is memoryview and byte_view(buf)):
            view = memoryview(buf)
            if view.readonly or view.itemsize != 1 or not view.c_contiguous:
                view.release()  # (a traceback would keep it, and buf exported)
                raise TypeError("receive_into_buffer needs a writable, contiguous buffer")
            # Flat bytes, as _parse reads them (compiled, through a pointer).
            buf = view if view.ndim == 1 and view.format == "B" else view.cast("B")
        if start < 0 or end > len(buf):
            raise ValueError("start and end must lie within the buffer")
        if self._discard or start >= end:
            return end - start
        first = start
        if self.state is _CONNECTING:
            # The handshake parser copies what it needs; frames after the response, in
            # the same read, stay in buf and are parsed in place below.
            rest = self._receive_handshake(memoryview(buf)[start:end])
            if not rest or self.state is not _OPEN:
                return end - start
            start = end - len(rest)
        held = self._buf
        if held:
            # An incomplete frame received through receive_data (data sent early, before
            # the handshake ended): complete it in the protocol's own buffer, then hand
            # whatever incomplete frame follows it back to the caller.
            before = len(held)
            held += memoryview(buf)[start:end]
            pos = self._parse(held, 0, len(held), _COPY)
            if self._discard or pos == 0:
                return end - first
            self._buf = bytearray()
            return start - first + pos - before
        pos = self._parse(buf, start, end, _BORROW if borrow else _IN_PLACE)
        if self._discard:  # failed, or a close frame came: the rest is dropped
            return end - first
        return pos - first

    def receive_eof(self) -> None:
        """Tell the protocol the peer closed its end of the TCP connection."""
        if self.eof_rcvd:
            return
        self.eof_rcvd = True
        if self.state is _CONNECTING:
            self._handshake_eof()
        self.state = _CLOSED
        self._discard = True
        self._buf = bytearray()  # not clear(): _parse may hold a view on it
        self._drop_assembly()

    def events_received(self) -> list[Any]:
        """Return the events (messages, pings, pongs, handshake) since the last call."""
        events = self._events
        if events:
            self._events = []
        return events

    def data_to_send(self) -> list[Any]:
        """Return what to write since the last call, in order: bytes-like objects,
        and :class:`MaskLater` frames once ``mask_later`` is set."""
        out = self._out
        if out:
            self._out = []
        return out

    @property
    def receiving(self) -> bool:
        """Whether more messages may still arrive (``False`` once a close frame came,
        the connection failed or the peer closed the TCP connection)."""
        return not self._discard

    def close_transport(self) -> bool:
        """Return whether the front end should now close the TCP connection.

        The server closes it once close frames went both ways or the connection
        failed (RFC 6455 §7.1.1); so does a client that failed the connection. A
        client that closed cleanly waits for the server to close first (the front
        end bounds that wait with its close timeout).
        """
        return self._want_eof or self.state is _CLOSED

    # -- sending -------------------------------------------------------------------

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
        if not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        close = Close(code, reason)
        if len(close.serialize()) > 125:
            raise ValueError("close reason must be at most 123 bytes in UTF-8")
        self._check_open()
        self._send_close_frame(close)
        self.close_rcvd_then_sent = False
        self.state = _CLOSING

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a close frame if none was sent,
        stop parsing and buffering, and ask the front end to close the TCP connection.

        A ``reason`` longer than the 123 bytes a close frame holds is cut (on a
        character boundary) rather than producing an invalid control frame."""
        if self.state is _OPEN and self.close_sent is None:
            self._send_close_frame(Close(code, fit_close_reason(reason)))
            if self.close_rcvd is None:
                self.close_rcvd_then_sent = False
        if self.state is not _CLOSED:
            self.state = _CLOSING
        self._discard = True
        self._want_eof = True
        self._buf = bytearray()  # not clear(): _parse may hold a view on it
        self._drop_assembly()

    def _fail_with(self, error: ProtocolError) -> None:
        if self.protocol_error is None:
            self.protocol_error = error
        self.fail(error.close_code, str(error)[:120])

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

    # -- closing -------------------------------------------------------------------

    def close_exc(self) -> ConnectionClosed:
        """Return the exception to raise once the connection is closed or closing."""
        rcvd, sent = self.close_rcvd, self.close_sent
        return _closed(rcvd, sent, self.close_rcvd_then_sent, self.protocol_error)

    # -- parsing -------------------------------------------------------------------

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> bytes:
        raise NotImplementedError  # the client and server subclasses handle it

    def _handshake_eof(self) -> None:
        raise NotImplementedError

    def received_close(self, transport_closed: bool = False) -> Close | None:
        """What the peer said when closing, for a front end's ``close_code`` and
        ``close_reason``: its close frame (code 1005 if the frame had none), a
        ``Close(1006)`` once the connection ended without one (the core failed it, or
        ``transport_closed``), ``None`` while neither happened."""
        if self.close_rcvd is not None:
            return self.close_rcvd
        if transport_closed or self.state is _CLOSED:
            return Close(1006, "")
        return None

    def stop_lending(self) -> None:
        """Lend no more payloads in the ``receive_into_buffer`` call under way: from
        the next frame on they are ``bytes``. For a :attr:`message_sink` that took
        the one view it wanted."""
        self._lend = False

    def _parse(self, data: Any, pos: int, n: int, mode: int) -> int:
        """Parse every complete frame in ``data[pos:n]``; return the offset parsed up to.

        ``mode`` is ``_COPY`` (``data`` may be read-only), ``_IN_PLACE`` (``data`` is
        writable: payloads may be unmasked in it) or ``_BORROW`` (also, a single-frame
        message's payload is a view of it; see :meth:`receive_into_buffer`). Sets
        :attr:`incomplete_frame_size`.
        """
        # Payloads are sliced from it (a front end's view of its buffer: used as is).
        mv = data if type(data) is memoryview else memoryview(data)
        if cython.compiled:  # a pointer into the buffer mv holds (while mv lives)
            view = cython.cast(cython.p_uchar, PyMemoryView_GET_BUFFER(mv).buf)
        else:
            view = data
        payload: Any
        self.incomplete_frame_size = 0
        # An extension transforms the payload: it gets bytes.
        self._lend = mode == _BORROW and not self.extensions
        mask_expected = not self._is_client
        limit = -1 if self.max_message_size is None else self.max_message_size
        if limit >= 0 and self.extensions:
            # A compressed frame may be larger than what it inflates to: incompressible
            # data grows by up to ~5% with a small zlib memLevel. The exact limit is
            # enforced on the decoded payload in _data_frame; this bounds the buffer.
            limit += (limit >> 3) + 1024
        while not self._discard:
            if n - pos < 2:
                break
            b0 = view[pos]
            b1 = view[pos + 1]
            opcode = b0 & 0x0F
            rsv = b0 & 0x70
            fin = b0 & 0x80
            if rsv & ~self._rsv_allowed:
                self._fail_with(ProtocolError("reserved bits set without a negotiated extension"))
                break
            masked = b1 & 0x80
            if (masked != 0) != mask_expected:
                self._fail_with(
                    ProtocolError(
                        "unmasked frame from client"
                        if mask_expected
                        else "masked frame from server"
                    )
                )
                break
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (view[pos + 2] << 8) | view[pos + 3]
                hlen = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = _U64(data, pos + 2)[0]
                hlen = 10
                if length >> 63:
                    self._fail_with(ProtocolError("64-bit payload length with the top bit set"))
                    break
            if opcode & 0x8:
                if rsv:
                    self._fail_with(ProtocolError("reserved bits set on a control frame"))
                    break
                if opcode > 0xA:
                    self._fail_with(ProtocolError(f"reserved opcode {opcode:#x}"))
                    break
                if not fin:
                    self._fail_with(ProtocolError("fragmented control frame"))
                    break
                if length > 125:
                    self._fail_with(ProtocolError("control frame payload longer than 125 bytes"))
                    break
            else:
                if opcode > 0x2:
                    self._fail_with(ProtocolError(f"reserved opcode {opcode:#x}"))
                    break
                if opcode:
                    if self._msg_opcode:
                        self._fail_with(
                            ProtocolError("new data frame while a message is unfinished")
                        )
                        break
                elif not self._msg_opcode:
                    self._fail_with(
                        ProtocolError("continuation frame without a message to continue")
                    )
                    break
                if limit >= 0 and length > limit - self._msg_size:
                    self._fail_with(
                        MessageTooBig(
                            f"message larger than max_message_size ({self.max_message_size} bytes)"
                        )
                    )
                    break
            start = pos + hlen + (4 if masked else 0)
            if start > n or length > n - start:
                # Bounded by the message size limit, checked above; or the peer may
                # claim up to 2**63 - 1 bytes when there is none.
                self.incomplete_frame_size = (
                    start - pos + length if length < 0x4000000000000000 else 0x4000000000000000
                )
                break
            end = start + length
            if (
                self._lend
                and fin
                and opcode
                and not opcode & 0x8
                and (self.message_sink is None or not self._events)
            ):
                # Lent as a view of the buffer: unmasked where it lies.
                if masked and cython.compiled:
                    if length:  # a C call: the SIMD kernel, no Python objects
                        mask_inplace(view + start, length, view + start - 4)
                elif masked:
                    mask_bytes(mv[start - 4 : start], mv[start:end])
                # (compiled: mv[start:end] without a slice object)
                payload = sub_view(mv, start, end) if cython.compiled else mv[start:end]
            else:
                # Copied out, unmasked on the way: one call, no intermediate view.
                payload = frame_payload(data, start, end, masked != 0)
            pos = end
            if opcode & 0x8:
                self._control_frame(opcode, payload)
            else:
                self._data_frame(opcode, fin, rsv, payload)
        # Now, not when the frame goes: a traceback may keep it, and the view would keep
        # the buffer from being resized (compiled, no frame holds it). Views sliced from
        # it (borrowed payloads) stay valid.
        self._lend = False
        if not cython.compiled and mv is not data:
            mv.release()
        return pos

    def _data_frame(self, opcode: int, fin: int, rsv: int, payload: bytes) -> None:
        if self.extensions:
            limit = self.max_message_size
            room = None if limit is None else limit - self._msg_size
            try:
                for ext in reversed(self.extensions):
                    payload = ext.decode(opcode, bool(fin), rsv, payload, room)
            except ProtocolError as error:
                self._fail_with(error)
                return
            if room is not None and len(payload) > room:
                self._fail_with(
                    MessageTooBig(f"message larger than max_message_size ({limit} bytes)")
                )
                return
        if fin and opcode:
            if opcode == 0x1 and not validate_utf8(payload):
                self._fail_with(ProtocolError("invalid UTF-8 in text message", 1007))
                return
            sink = self.message_sink
            if sink is not None and not self._events:
                if type(sink) is MessageCallback:
                    callback = sink  # compiled: typed, so deliver is a C call
                    callback.deliver(opcode, payload)
                else:
                    sink(opcode, payload)
            else:
                self._events.append(Message(opcode, payload))
            return
        if opcode:
            self._msg_opcode = opcode
            self._msg_size = 0
            self._msg_frags = 0
        self._msg_size += len(payload)
        self._msg_frags += 1
        limit = self.max_message_size
        if limit is not None and self._msg_size + FRAGMENT_OVERHEAD * self._msg_frags > 2 * limit:
            self._fail_with(MessageTooBig("too many fragments for the message size limit"))
            return
        if self._msg_opcode == 0x1 and not self._utf8.feed(payload):
            self._utf8.reset()
            self._fail_with(ProtocolError("invalid UTF-8 in text message", 1007))
            return
        if len(payload):
            self._assemble(payload)
        if fin:
            if self._msg_opcode == 0x1 and not self._utf8.finish():
                self._fail_with(ProtocolError("invalid UTF-8 in text message", 1007))
                return
            data = self._assembled()
            opcode = self._msg_opcode
            self._msg_opcode = 0
            self._msg_size = 0
            self._msg_frags = 0
            sink = self.message_sink
            if sink is not None and not self._events:
                if type(sink) is MessageCallback:
                    callback = sink
                    callback.deliver(opcode, data)
                else:
                    sink(opcode, data)
            else:
                self._events.append(Message(opcode, data))

    def _assemble(self, payload: Any) -> None:
        # Copy a fragment's payload behind the previous ones. Compiled, into the bytes
        # object that becomes the message, grown by realloc (room for 4 such fragments,
        # then doubling, never past the message limit), cut to size at the end: one
        # object per message, no bytes per frame nor join. Pure, a bytearray grows and
        # is copied into bytes once.
        n = self._asm_n
        if not cython.compiled:
            if self._asm is None:
                self._asm = bytearray()
            self._asm += payload
            self._asm_n = len(self._asm)
            return
        if type(payload) is not bytes:  # not so far: frames and extensions give bytes
            payload = bytes(payload)
        k = len(payload)
        limit = self.max_message_size
        if self._asm is None:
            size = 4 * k if k <= _ASM_FIRST else k
            if limit is not None:
                size = max(k, min(size, limit))
            self._asm = PyBytes_FromStringAndSize(cython.NULL, size)
        elif len(self._asm) - n < k:
            size = max(n + k, 2 * len(self._asm))
            if limit is not None:
                size = max(n + k, min(size, limit))
            self._resize_assembly(size)
        memcpy(PyBytes_AS_STRING(self._asm) + n, PyBytes_AS_STRING(payload), k)
        self._asm_n = n + k

    def _resize_assembly(self, size: int) -> None:
        # Compiled only: realloc the bytes object, which nothing else references yet
        # (_PyBytes_Resize's condition): the reference moves to a pointer and back.
        ptr = cython.cast(cython.pointer(PyObject), self._asm)
        Py_INCREF(self._asm)
        self._asm = None
        _PyBytes_Resize(cython.address(ptr), size)  # on failure: freed, MemoryError
        self._asm = cython.cast(object, ptr)
        Py_DECREF(self._asm)

    def _assembled(self) -> bytes:
        # The message's bytes. (No local may hold _asm: resizing needs the only ref.)
        if self._asm is None:
            return b""
        if cython.compiled:
            if len(self._asm) != self._asm_n:
                self._resize_assembly(self._asm_n)
            data = self._asm
        else:
            data = bytes(self._asm)
        self._drop_assembly()
        return data  # type: ignore[no-any-return]

    def _drop_assembly(self) -> None:
        self._asm = None
        self._asm_n = 0

    def _control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:
            if self.close_sent is None:
                self._write_frame(0x8A, payload)
            self._events.append(Ping(payload))
        elif opcode == 0xA:
            self._events.append(Pong(payload))
        else:
            try:
                close = Close.parse(payload)
            except ProtocolError as error:
                self._fail_with(error)
                return
            self.close_rcvd = close
            if self.close_sent is None:
                self.close_rcvd_then_sent = True
                self._send_close_frame(Close(close.code))
            self.state = _CLOSING
            self._discard = True
            self._buf = bytearray()  # not clear(): _parse may hold a view on it
            self._drop_assembly()
            if not self._is_client:
                self._want_eof = True
