"""Pure-Python kernels: masking, frame serialization and UTF-8 validation.

The reference and fallback for the C kernels in ``blazews._native``: every function
here has a compiled twin with the same signature and behaviour, and the tests run
both. ``blazews._impl`` picks one.
"""

from __future__ import annotations

import codecs
from typing import Any

__all__ = [
    "Utf8Validator",
    "apply_mask",
    "encode_frame",
    "frame_header",
    "frame_payload",
    "mask_bytes",
    "mask_into",
    "payload_buffer",
    "validate_utf8",
]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _check_key(key: Any) -> bytes:
    raw = bytes(key)
    if len(raw) != 4:
        raise ValueError(f"mask key must be 4 bytes, got {len(raw)}")
    return raw


def _xor(data: Any, key: bytes, offset: int) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    shift = offset & 3
    if shift:
        key = key[shift:] + key[:shift]
    repeated = key * ((n >> 2) + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated[:n], "little")
    return value.to_bytes(n, "little")


def mask_bytes(key: Any, buf: Any, offset: int = 0) -> None:
    """XOR ``buf`` in place with the 4-byte ``key``, starting at key position ``offset``.

    Args:
        key: The 4-byte masking key (any bytes-like object).
        buf: A writable, C-contiguous buffer (bytearray, memoryview, numpy array...).
        offset: How many payload bytes precede ``buf``; lets a payload be masked in
            chunks. Only ``offset % 4`` matters.

    Raises:
        ValueError: If ``key`` is not 4 bytes long.
        TypeError: If ``buf`` is read-only.
    """
    key = _check_key(key)
    view = memoryview(buf)
    if view.readonly:
        raise TypeError("mask_bytes needs a writable buffer")
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    view[:] = _xor(view, key, offset)


def mask_into(key: Any, src: Any, dst: Any, offset: int = 0) -> None:
    """Write ``src`` XORed with the 4-byte ``key`` into ``dst``, in one pass.

    What ``dst[:] = src`` and then :func:`mask_bytes` on ``dst`` do, without going
    over the memory twice: for a front end masking a large payload piece by piece
    into a buffer of its own.

    Args:
        key: The 4-byte masking key (any bytes-like object).
        src: Any bytes-like object.
        dst: A writable buffer of the same size in bytes (``src`` itself will do;
            a partial overlap will not).
        offset: How many payload bytes precede ``src``; only ``offset % 4`` matters.

    Raises:
        ValueError: If ``key`` is not 4 bytes long, or ``src`` and ``dst`` differ
            in size.
        TypeError: If ``dst`` is read-only, or either is not a buffer.
    """
    key = _check_key(key)
    out = memoryview(dst)
    if out.readonly:
        raise TypeError("mask_into needs a writable buffer")
    out = out.cast("B") if out.format != "B" or out.ndim != 1 else out
    data = memoryview(src)
    if not data.c_contiguous:
        data = memoryview(data.tobytes())
    elif data.format != "B" or data.ndim != 1:
        data = data.cast("B")
    if data.nbytes != out.nbytes:
        raise ValueError(f"src and dst differ in size: {data.nbytes} and {out.nbytes} bytes")
    out[:] = _xor(data, key, offset)


def apply_mask(data: Any, key: Any) -> bytes:
    """Return ``data`` XORed with the 4-byte ``key`` as new bytes.

    Args:
        data: Any bytes-like object.
        key: The 4-byte masking key.

    Raises:
        ValueError: If ``key`` is not 4 bytes long.
    """
    key = _check_key(key)
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return _xor(view, key, 0)


def _check_first(first: int) -> int:
    if not 0 <= first <= 0xFF:
        raise ValueError(f"first header byte must be 0-255, got {first}")
    return first


def frame_header(first: int, length: int, key: Any = None) -> bytes:
    """Return a frame header (RFC 6455 §5.2) with the minimal length encoding.

    Args:
        first: The first header byte: FIN, the RSV bits and the opcode.
        length: The payload length, ``0 <= length < 2**63``.
        key: The 4-byte masking key, appended after the length with the MASK bit
            set; ``None`` for an unmasked frame.

    Raises:
        ValueError: ``first`` is not a byte, ``length`` is out of range, or ``key``
            is not 4 bytes long.
    """
    _check_first(first)
    if not 0 <= length < 1 << 63:
        raise ValueError(f"payload length out of range: {length}")
    mask_bit = 0 if key is None else 0x80
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    return header if key is None else header + _check_key(key)


def encode_frame(first: int, data: Any, key: Any = None) -> bytes:
    """Return a whole frame, header and payload, as one new ``bytes`` object.

    Args:
        first: The first header byte: FIN, the RSV bits and the opcode.
        data: The payload, any bytes-like object (its bytes, whatever its format).
        key: The 4-byte masking key: the payload is masked with it as it is copied
            in; ``None`` for an unmasked (server) frame.

    Raises:
        ValueError: ``first`` is not a byte, or ``key`` is not 4 bytes long.
    """
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    elif view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    header = frame_header(first, view.nbytes, key)
    if key is None:
        return header + view
    return header + _xor(view, _check_key(key), 0)


def frame_payload(buf: Any, start: int, end: int, masked: bool) -> bytes:
    """Return ``buf[start:end]`` as new bytes, unmasked as it is copied if ``masked``.

    The parser's way to take a payload out of a receive buffer: one call, one copy,
    no intermediate view. When ``masked``, the key is the 4 bytes before ``start``
    (where a frame header puts it).

    Args:
        buf: A C-contiguous buffer (bytes, bytearray, memoryview...).
        start: Where the payload begins (``>= 4`` when ``masked``).
        end: Where it ends.
        masked: Whether to unmask with the key at ``buf[start - 4:start]``.

    Raises:
        ValueError: The range is not within ``buf``.
    """
    with memoryview(buf) as view:
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if start < (4 if masked else 0) or end < start or end > view.nbytes:
            raise ValueError(f"payload range {start}:{end} not within a {view.nbytes}-byte buffer")
        if not masked:
            return bytes(view[start:end])
        return _xor(view[start:end], bytes(view[start - 4 : start]), 0)


def validate_utf8(data: Any) -> bool:
    """Return whether ``data`` is complete, valid UTF-8 (RFC 3629: no surrogates)."""
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True


# Allowed ranges for the second byte of a sequence, by lead byte (RFC 3629 table):
# they rule out overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
_SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


class Utf8Validator:
    """Incremental UTF-8 validation across fragments.

    ``feed`` returns ``False`` as soon as the bytes seen so far cannot start a valid
    text (an invalid byte, an overlong form, a surrogate or a code point above
    U+10FFFF), even in the middle of a sequence cut between two chunks. Once invalid,
    it stays invalid until ``finish`` or ``reset``. ``finish`` also fails when the text
    ends inside a sequence.
    """

    __slots__ = ("_decoder", "_invalid")

    def __init__(self) -> None:
        self._decoder = _utf8_decoder()
        self._invalid = False

    def feed(self, data: Any) -> bool:
        """Validate the next chunk; ``False`` once the text is known to be invalid."""
        if self._invalid:
            return False
        if isinstance(data, memoryview) and not data.c_contiguous:
            raise BufferError("Utf8Validator.feed needs a C-contiguous buffer")
        decoder = self._decoder
        try:
            decoder.decode(data, False)
        except UnicodeDecodeError:
            self._invalid = True
            return False
        # CPython's decoder holds back an incomplete sequence without judging it;
        # judge its second byte now, so a cut surrogate fails on this chunk.
        pending = decoder.getstate()[0]
        if len(pending) >= 2:
            bounds = _SECOND_BYTE.get(pending[0])
            if bounds is not None and not bounds[0] <= pending[1] <= bounds[1]:
                self._invalid = True
                return False
        return True

    def finish(self) -> bool:
        """Return whether the text ended on a sequence boundary; resets the validator."""
        if self._invalid:
            self.reset()
            return False
        try:
            self._decoder.decode(b"", True)
        except UnicodeDecodeError:
            return False
        finally:
            self._decoder.reset()
        return True

    def reset(self) -> None:
        """Forget any partial sequence and any error, ready for a new message."""
        self._decoder.reset()
        self._invalid = False


def payload_buffer(n: int) -> tuple[bytearray, memoryview]:
    """The compiled twin's ``(bytes, writable view)`` to read a payload into: here a
    ``bytearray`` (zero-filled) and a view of it; the caller makes ``bytes`` of it."""
    if n < 0:
        raise ValueError("negative size")
    data = bytearray(n)
    return data, memoryview(data)
