"""What a front end that reads into buffers of its own needs beyond the core's
:meth:`~blazews.sansio.protocol.Protocol.receive_into_buffer`.

- :func:`bytes_missing`: how much of an incomplete frame is still to come, to set
  ``SO_RCVLOWAT`` to (the peer cannot send anything else first);
- :func:`direct_frame` and :func:`direct_message`: a message in one frame whose payload
  the front end reads straight into an application's buffer, instead of feeding it
  to the core, and then hands over (validated there).

Functions of the protocol object, kept out of the compiled core's class: they run
once per large read or frame, not per message.
"""

from __future__ import annotations

from typing import Any

from .._impl import validate_utf8
from ..exceptions import ProtocolError
from .states import State

__all__ = ["bytes_missing", "direct_frame", "direct_message"]


def bytes_missing(protocol: Any, kept: int) -> int:
    """How many more bytes ``protocol``'s incomplete frame needs, when the caller of
    ``receive_into_buffer`` holds ``kept`` bytes of it (those it did not use); bytes
    the protocol holds itself count. 0 when no frame is incomplete or nothing more is
    parsed."""
    size: int = protocol.incomplete_frame_size
    if not size or protocol._discard:
        return 0
    return max(0, size - kept - len(protocol._buf))


def direct_frame(protocol: Any, buf: Any, start: int, end: int) -> tuple[int, int, int] | None:
    """Tell whether ``buf[start:end]`` (left unparsed by ``receive_into_buffer``)
    begins with the header of a whole text or binary message in one frame, without
    extensions, whose payload has not all arrived.

    Returns:
        Its opcode, header length (masking key included) and payload length: the
        front end may read that payload into an application's buffer, unmask it with
        the key (the header's last 4 bytes, when masked) and hand it to
        :func:`direct_message`. ``None`` for anything else, including whatever the
        core would refuse.
    """
    if (
        protocol._discard
        or protocol._msg_opcode
        or protocol._buf
        or protocol.extensions
        or end - start < 2
        or (protocol.state is not State.OPEN and protocol.state is not State.CLOSING)
    ):
        return None
    b0 = buf[start]
    b1 = buf[start + 1]
    if (b0 != 0x81 and b0 != 0x82) or ((b1 & 0x80) != 0) == protocol._is_client:
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
    if not protocol._is_client:
        hlen += 4
    limit = protocol.max_message_size
    if end - start < hlen or length >> 63 or (limit is not None and length > limit):
        return None
    if end - start >= hlen + length:
        return None  # all there: receive_into_buffer parses it
    return b0 & 0x0F, hlen, length


def direct_message(protocol: Any, opcode: int, payload: Any) -> bool:
    """Give ``protocol`` the message of a frame found by :func:`direct_frame`, whose
    payload the front end read and unmasked; return whether it stands. A text payload
    must be UTF-8, or the connection fails (1007) and the message is dropped."""
    protocol.incomplete_frame_size = 0
    if protocol._discard:
        return False
    if opcode == 0x1 and not validate_utf8(payload):
        protocol._fail_with(ProtocolError("invalid UTF-8 in text message", 1007))
        return False
    return True
