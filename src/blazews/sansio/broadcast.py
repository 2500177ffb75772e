"""One message for many connections: its frames built once (sans-I/O).

A server's frames are not masked, so a message's frame is the same bytes on every
server connection that encodes it the same way: :class:`PreparedMessage` builds it
once for all connections without compression (or that do not compress it), and
compresses it once per distinct permessage-deflate setting among the connections that
keep no compression context between messages (``server_no_context_takeover``, the
server's default): their compressor forgets each message, so the output depends on
the setting only (:attr:`PerMessageDeflate.shared_key`). A connection that keeps its
context, a client connection (its frames are masked) and one with an extension the
core does not know get their frame from their own protocol, as for any ``send``.

The front ends' ``broadcast`` functions (:mod:`blazews.asyncio.broadcast`,
:mod:`blazews.sync.broadcast`) write these frames and apply the slow-consumer policy
that this module names and checks (:data:`SLOW_POLICIES`); nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._impl import encode_frame
from .extensions.permessage_deflate import PerMessageDeflate
from .protocol import Protocol
from .states import Side

_SERVER = Side.SERVER

__all__ = ["SLOW_POLICIES", "BroadcastResult", "PreparedMessage", "check_policy"]

SLOW_POLICIES = ("skip", "queue", "close")
"""What a broadcast does with a connection whose write buffer is over its high-water
mark: ``"skip"`` it (the message is not sent to it, and counted), ``"queue"`` the
message anyway up to a per-connection cap of buffered bytes, then close it, or
``"close"`` it at once."""

DEFAULT_MAX_QUEUED = 1024 * 1024
"""Default cap of the ``"queue"`` policy: bytes a slow connection may hold buffered."""


class BroadcastResult(NamedTuple):
    """What a broadcast did, connection by connection, counted.

    Attributes:
        delivered: Connections the message was written to (or buffered for).
        skipped: Slow connections left out (policy ``"skip"``).
        closed: Slow connections closed (policy ``"close"``, or ``"queue"`` past
            its cap).
        not_open: Connections that were not open (connecting, closing or closed).
    """

    delivered: int = 0
    skipped: int = 0
    closed: int = 0
    not_open: int = 0


def check_policy(slow: str, max_queued: int, close_code: int) -> None:
    """Check a broadcast's slow-consumer arguments.

    Raises:
        ValueError: An unknown policy, a negative cap, or a close code other than
            1008 (policy violation) or 1013 (try again later).
    """
    if slow not in SLOW_POLICIES:
        raise ValueError(f"slow must be one of {', '.join(SLOW_POLICIES)}, not {slow!r}")
    if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 0:
        raise ValueError(f"max_queued must be a size in bytes, not {max_queued!r}")
    if close_code not in (1008, 1013):
        raise ValueError(f"close_code must be 1008 or 1013, not {close_code!r}")


class PreparedMessage:
    """A message and the frames built for it so far, one per way of encoding it.

    Args:
        message: ``str`` (a text message) or any bytes-like object (binary).
        compress: ``False`` sends it uncompressed even where permessage-deflate is
            in use.

    Attributes:
        opcode: 1 (text) or 2 (binary).
        payload: The message as ``bytes``.
        builds: How many frames were built (compressed or not) so far.
    """

    __slots__ = ("_frames", "_last", "_plain", "builds", "compress", "opcode", "payload")

    def __init__(self, message: Any, *, compress: bool = True) -> None:
        if isinstance(message, str):
            self.opcode = 1
            self.payload = message.encode()
        else:
            self.opcode = 2
            self.payload = message if type(message) is bytes else memoryview(message).tobytes()
        self.compress = compress
        self._frames: dict[Any, bytes] = {}
        self._plain: bytes | None = None  # the uncompressed frame, once built
        # The last shared key asked for and its frame: connections with the same
        # settings hold the same key object (see PerMessageDeflate.shared_key), so
        # most are answered by identity, without hashing the key.
        self._last: tuple[Any, bytes | None] = (None, None)
        self.builds = 0

    def frame_for(self, protocol: Protocol) -> bytes | None:
        """The whole frame to send this message on ``protocol``'s connection, or
        ``None`` when the connection must build its own (see the module's notes)."""
        exts = protocol.extensions
        if protocol.side is not _SERVER:
            return None
        if not exts:
            return self._plain or self._build(None)
        if len(exts) != 1 or type(exts[0]) is not PerMessageDeflate:
            return None
        if not self.compress:
            return self._plain or self._build(None)
        key = exts[0].shared_key
        if key is None:
            return None  # it keeps its compression context: its own frame
        last = self._last
        if key is last[0]:
            return last[1]
        frame = self._frames.get(key) or self._build(key, exts[0])
        self._last = (key, frame)
        return frame

    def plain_frame(self) -> bytes:
        """The frame without compression, for a server connection without extensions
        (built on the first call)."""
        return self._plain or self._build(None)

    def _build(self, key: Any, ext: PerMessageDeflate | None = None) -> bytes:
        rsv, data = 0, self.payload
        if ext is not None:
            rsv, data = ext.encode(self.opcode, True, self.payload, True)
        frame = self._frames[key] = encode_frame(0x80 | rsv | self.opcode, data, None)
        if key is None:
            self._plain = frame
        self.builds += 1
        return frame

    def send_to(self, protocol: Protocol) -> int:
        """Queue the message on ``protocol``: its prepared frame, or the connection's
        own; return the frame's size in bytes (0 for a frame of its own).

        Raises:
            ConnectionClosed: The connection is not open.
        """
        frame = self.frame_for(protocol)
        if frame is None:
            protocol.send_frame(self.opcode, self.payload, True, compress=self.compress)
            return 0
        protocol.send_prepared(frame)
        return len(frame)
