"""Frames of RFC 6455 §5: opcodes, close codes and close frames.

Parsing frames is the job of the protocol core (:mod:`blazews.sansio.protocol`, a
parser that works on a buffer and an offset); serializing them is a kernel
(``frame_header`` / ``encode_frame`` in :mod:`blazews._impl`), so that the compiled
build writes each header straight into the frame's memory; masking keys are drawn
by the core too. This module holds what the rest share.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from .._impl import frame_header, mask_into, validate_utf8
from ..exceptions import ProtocolError

__all__ = [
    "COALESCE_MAX",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FRAGMENT_OVERHEAD",
    "Close",
    "CloseCode",
    "Frame",
    "MaskLater",
    "MessageType",
    "Opcode",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class MessageType(enum.IntEnum):
    """The type of a data message: what ``read_message`` returns beside the payload."""

    TEXT = 0x1
    BINARY = 0x2


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 §7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


_CLOSE_NAMES = {
    1000: "OK",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received",
    1006: "connection closed abnormally",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def is_valid_close_code(code: int) -> bool:
    """Return whether ``code`` may appear in a close frame on the wire.

    1000-1003 and 1007-1014 are defined; 3000-3999 are registered and 4000-4999
    private. 1004 is reserved, 1005/1006/1015 must never be sent.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def fit_close_reason(reason: str) -> str:
    """Return ``reason`` cut to at most 123 bytes of UTF-8, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= 123:
        return reason
    return encoded[:123].decode("utf-8", "ignore")


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame's content.

    Attributes:
        code: The close code; 1005 when the frame carried none.
        reason: The close reason, possibly empty.
    """

    code: int
    reason: str = ""

    def __str__(self) -> str:
        name = _CLOSE_NAMES.get(
            self.code,
            "registered"
            if 3000 <= self.code < 4000
            else "private use"
            if 4000 <= self.code < 5000
            else "unknown",
        )
        text = f"{self.code} ({name})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Parse a received close frame's payload.

        Raises:
            ProtocolError: A 1-byte payload or a code that may not be sent (1002), or a
                reason that is not UTF-8 (1007).
        """
        n = len(payload)
        if n == 0:
            return cls(1005, "")
        if n == 1:
            raise ProtocolError("close frame with a 1-byte payload", 1002)
        code = (payload[0] << 8) | payload[1]
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}", 1002)
        raw = payload[2:]
        if not validate_utf8(raw):
            raise ProtocolError("close reason is not valid UTF-8", 1007)
        return cls(code, bytes(raw).decode())

    @classmethod
    def to_send(cls, code: int, reason: str = "") -> Close:
        """The close frame an endpoint may send with this code and reason.

        Raises:
            ValueError: The code may not be sent (1000-1003, 1007-1014 and 3000-4999
                may), or the reason is longer than 123 bytes in UTF-8.
        """
        if not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        close = cls(code, reason)
        if len(close.serialize()) > 125:
            raise ValueError("close reason must be at most 123 bytes in UTF-8")
        return close

    def serialize(self) -> bytes:
        """Return the close frame payload: the code (network order) and the reason."""
        if self.code == 1005:
            return b""
        return _U16.pack(self.code) + self.reason.encode()


class Frame:
    """One WebSocket frame, as :class:`blazews.sync.FrameReader` returns it.

    Attributes:
        opcode: The frame's :class:`Opcode`.
        fin: Whether this is the last frame of its message.
        rsv1, rsv2, rsv3: The reserved bits (RSV1 marks a compressed message when
            permessage-deflate is in use).
        length: The payload length, in bytes.
    """

    __slots__ = ("fin", "length", "opcode", "rsv1", "rsv2", "rsv3")

    def __init__(
        self,
        opcode: int,
        fin: bool = True,
        length: int = 0,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        self.opcode = Opcode(opcode)
        self.fin = fin
        self.length = length
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3

    def __repr__(self) -> str:
        return (
            f"Frame({self.opcode.name}, fin={self.fin}, length={self.length}"
            f"{', rsv1' if self.rsv1 else ''})"
        )


COALESCE_MAX = 16384
"""The largest server payload the core copies into its frame. A larger one comes out
of :meth:`~blazews.sansio.protocol.Protocol.data_to_send` as itself, beside its
header: a front end whose transport may keep what it is given (uvloop does, while the
socket is full) must not hand it a buffer that may change."""


DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Default limit on a received message, in bytes (1 MiB)."""

FRAGMENT_OVERHEAD = 64
"""Bytes charged per fragment, on top of its payload, against the fragment budget.

An unfinished message may hold at most ``max_message_size`` payload bytes (1009
beyond), and its payload bytes plus ``FRAGMENT_OVERHEAD`` per fragment may not exceed
``2 * max_message_size`` (1009 beyond). A message of exactly the limit is accepted in
up to ``max_message_size / 64`` fragments; a flood of empty fragments stops after
``2 * max_message_size / 64`` of them.
"""


class MaskLater:
    """A client frame left for the front end to mask on its way out, a piece at a time
    through one buffer, instead of a masked copy of the whole payload.

    The core emits one in :meth:`~blazews.sansio.protocol.Protocol.data_to_send`
    instead of the frame's bytes when the front end opted in (``Protocol.mask_later``)
    and the payload is that large; ``blazews.sync`` and the asyncio client do, for
    payloads over 1 MiB. A whole masked copy of a large message page-faults on its
    pages whenever glibc maps the block afresh, and doubles the memory a send takes;
    see the micro benchmark's "Clients sending large messages" section for figures.

    Attributes:
        head: The frame header, masking key included.
        key: The 4-byte masking key.
        payload: The unmasked payload (a byte view of the object sent; it must not
            change until the frame is written).
        length: The frame's size on the wire, header included.
    """

    __slots__ = ("head", "key", "length", "payload")

    def __init__(self, first: int, payload: Any, key: bytes) -> None:
        view = memoryview(payload)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        elif view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        self.payload = view
        self.key = key
        self.head = frame_header(first, view.nbytes, key)
        self.length = len(self.head) + view.nbytes

    def fill(self, buf: Any, at: int) -> int:
        """Fill ``buf`` with the frame's bytes on the wire from offset ``at`` on,
        masked; return how many (all of ``buf`` unless the frame ends first).

        Any writable byte buffer will do, one per call or the same again: the
        frame keeps no state, so a caller may give a buffer away (to a transport
        still holding it) and go on with another.

        Raises:
            ValueError: ``at`` is outside the frame, or ``buf`` is empty.
        """
        if not 0 <= at < self.length:
            raise ValueError("the frame has no byte at this offset")
        head = self.head
        with memoryview(buf) as view:
            if not view.nbytes:
                raise ValueError("an empty buffer takes nothing")
            filled = 0
            if at < len(head):
                filled = min(len(head) - at, len(view))
                view[:filled] = head[at : at + filled]
                at += filled
            done = at - len(head)  # payload bytes before this piece
            n = min(len(view) - filled, self.payload.nbytes - done)
            if n > 0:
                with view[filled : filled + n] as part:
                    mask_into(self.key, self.payload[done : done + n], part, done)
                filled += n
        return filled

    def pieces(self, buf: bytearray) -> Generator[memoryview, None, None]:
        """Fill ``buf`` with the frame's next bytes, masked, and yield a view of them,
        until the frame is done. Each view must be written before the next is asked
        for: they all share ``buf``.

        Raises:
            ValueError: ``buf`` has no room beyond the header.
        """
        if len(buf) <= len(self.head):
            raise ValueError("the buffer must be larger than the frame header")
        with memoryview(buf) as view:
            at = 0
            while at < self.length:
                n = self.fill(view, at)
                at += n
                with view[:n] as filled:
                    yield filled

    def detach(self) -> None:
        """Copy the payload unless it is ``bytes``: the object sent may then change.

        For a front end whose caller stops waiting (a cancelled send) while the
        frame is still to be written from the caller's buffer.
        """
        payload = self.payload
        if type(payload.obj) is not bytes:
            self.payload = memoryview(payload.tobytes())
            payload.release()


_U16 = struct.Struct("!H")
