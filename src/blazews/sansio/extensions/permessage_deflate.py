"""permessage-deflate (RFC 7692): negotiation in both roles and per-message compression.

Negotiation
    :class:`ClientPerMessageDeflateFactory` makes one offer; give the client several
    factories to make several offers in one header. :class:`ServerPerMessageDeflateFactory`
    answers an offer according to its policy. Offers with an unknown, repeated or
    malformed parameter (a value on a flag, a window size outside 8-15 or with a leading
    zero) are declined by the server (the next offer is tried) and fail the client's
    handshake when they come back in a response.

Messages
    The first frame of a compressed message carries RSV1; continuation frames never do
    (RSV1 on one is a 1002 protocol error). An invalid deflate stream is a 1007. The
    message size limit applies to the inflated size and is enforced while inflating: a
    frame never inflates to more than one byte past the room the message has left, so a
    deflate bomb costs about ``max_message_size`` bytes of memory, not its inflated size.
    A message below ``compress_threshold`` bytes sent in one frame goes uncompressed, as
    does a message sent with ``compress=False``.

Window bits 8
    zlib (and zlib-ng, and ISA-L) refuse to produce a raw deflate stream with a 256-byte
    window (``deflateInit2`` rejects ``-8``; only zlib-wrapped streams are silently
    bumped to 9), and compressing with 9 could break a peer that honours 8. So when
    window bits 8 are negotiated for what we send, that direction sends every message
    uncompressed, which RFC 7692 always allows. Raw inflate does accept 8 (a true
    256-byte window, checked); we still inflate with at least 9 bits, because zlib-based
    peers compress with 9 when 8 is negotiated, and that costs 256 bytes.

Defaults and what a connection holds
    The server factory answers the browsers' offer (``permessage-deflate;
    client_max_window_bits``, also websockets' default) with ``permessage-deflate;
    server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12``;
    level 1, memLevel 5. Streams are created lazily, on the first compressed message in
    their direction, and between messages a connection holds:

    - no compressor without context takeover in its direction (the server's default):
      compressors come from a shared, bounded, thread-safe pool (each message ends
      with a full flush, which forgets the history, so the compressor can serve any
      connection next);
    - a compressor with context takeover (the client's default): 38 KiB with stdlib
      zlib at 12 bits and memLevel 5 (262 KiB at 15 and 8), 160 KiB with zlib-ng,
      229 KiB with ISA-L;
    - no inflater: with the peer's context takeover, only the peer's last window of
      output (up to 4 KiB at 12 bits, 32 KiB at 15), from which the next message's
      inflater starts as its dictionary (about 0.2 us); without it, nothing. A live
      inflater would hold its window plus about 7 KiB with zlib (44 KiB with zlib-ng,
      90 KiB with ISA-L). Inflaters are not pooled: a new one costs about 0.1 us, and
      Python's zlib cannot reset one, so a reused inflater would let a peer read
      other connections' messages through back-references.

    So an idle server connection with the default policy, after one 4 KiB message
    each way, holds 4.4 KiB of deflate state (tracemalloc; 4-7 KiB of RSS, whatever
    the backend); with context takeover both ways, 42 KiB with stdlib zlib (RSS 43),
    165 KiB with zlib-ng (RSS 162). websockets' defaults (the same windows, context
    takeover) hold 49 KiB (RSS 52); with ``server_no_context_takeover``, 11 KiB (RSS 12).
    The price of ``server_no_context_takeover`` is the ratio of what the server sends:
    each message is compressed on its own, which costs little from about 8 KiB up
    (JSON, stdlib zlib level 1: 7.3x instead of 7.9x at 16 KiB) and much on small
    messages (3.2x instead of 6.3x at 1 KiB). On JSON and HTML a 12-bit window
    compresses within 10-20% of a 15-bit one at level 1.

CPU and backends
    The default level is 1: on JSON and HTML, level 6 costs about twice the CPU for
    output 15-20% smaller. ``auto`` (the default backend) compresses with the fastest
    installed: ISA-L (``isal``; 16 KiB of JSON in 13 us), then zlib-ng (22 us, and a
    worse ratio at level 1: 5.5x against 7.8x), then stdlib zlib (30 us); it inflates
    with zlib-ng (16 KiB in 10 us), else zlib (13 us). All produce and accept the same
    wire format. ``BLAZEWS_DEFLATE_BACKEND`` (``zlib``, ``zlib-ng``, ``isal``,
    ``auto``) or the factories' ``backend`` argument names one backend for both
    directions; a compressor held per connection (context takeover) is 4-6 times
    larger with ISA-L or zlib-ng than with ``zlib``, the choice where such
    connections are many.

Compressing off the event loop
    :meth:`PerMessageDeflate.compress` compresses a whole message and returns a
    :class:`Compressed`, which :meth:`PerMessageDeflate.encode` then sends as is, with
    RSV1. Zlib releases the GIL while compressing, so a front end may run it in a
    thread for large messages; see :meth:`PerMessageDeflate.compress` for the ordering
    rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ...exceptions import MessageTooBig, NegotiationError, ProtocolError
from . import ClientExtensionFactory, Extension, ExtensionParams, ServerExtensionFactory
from ._deflate_streams import (
    PoolKey,
    available_backends,
    get_backend,
    give_compressor,
    keep_tail,
)

__all__ = [
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_MEMORY_LEVEL",
    "DEFAULT_WINDOW_BITS",
    "ClientPerMessageDeflateFactory",
    "Compressed",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "available_backends",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]

NAME = "permessage-deflate"

DEFAULT_COMPRESSION_LEVEL = 1
"""zlib level used to compress (0-9, or -1 for the backend's default)."""

DEFAULT_MEMORY_LEVEL = 5
"""zlib ``memLevel`` of compressors (1-9): 5 costs 16 KiB of hash tables, 8 costs 128 KiB."""

DEFAULT_WINDOW_BITS = 12
"""Window bits the server factory asks for in both directions (a 4 KiB window).

A stdlib zlib compressor costs 38 KiB at 12 bits (memLevel 5), 262 KiB at 15 (memLevel
8); between messages we keep at most one window of the peer's output (4 KiB at 12
bits, 32 KiB at 15) where it uses context takeover.
"""

DEFAULT_COMPRESS_THRESHOLD = 128
"""Messages sent in one frame below this many bytes go uncompressed.

Deflate saves at most about a hundred bytes on them and costs microseconds each.
"""

_SNCT = "server_no_context_takeover"
_CNCT = "client_no_context_takeover"
_SMWB = "server_max_window_bits"
_CMWB = "client_max_window_bits"
_PARAMS = (_SNCT, _CNCT, _SMWB, _CMWB)
_WINDOW_BITS = re.compile(r"8|9|1[0-5]")  # RFC 7692 7.1.2: 8-15, no leading zero
_TAIL = b"\x00\x00\xff\xff"
_TOO_BIG = "message larger than max_message_size once decompressed"
_RSV1 = 0x40


class Compressed(bytes):
    """A whole message already compressed by :meth:`PerMessageDeflate.compress`."""

    __slots__ = ()


# -- the extension ------------------------------------------------------------------


def _check_window_bits(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 15:
        raise ValueError(f"{what} must be an integer from 8 to 15")


def _tuning(
    compression_level: int,
    memory_level: int,
    compress_threshold: int,
    skip_incompressible: bool,
    backend: str | None,
) -> dict[str, Any]:
    """Check the options that do not take part in the negotiation; return them."""
    if not -1 <= compression_level <= 9:
        raise ValueError("compression_level must be from -1 to 9")
    if not 1 <= memory_level <= 9:
        raise ValueError("memory_level must be from 1 to 9")
    if compress_threshold < 0:
        raise ValueError("compress_threshold must be >= 0")
    get_backend(backend)  # fail now, not at the first handshake
    return {
        "compression_level": compression_level,
        "memory_level": memory_level,
        "compress_threshold": compress_threshold,
        "skip_incompressible": skip_incompressible,
        "backend": backend,
    }


class PerMessageDeflate(Extension):
    """permessage-deflate as negotiated on one connection.

    "Local" is what this endpoint sends, "remote" what the peer sends.

    Args:
        remote_no_context_takeover: The peer resets its compressor after each message,
            so we keep nothing of its messages (else we keep its last window of
            output, up to ``2**remote_max_window_bits`` bytes, between messages).
        local_no_context_takeover: We must not use context takeover: our compressor
            comes from the shared pool for each message and goes back after it.
        remote_max_window_bits: The largest window the peer may compress with (8-15).
        local_max_window_bits: The largest window we may compress with (8-15; with 8,
            messages are sent uncompressed, see the module's notes).
        compression_level: zlib level (0-9 or -1).
        memory_level: zlib memLevel of the compressor (1-9).
        compress_threshold: Single-frame messages below this size go uncompressed.
        skip_incompressible: Send a single-frame message as it is when deflate would
            not shrink it and that costs nothing (see :meth:`_compress_message`).
        backend: ``"zlib"``, ``"zlib-ng"``, ``"isal"`` (both directions), ``"auto"``
            (the fastest installed for each direction: ISA-L, zlib-ng, zlib to
            compress; zlib-ng, zlib to inflate), or ``None`` for
            ``BLAZEWS_DEFLATE_BACKEND`` (default ``auto``).
    """

    __slots__ = (
        "_backend",
        "_can_compress",
        "_compressor",
        "_copy_min",
        "_decompressor",
        "_deflate_state",
        "_history",
        "_history_size",
        "_in_compressed",
        "_in_fed",
        "_inflate_backend",
        "_inflate_wbits",
        "_key",
        "_out_compressed",
        "compress_threshold",
        "local_max_window_bits",
        "local_no_context_takeover",
        "remote_max_window_bits",
        "remote_no_context_takeover",
        "skip_incompressible",
    )

    name = NAME
    rsv_bits = _RSV1

    def __init__(
        self,
        *,
        remote_no_context_takeover: bool = False,
        local_no_context_takeover: bool = False,
        remote_max_window_bits: int = 15,
        local_max_window_bits: int = 15,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        skip_incompressible: bool = True,
        backend: str | None = None,
    ) -> None:
        _check_window_bits(remote_max_window_bits, "remote_max_window_bits")
        _check_window_bits(local_max_window_bits, "local_max_window_bits")
        _tuning(compression_level, memory_level, compress_threshold, True, backend)
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_threshold = compress_threshold
        self.skip_incompressible = skip_incompressible
        self._backend = get_backend(backend)
        self._inflate_backend = get_backend(backend, inflate=True)
        self._inflate_wbits = max(9, remote_max_window_bits)
        self._can_compress = local_max_window_bits >= 9
        self._key: PoolKey = (
            self._backend.name,
            local_max_window_bits,
            compression_level,
            memory_level,
        )
        # zlib's deflate state size, per zlib.h's deflateInit2 notes.
        state = (1 << (local_max_window_bits + 2)) + (1 << (memory_level + 9))
        self._deflate_state = state
        self._copy_min = max(65536, 2 * state)
        self._compressor: Any = None
        self._decompressor: Any = None  # only while a message is being received
        self._history = b""  # the peer's last window of output (context takeover)
        self._history_size = 1 << self._inflate_wbits
        self._in_compressed = False  # the message being received is compressed
        self._in_fed = False  # ... and some of its compressed bytes reached the inflater
        self._out_compressed = False  # the message being sent is compressed

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"backend={self._backend.name!r}, inflate_backend={self._inflate_backend.name!r})"
        )

    @property
    def backend(self) -> str:
        """The backend that compresses: ``"zlib"``, ``"zlib-ng"`` or ``"isal"``."""
        return self._backend.name

    @property
    def inflate_backend(self) -> str:
        """The backend that inflates (``auto`` picks zlib-ng, else zlib)."""
        return self._inflate_backend.name

    @property
    def shared_key(self) -> tuple[Any, ...] | None:
        """What makes this connection's compressed messages what they are, or ``None``.

        Without context takeover in our direction (the server's default), a
        message compresses to the same bytes on every connection with the same key
        (backend, window bits, level, memLevel, threshold, whether incompressible
        messages go as they are): a broadcast compresses it once per key. ``None``
        when each connection must compress on its own: context takeover (the
        compressor's history is the connection's), or a fragmented compressed
        message being sent.
        """
        if not self.local_no_context_takeover or self._out_compressed:
            return None
        return (self._key, self._can_compress, self.compress_threshold, self.skip_incompressible)

    @property
    def holds_compressor(self) -> bool:
        """Whether the connection holds a compressor now (lazy, pooled or kept)."""
        return self._compressor is not None

    @property
    def holds_decompressor(self) -> bool:
        """Whether the connection holds an inflater now (only inside a message)."""
        return self._decompressor is not None

    @property
    def idle_bytes(self) -> int:
        """Bytes of deflate state kept between messages, roughly.

        The compressor's allocation when one is held (context takeover in our
        direction, after the first compressed message), plus the peer's last window
        of output kept for the next message's inflater (context takeover in its
        direction). An estimate from zlib's formulas, for stdlib zlib; other backends
        allocate more for the same compressor.
        """
        held = len(self._history)
        if self._compressor is not None:
            held += self._deflate_state
        return held

    # -- receiving ------------------------------------------------------------------

    def decode(
        self, opcode: int, fin: bool, rsv: int, payload: bytes, max_size: int | None
    ) -> bytes:
        """Inflate a received data frame of a compressed message; pass others through.

        Raises:
            ProtocolError: RSV1 on a continuation frame (1002), or an invalid deflate
                stream (1007).
            MessageTooBig: The message inflates past ``max_size`` (1009).
        """
        if opcode:
            if not rsv & _RSV1:
                self._in_compressed = False
                return payload
            self._in_compressed = True
            self._in_fed = False
        elif rsv & _RSV1:
            raise ProtocolError("rsv1 set on a continuation frame")
        elif not self._in_compressed:
            return payload
        if not payload and not (fin and self._in_fed):
            # Nothing to inflate; an empty compressed message is an empty message.
            return b""
        return self._inflate(payload, fin, max_size)

    def _inflate(self, payload: bytes, fin: bool, max_size: int | None) -> bytes:
        inflater = self._decompressor
        if inflater is None:
            inflater = self._inflate_backend.decompressor(self._inflate_wbits, self._history)
            self._decompressor = inflater
        self._in_fed = True
        try:
            if max_size is None:
                data = inflater.decompress(payload)
                if fin and not inflater.eof:
                    data += inflater.decompress(_TAIL)
            else:
                # One byte past the room proves the message too big without inflating it.
                data = inflater.decompress(payload, max_size + 1)
                if len(data) > max_size:
                    raise MessageTooBig(_TOO_BIG)
                if fin and not inflater.eof:
                    more = inflater.decompress(_TAIL, max_size + 1 - len(data))
                    if more:
                        data += more
                        if len(data) > max_size:
                            raise MessageTooBig(_TOO_BIG)
        except self._inflate_backend.error as exc:
            self._decompressor = None
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if inflater.eof:
            # The peer ended its deflate stream (BFINAL): nothing may follow in this
            # message, and the next message starts a new stream.
            self._history = b""
            if inflater.unused_data:
                self._decompressor = None
                raise ProtocolError("data after the end of the compressed stream", 1007)
            if fin:
                self._decompressor = None
        else:
            if not self.remote_no_context_takeover:
                self._history = keep_tail(self._history, data, self._history_size)
            if fin:
                # Parked: the window above is all the next message's inflater needs.
                self._decompressor = None
        return data  # type: ignore[no-any-return]

    # -- sending --------------------------------------------------------------------

    def encode(
        self, opcode: int, fin: bool, payload: bytes, compress: bool = True
    ) -> tuple[int, bytes]:
        """Compress a data frame about to be sent; return ``(rsv_bits, payload)``.

        Whether a message is compressed is decided on its first frame: not when
        ``compress`` is false, when this connection cannot compress (window bits 8),
        or when it is a single frame below ``compress_threshold``; fragmented messages
        are compressed whatever their first frame's size. Continuation frames follow
        the first frame's decision and ignore ``compress``. Each compressed fragment
        is flushed, so that the peer can inflate what it got so far. A single-frame
        message that deflate would not shrink goes as it is when that costs nothing
        (see :meth:`_compress_message`).

        Args:
            opcode: ``1`` or ``2`` for a message's first frame, ``0`` for the others.
            fin: Whether this is the message's last frame.
            payload: The frame's payload (any bytes-like object), or a
                :class:`Compressed` whole message (then ``fin`` must be true).
            compress: ``False`` sends this message uncompressed.
        """
        if opcode:
            if isinstance(payload, Compressed):
                if not fin:
                    raise ValueError("a compressed message must be sent in one frame")
                self._out_compressed = False
                return _RSV1, payload
            if not (
                compress
                and self._can_compress
                and (not fin or len(payload) >= self.compress_threshold)
            ):
                self._out_compressed = False
                return 0, payload
            if fin:
                self._out_compressed = False
                data = self._compress_message(payload)
                return (0, payload) if data is None else (_RSV1, data)
            self._out_compressed = True
            rsv = _RSV1
        elif self._out_compressed:
            self._out_compressed = not fin
            rsv = 0
        else:
            return 0, payload
        compressor = self._compressor
        if compressor is None:
            if self.local_no_context_takeover:
                compressor = self._backend.take_compressor(self._key)
            else:
                compressor = self._backend.compressor(*self._key[1:])
            self._compressor = compressor
        if fin and self.local_no_context_takeover:
            data = _deflate(compressor, payload, self._backend.full_flush)
            self._compressor = None
            give_compressor(self._key, compressor)
        else:
            data = _deflate(compressor, payload, self._backend.sync_flush)
        return rsv, data[:-4] if fin else data

    def _compress_message(self, payload: Any) -> bytes | None:
        """Compress a whole message; return ``None`` when it is better sent as it is.

        Incompressible data (random, encrypted, already compressed) grows a little
        when deflated. Without context takeover the compressor forgets the message
        anyway, so a message that did not shrink is sent as it is. With context
        takeover the peer's inflater must see every byte our compressor saw, so that
        is only possible by restoring a copy of the compressor taken beforehand: done
        for messages of at least ``max(64 KiB, twice the compressor's size)``, where
        the copy costs about 1% of the compression (not with ISA-L, which cannot copy).
        """
        sync, full = self._backend.sync_flush, self._backend.full_flush
        if self.local_no_context_takeover:
            compressor = self._backend.take_compressor(self._key)
            data = _deflate(compressor, payload, full)
            give_compressor(self._key, compressor)
        else:
            compressor = self._compressor
            if compressor is None:
                compressor = self._compressor = self._backend.compressor(*self._key[1:])
            size = len(payload)
            if not self.skip_incompressible or size < self._copy_min or not self._backend.can_copy:
                return _deflate(compressor, payload, sync)[:-4]
            snapshot = compressor.copy()
            data = _deflate(compressor, payload, sync)
            if len(data) - 4 >= size:
                self._compressor = snapshot
                return None
            return data[:-4]
        if self.skip_incompressible and len(data) - 4 >= len(payload):
            return None
        return data[:-4]

    def compress(self, payload: Any) -> bytes:
        """Compress a whole message now, for :meth:`encode` to send as it is.

        Meant for large messages compressed in a worker thread (zlib releases the
        GIL). Returns a :class:`Compressed`, to send in one frame (as text or binary)
        through the protocol's usual ``send_*`` methods; or ``payload`` itself, to send
        normally, when this connection cannot compress or deflate would not shrink it
        (see :meth:`_compress_message`). The compression threshold does not apply.

        Ordering: with context takeover in our direction (the usual case), each call
        extends the stream the peer inflates, so calls on one connection must not
        overlap each other nor :meth:`encode` of a compressed message, and their
        results must be sent in the order of the calls (hold the connection's send
        lock from this call until the frame is queued). With
        ``local_no_context_takeover``, calls are independent: they may run
        concurrently, in any thread, and be sent in any order.
        """
        if not self._can_compress:
            return payload  # type: ignore[no-any-return]
        if self._out_compressed:
            raise RuntimeError("a compressed message is being sent in fragments")
        data = self._compress_message(payload)
        if data is None:
            return payload  # type: ignore[no-any-return]
        return Compressed(data)


def _deflate(compressor: Any, payload: Any, mode: int) -> bytes:
    data = compressor.compress(payload)
    tail = compressor.flush(mode)
    return data + tail if data else tail  # type: ignore[no-any-return]


# -- negotiation --------------------------------------------------------------------


def _parse_params(params: ExtensionParams, *, response: bool) -> dict[str, str | None]:
    """Check the parameters of an offer or a response; return them by name.

    Raises:
        NegotiationError: An unknown or repeated parameter, a value on a flag, or an
            invalid window size (in a response, ``client_max_window_bits`` needs one).
    """
    found: dict[str, str | None] = {}
    for name, value in params:
        if name not in _PARAMS:
            raise NegotiationError(f"unknown permessage-deflate parameter {name!r}")
        if name in found:
            raise NegotiationError(f"repeated permessage-deflate parameter {name}")
        if name in (_SNCT, _CNCT):
            if value is not None:
                raise NegotiationError(f"permessage-deflate parameter {name} takes no value")
        elif value is None:
            if name == _SMWB or response:
                raise NegotiationError(f"permessage-deflate parameter {name} needs a value")
        elif not _WINDOW_BITS.fullmatch(value):
            raise NegotiationError(
                f"invalid value {value!r} for permessage-deflate parameter {name} (8 to 15)"
            )
        found[name] = value
    return found


def _already(accepted: Sequence[Extension]) -> bool:
    return any(ext.name == NAME for ext in accepted)


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Accepts a client's permessage-deflate offer according to a policy.

    The server always honours what the client asks of it (``server_no_context_takeover``,
    ``server_max_window_bits``) and echoes a ``client_no_context_takeover`` hint.

    The default policy answers the browsers' offer (``permessage-deflate;
    client_max_window_bits``) with ``permessage-deflate; server_no_context_takeover;
    server_max_window_bits=12; client_max_window_bits=12``: 4 KiB windows both ways,
    our compressor borrowed from a shared pool for each message, the client's context
    kept as its last 4 KiB of output. An idle connection then holds about 4.4 KiB of
    deflate state, against 42 KiB (stdlib zlib; 165 KiB with zlib-ng) with context
    takeover both ways. The price is the ratio of what we send: each message
    is compressed on its own, which costs little from about 8 KiB up (7.3x instead of
    7.9x on 16 KiB JSON) and much on small messages (3.2x instead of 6.3x on 1 KiB).
    Pass ``server_no_context_takeover=False`` where the bandwidth of small messages
    matters more than memory.

    Args:
        server_no_context_takeover: Never use context takeover when sending (the
            default): our compressor is pooled between messages.
        client_no_context_takeover: Ask the client not to use context takeover.
        server_max_window_bits: Announce and use at most this window (8-15) when
            sending; ``None`` announces nothing unless the client asks for a limit.
        client_max_window_bits: Ask the client for at most this window (8-15) when
            it supports the parameter; ``None`` asks nothing.
        require_client_max_window_bits: Decline offers that do not support
            ``client_max_window_bits`` (needs ``client_max_window_bits``).
        compression_level, memory_level, compress_threshold, skip_incompressible,
            backend: Passed to :class:`PerMessageDeflate`.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = True,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        client_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        require_client_max_window_bits: bool = False,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        skip_incompressible: bool = True,
        backend: str | None = None,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits(server_max_window_bits, "server_max_window_bits")
        if client_max_window_bits is not None:
            _check_window_bits(client_max_window_bits, "client_max_window_bits")
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        self.options = _tuning(
            compression_level, memory_level, compress_threshold, skip_incompressible, backend
        )
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = require_client_max_window_bits

    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, PerMessageDeflate]:
        """Accept one offer: return the response parameters and the extension.

        Raises:
            NegotiationError: The offer is invalid, permessage-deflate was already
                accepted, or the policy requires what the offer lacks.
        """
        if _already(accepted):
            raise NegotiationError("permessage-deflate is already negotiated")
        offer = _parse_params(params, response=False)
        server_nct = self.server_no_context_takeover or _SNCT in offer
        client_nct = self.client_no_context_takeover or _CNCT in offer
        server_bits = self.server_max_window_bits
        offered = offer.get(_SMWB)
        if offered is not None:
            server_bits = int(offered) if server_bits is None else min(server_bits, int(offered))
        client_bits: int | None = None
        if _CMWB in offer:
            client_bits = self.client_max_window_bits
            hint = offer[_CMWB]
            if hint is not None:
                client_bits = int(hint) if client_bits is None else min(client_bits, int(hint))
        elif self.require_client_max_window_bits:
            raise NegotiationError("offer without client_max_window_bits declined")
        response: ExtensionParams = []
        if server_nct:
            response.append((_SNCT, None))
        if client_nct:
            response.append((_CNCT, None))
        if server_bits is not None:
            response.append((_SMWB, str(server_bits)))
        if client_bits is not None:
            response.append((_CMWB, str(client_bits)))
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_nct,
            local_no_context_takeover=server_nct,
            remote_max_window_bits=15 if client_bits is None else client_bits,
            local_max_window_bits=15 if server_bits is None else server_bits,
            **self.options,
        )
        return response, extension


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Makes one permessage-deflate offer and checks the server's answer to it.

    The default offer is the browsers': ``permessage-deflate; client_max_window_bits``.

    Args:
        server_no_context_takeover: Ask the server not to use context takeover; an
            answer without it then does not match this offer.
        client_no_context_takeover: Promise not to use context takeover.
        server_max_window_bits: Ask the server for at most this window (8-15); an
            answer without it or with more does not match this offer.
        client_max_window_bits: ``True`` offers the bare parameter (the server may then
            limit our window), an integer also promises at most that window, ``False``
            leaves it out (the server may then not limit our window).
        compression_level, memory_level, compress_threshold, skip_incompressible,
            backend: Passed to :class:`PerMessageDeflate`.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool = True,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        memory_level: int = DEFAULT_MEMORY_LEVEL,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        skip_incompressible: bool = True,
        backend: str | None = None,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits(server_max_window_bits, "server_max_window_bits")
        if not isinstance(client_max_window_bits, bool):
            _check_window_bits(client_max_window_bits, "client_max_window_bits")
        self.options = _tuning(
            compression_level, memory_level, compress_threshold, skip_incompressible, backend
        )
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def __repr__(self) -> str:
        return f"ClientPerMessageDeflateFactory({self.get_request_params()!r})"

    def get_request_params(self) -> ExtensionParams:
        """Return the parameters of this offer."""
        params: ExtensionParams = []
        if self.server_no_context_takeover:
            params.append((_SNCT, None))
        if self.client_no_context_takeover:
            params.append((_CNCT, None))
        if self.server_max_window_bits is not None:
            params.append((_SMWB, str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append((_CMWB, None))
        elif self.client_max_window_bits is not False:
            params.append((_CMWB, str(self.client_max_window_bits)))
        return params

    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Build the extension from the server's answer to this offer.

        Raises:
            NegotiationError: The answer is invalid or does not match this offer.
        """
        if _already(accepted):
            raise NegotiationError("server accepted permessage-deflate twice")
        answer = _parse_params(params, response=True)
        if self.server_no_context_takeover and _SNCT not in answer:
            raise NegotiationError("server did not accept server_no_context_takeover")
        value = answer.get(_SMWB)
        if value is not None:
            server_bits = int(value)
            if (
                self.server_max_window_bits is not None
                and server_bits > self.server_max_window_bits
            ):
                raise NegotiationError(
                    f"server_max_window_bits={server_bits} exceeds the "
                    f"{self.server_max_window_bits} offered"
                )
        elif self.server_max_window_bits is not None:
            raise NegotiationError(
                f"server did not accept server_max_window_bits={self.server_max_window_bits}"
            )
        else:
            server_bits = 15
        offered = self.client_max_window_bits
        client_bits = 15 if isinstance(offered, bool) else offered
        value = answer.get(_CMWB)
        if value is not None:
            if offered is False:
                raise NegotiationError("server sent client_max_window_bits, which was not offered")
            client_bits = min(client_bits, int(value))
        return PerMessageDeflate(
            remote_no_context_takeover=_SNCT in answer,
            local_no_context_takeover=self.client_no_context_takeover or _CNCT in answer,
            remote_max_window_bits=server_bits,
            local_max_window_bits=client_bits,
            **self.options,
        )


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None = None, **options: Any
) -> list[ClientExtensionFactory]:
    """Return ``extensions`` plus a :class:`ClientPerMessageDeflateFactory` built from
    ``options``, unless ``extensions`` already has a permessage-deflate factory."""
    result = list(extensions or ())
    if not any(factory.name == NAME for factory in result):
        result.append(ClientPerMessageDeflateFactory(**options))
    return result


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None = None, **options: Any
) -> list[ServerExtensionFactory]:
    """Return ``extensions`` plus a :class:`ServerPerMessageDeflateFactory` built from
    ``options``, unless ``extensions`` already has a permessage-deflate factory."""
    result = list(extensions or ())
    if not any(factory.name == NAME for factory in result):
        result.append(ServerPerMessageDeflateFactory(**options))
    return result
