"""Low-level frame and message reading over a blocking socket or a binary stream.

:class:`FrameReader` reads one frame at a time (:meth:`~FrameReader.read_frame_into`)
or one whole message (:meth:`~FrameReader.read_message_into`,
:meth:`~FrameReader.read_message`), with no handshake, and unmasks each payload
straight into the caller's buffer. It is the tool for a raw frame stream (a capture,
a proxy, a benchmark), not for a WebSocket connection: :func:`blazews.sync.connect`
and :func:`blazews.sync.serve` handle those, through the sans-I/O core::

    with FrameReader(io.BytesIO(captured)) as reader:
        buf = bytearray(65536)
        kind, n = reader.read_message_into(buf)

Its frame header checks mirror the core's frame parser (:mod:`blazews.sansio.protocol`),
the checks that need no connection state: a 64-bit length with its top bit set,
reserved opcodes, control frames that are fragmented or longer than 125 bytes. Frames
are not checked for what depends on the connection: masking direction, RSV bits (they
are reported; extensions are not negotiated here). The message methods add the message
rules: continuation order, UTF-8, the size limit, no RSV bits.

The reader is written once (``_frame_reader_py.py``) and compiled by Cython into
``_frame_reader_c`` (header parsing and unmasking by typed indexing); the compiled
build is used unless ``BLAZEWS_NO_EXTENSIONS=1`` or it was not built
(``blazews.implementation_report()`` says which runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._impl import select

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "READ_BUFFER_SIZE", "FrameReader"]

if TYPE_CHECKING:
    from ._frame_reader_py import DEFAULT_MAX_MESSAGE_SIZE, READ_BUFFER_SIZE, FrameReader
else:
    _built = select("blazews.sync._frame_reader")
    DEFAULT_MAX_MESSAGE_SIZE, READ_BUFFER_SIZE = (
        _built.DEFAULT_MAX_MESSAGE_SIZE,
        _built.READ_BUFFER_SIZE,
    )
    FrameReader = _built.FrameReader
