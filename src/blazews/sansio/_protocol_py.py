"""The WebSocket protocol state machine shared by both roles (RFC 6455 §5-§7).

This file is the one source of the hot path: it runs as plain Python, and Cython
compiles it, as the module ``blazews.sansio._protocol_c`` typed by the augmenting
``_protocol_c.pxd``, into that extension. ``protocol.py`` picks one.
The events it produces (and the compiled message sink) are in ``_events_py.py``, and
the sending half of the protocol (the ``send_*`` verbs, frames out, masking keys) is
its base class, :class:`~blazews.sansio._sending_py.Writer`; both are built the same
way, and compiled, this module cimports their C types.

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

import struct
from collections.abc import Callable, Sequence
from typing import Any

from .._impl import Utf8Validator, frame_payload, mask_bytes, validate_utf8
from ..exceptions import MessageTooBig, ProtocolError
from .extensions import Extension
from .frames import (
    DEFAULT_MAX_MESSAGE_SIZE,
    FRAGMENT_OVERHEAD,
    Close,
    fit_close_reason,
)
from .states import Side, State

try:
    import cython  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # (compiled: Cython's own; pure: its shadow module, or else this)
    from ._nocython import NO_CYTHON

    globals()["cython"] = NO_CYTHON  # (not "cython = ...": Cython reserves the name)

if not cython.compiled:  # compiled, the .pxd cimports them from _events_c and _sending_c
    from ._events_py import Message, MessageCallback, Ping, Pong
    from ._sending_py import Writer
else:  # the kernels' C functions (some called with pointers into the buffer)
    from cython.cimports.blazews._native._kernels import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        byte_view,
        mask_inplace,
        payload_of,
        sub_view,
    )
    from cython.cimports.cpython.bytes import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        _PyBytes_Resize,
    )
    from cython.cimports.cpython.memoryview import PyMemoryView_GET_BUFFER  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.object import PyObject  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.cpython.ref import Py_DECREF, Py_INCREF  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from cython.cimports.libc.string import memcpy  # type: ignore[import-untyped, import-not-found, unused-ignore]

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "FRAGMENT_OVERHEAD", "Protocol", "header_rule", "rule_error"]

_U64 = struct.Struct("!Q").unpack_from


def _message(opcode: int, data: Any) -> Message:
    """``Message(opcode, data)``; compiled, a C function (see the .pxd) that skips the
    call and ``__init__``'s argument parsing: one per message received."""
    message = Message.__new__(Message)
    message.type = opcode
    message.data = data
    return message


# Whether Cython compiled this module (for tests; the code tests cython.compiled, a
# constant to Cython, which drops the branches it rules out).
_COMPILED = cython.compiled

# The states as module constants: an enum attribute lookup costs ~60 ns, a global
# ~10 ns, and the hot paths test the state on every call.
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

# A message's first fragment up to this size gets an assembly buffer with room for
# three more like it; a larger one gets a buffer of its size.
_ASM_FIRST = 4096

# How _parse may treat its input: copy payloads out of a read-only buffer, unmask them
# in place in a writable one, or also lend them as views of it.
_COPY = 0
_IN_PLACE = 1
_BORROW = 2


# The rules of RFC 6455 (§5.2, §5.4, §5.5) that a frame header can break, by number;
# 0 is none. Every parser of frames checks them here: the core, and FrameReader.
_RULES = (
    "",
    "reserved bits set without a negotiated extension",
    "reserved bits set on a control frame",
    "reserved opcode {:#x}",
    "fragmented control frame",
    "control frame payload longer than 125 bytes",
    "new data frame while a message is unfinished",
    "continuation frame without a message to continue",
    "64-bit payload length with the top bit set",
)


def header_rule(b0: int, length: int, rsv_allowed: int, msg_opcode: int) -> int:
    """The first rule a frame header breaks (an index of ``_RULES``), or 0.

    Args:
        b0: The header's first byte (FIN, RSV1-3, opcode).
        length: The payload length it gives.
        rsv_allowed: The reserved bits the negotiated extensions use, or -1 not to
            check the reserved bits (a reader of single frames leaves them to its caller).
        msg_opcode: The opcode of the message being assembled (0 when none), or -1
            not to check the order of fragments (a reader of single frames).
    """
    opcode = b0 & 0x0F
    rsv = b0 & 0x70 if rsv_allowed >= 0 else 0
    if length >> 63:
        return 8
    if rsv & ~rsv_allowed:
        return 1
    if opcode & 0x8:
        if rsv:
            return 2
        if opcode > 0xA:
            return 3
        if not b0 & 0x80:
            return 4
        if length > 125:
            return 5
    elif opcode > 0x2:
        return 3
    elif msg_opcode >= 0:
        if opcode:
            if msg_opcode:
                return 6
        elif not msg_opcode:
            return 7
    return 0


def rule_error(rule: int, b0: int) -> ProtocolError:
    """The error (1002) for a rule of :func:`header_rule` broken by a header."""
    return ProtocolError(_RULES[rule].format(b0 & 0x0F))


class Protocol(Writer):
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
        Writer.__init__(self, side, state)
        self.max_message_size = max_message_size
        self.eof_rcvd = False
        self.incomplete_frame_size = 0
        self._events: list[Any] = []
        self.message_sink: Callable[[int, Any], None] | None = None
        self._lend = False  # whether _parse lends payloads as views of its buffer
        self._buf = bytearray()
        self._discard = False
        self._want_eof = False
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

    @property
    def receiving(self) -> bool:
        """Whether more messages may still arrive (``False`` once a close frame came,
        the connection failed or the peer closed the TCP connection)."""
        return not self._discard

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame that the protocol holds itself (those it got
        through :meth:`receive_data`); none once it stopped parsing."""
        return len(self._buf)

    @property
    def assembly_size(self) -> int:
        """Bytes held for the fragmented message being assembled; 0 when none is."""
        return 0 if self._asm is None else len(self._asm)

    def close_transport(self) -> bool:
        """Return whether the front end should now close the TCP connection.

        The server closes it once close frames went both ways or the connection
        failed (RFC 6455 §7.1.1); so does a client that failed the connection. A
        client that closed cleanly waits for the server to close first (the front
        end bounds that wait with its close timeout).
        """
        return self._want_eof or self.state is _CLOSED

    # -- for the handshake (the client and server subclasses) -----------------------

    def _handshake_event(self, event: Any) -> None:
        """Queue the handshake's request or response for :meth:`events_received`."""
        self._events.append(event)

    def _stop_receiving(self) -> None:
        """Parse nothing more, and have the front end close the TCP connection: the
        handshake failed or was refused."""
        self._discard = True
        self._want_eof = True

    # -- for front ends that read into buffers of their own --------------------------

    def bytes_missing(self, kept: int) -> int:
        """How many more bytes the incomplete frame needs, when the caller of
        :meth:`receive_into_buffer` holds ``kept`` bytes of it (those it did not use);
        bytes the protocol holds itself count. 0 when no frame is incomplete or nothing
        more is parsed: what a front end may set ``SO_RCVLOWAT`` to, since the peer
        cannot send anything else first."""
        size = self.incomplete_frame_size
        if not size or self._discard:
            return 0
        return max(0, size - kept - len(self._buf))

    def direct_frame(self, buf: Any, start: int, end: int) -> tuple[int, int, int] | None:
        """Tell whether ``buf[start:end]`` (left unparsed by :meth:`receive_into_buffer`)
        begins with the header of a whole text or binary message in one frame, without
        extensions, whose payload has not all arrived.

        Returns:
            Its opcode, header length (masking key included) and payload length: the
            front end may read that payload into an application's buffer, unmask it
            with the key (the header's last 4 bytes, when masked) and hand it to
            :meth:`direct_message`. ``None`` for anything else, including whatever
            this protocol would refuse: it parses that itself.
        """
        if (
            self._discard
            or self._msg_opcode
            or self._buf
            or self.extensions
            or end - start < 2
            or (self.state is not _OPEN and self.state is not _CLOSING)
        ):
            return None
        b0 = buf[start]
        b1 = buf[start + 1]
        if (b0 != 0x81 and b0 != 0x82) or ((b1 & 0x80) != 0) == self._is_client:
            return None
        length = b1 & 0x7F
        hlen = 2
        if length == 126:
            hlen = 4
            if end - start >= 4:
                length = buf[start + 2] << 8 | buf[start + 3]
        elif length == 127:
            hlen = 10
            if end - start >= 10:
                length = int.from_bytes(buf[start + 2 : start + 10], "big")
        if not self._is_client:
            hlen += 4
        limit = self.max_message_size
        if end - start < hlen or length >> 63 or (limit is not None and length > limit):
            return None
        if end - start >= hlen + length:
            return None  # all there: receive_into_buffer parses it
        return b0 & 0x0F, hlen, length

    def direct_message(self, opcode: int, payload: Any) -> bool:
        """Take the message of a frame found by :meth:`direct_frame`, whose payload the
        front end read and unmasked; return whether it stands. A text payload must be
        UTF-8, or the connection fails (1007) and the message is dropped."""
        self.incomplete_frame_size = 0
        if self._discard:
            return False
        if opcode == 0x1 and not validate_utf8(payload):
            self._fail_with(ProtocolError("invalid UTF-8 in text message", 1007))
            return False
        return True

    # -- failing -------------------------------------------------------------------

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
            rule = header_rule(b0, length, self._rsv_allowed, self._msg_opcode)
            if rule:
                self._fail_with(rule_error(rule, b0))
                break
            if not opcode & 0x8 and limit >= 0 and length > limit - self._msg_size:
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
            elif cython.compiled:  # a C call on the pointer: no Python call nor ints
                payload = payload_of(mv, view + start, length, masked != 0)
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
                message = _message(opcode, payload) if cython.compiled else Message(opcode, payload)
                self._events.append(message)
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
                message = _message(opcode, data) if cython.compiled else Message(opcode, data)
                self._events.append(message)

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
