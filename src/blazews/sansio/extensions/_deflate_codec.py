"""The permessage-deflate extension itself (RFC 7692): compressing and decompressing
messages once it is negotiated, with its defaults and checks.

What an offer or a response says, and the factories that build an extension from
them, are :mod:`.permessage_deflate`'s, which also exports everything public here;
the compressor and decompressor back ends, their pool and the kept windows are
:mod:`._deflate_streams`'.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import MessageTooBig, ProtocolError
from . import Extension
from ._deflate_streams import PoolKey, get_backend, give_compressor, keep_tail

__all__ = [
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_MEMORY_LEVEL",
    "NAME",
    "Compressed",
    "PerMessageDeflate",
]

NAME = "permessage-deflate"

DEFAULT_COMPRESSION_LEVEL = 1
"""zlib level used to compress (0-9, or -1 for the backend's default)."""

DEFAULT_MEMORY_LEVEL = 5
"""zlib ``memLevel`` of compressors (1-9): 5 costs 16 KiB of hash tables, 8 costs 128 KiB."""


DEFAULT_COMPRESS_THRESHOLD = 128
"""Messages sent in one frame below this many bytes go uncompressed.

Deflate saves at most about a hundred bytes on them and costs microseconds each.
"""

_TAIL = b"\x00\x00\xff\xff"
_TOO_BIG = "message larger than max_message_size once decompressed"
_RSV1 = 0x40

# Every shared key made so far, each kept once: connections with the same settings
# hold the same tuple, so that a broadcast can tell them alike by identity (one
# entry per distinct setting: a handful).
_SHARED_KEYS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


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
        "_broadcast_key",
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
        "_shared",
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
        # shared_key without context takeover (None with it), made once: the
        # settings it names are fixed at construction. _broadcast_key is what
        # shared_key returns now: None while a fragmented compressed message is sent.
        shared = (self._key, self._can_compress, compress_threshold, skip_incompressible)
        self._shared = (
            _SHARED_KEYS.setdefault(shared, shared) if local_no_context_takeover else None
        )
        self._broadcast_key = self._shared

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

        Connections with the same settings return the same tuple object. The settings
        are those given at construction (``compress_threshold`` and
        ``skip_incompressible`` included).
        """
        return self._broadcast_key

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
                self._broadcast_key = self._shared
                return _RSV1, payload
            if not (
                compress
                and self._can_compress
                and (not fin or len(payload) >= self.compress_threshold)
            ):
                self._out_compressed = False
                self._broadcast_key = self._shared
                return 0, payload
            if fin:
                self._out_compressed = False
                self._broadcast_key = self._shared
                data = self._compress_message(payload)
                return (0, payload) if data is None else (_RSV1, data)
            self._out_compressed = True
            self._broadcast_key = None
            rsv = _RSV1
        elif self._out_compressed:
            self._out_compressed = not fin
            if fin:
                self._broadcast_key = self._shared
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
