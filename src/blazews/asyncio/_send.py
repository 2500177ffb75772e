"""The outbox of an asyncio client: a large frame masked on its way out, a piece at a
time, and the frames held back behind it. Also :func:`stable`: what a transport may
keep must not change.

The core hands a client frame whose payload is over 1 MiB to the front end as a
:class:`~blazews.sansio.frames.MaskLater` (``Protocol.mask_later``) instead of a
whole masked copy. The connection then writes it through an :class:`Outbox`: each
piece is masked into a pooled 1 MiB buffer and written; the pump stops while the
transport's write buffer is above its high-water mark and goes on when it drains
(``resume_writing``). Everything the core produces meanwhile (pongs, other messages,
the close frame) waits in the outbox behind it, in order: nothing may come between
the bytes of one frame.

A transport may keep a reference to what it was given instead of a copy (uvloop
does, for the part it could not write at once): a piece buffer goes back into
service only if the transport's write buffer is empty after the write; otherwise it
is left to the transport, and the next piece takes another buffer. So a send holds
at most about the high-water mark plus a piece, where a whole masked copy holds the
whole message once more.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from ..buffers import _MASK_PIECE, _SEND_PIECES
from ..sansio.frames import MaskLater

__all__ = ["Outbox", "stable"]


def stable(data: Any, least: int) -> Any:
    """Return ``data``, or a ``bytes`` copy of it if it may change while the transport
    still holds it: a bytes-like object of at least ``least`` bytes (the size from
    which the core sends a payload as itself: a server's over ``COALESCE_MAX``, a
    client's masked later) that is not backed by ``bytes``.

    uvloop keeps a reference to what it could not write at once, so a bytearray
    refilled after ``send`` returned would go out with its new content. A view of
    ``bytes`` is never copied: it comes back as the bytes, or as a view of its own
    (the caller may release theirs, as a Listener does its borrowed payloads).
    """
    view = memoryview(data)
    obj = view.obj
    if type(obj) is bytes:
        return obj if view.nbytes == len(obj) else view
    if view.nbytes < least:
        return data
    return view.tobytes()


class Outbox:
    """Chunks from ``data_to_send()`` not written yet, the first a frame under way."""

    __slots__ = ("_at", "_chunks", "_piece", "lost")

    def __init__(self, chunks: list[Any]) -> None:
        self._chunks: deque[Any] = deque(chunks)
        self._at = 0  # bytes of the first chunk written, if it is a MaskLater
        self._piece: bytearray | None = None  # the piece buffer, while it is ours
        self.lost = False  # whether chunks were dropped, never written

    def add(self, chunks: list[Any]) -> None:
        """Hold ``chunks`` behind what is already here."""
        self._chunks.extend(chunks)

    def pump(self, transport: asyncio.Transport, paused: Callable[[], bool]) -> bool:
        """Write to ``transport`` until everything is written (return True) or
        ``paused()`` says the transport's buffer is full (return False).

        A closing transport takes nothing more: what is left is dropped (True).
        """
        chunks = self._chunks
        try:
            while chunks:
                if transport.is_closing():
                    self.drop()
                    break
                if paused():
                    return False
                if type(chunks[0]) is not MaskLater:
                    plain = [chunks.popleft()]
                    while chunks and type(chunks[0]) is not MaskLater:
                        plain.append(chunks.popleft())
                    transport.writelines(plain)
                    continue
                self._write_piece(transport, chunks[0])
        except BaseException:
            self.drop()
            raise
        self._give_back()
        return True

    def _write_piece(self, transport: asyncio.Transport, frame: MaskLater) -> None:
        buf = self._piece
        if buf is None:
            buf = _SEND_PIECES.get(_MASK_PIECE)
        self._piece = None
        n = frame.fill(buf, self._at)
        piece: Any = buf if n == len(buf) else memoryview(buf)[:n]
        transport.write(piece)
        if not transport.get_write_buffer_size():  # all in the kernel: ours again
            if piece is not buf:
                piece.release()
            self._piece = buf
        # else the transport may hold on to it: it is the transport's now.
        self._at += n
        if self._at == frame.length:
            self._chunks.popleft()
            self._at = 0
            frame.payload.release()  # the object sent may be resized again

    def detach(self) -> None:
        """Copy the payloads still to be written unless they are ``bytes``: their
        senders stopped waiting (a cancelled send), so those objects may change."""
        for chunk in self._chunks:
            if type(chunk) is MaskLater:
                chunk.detach()

    def drop(self) -> None:
        """Forget everything (the connection is gone)."""
        self.lost = self.lost or bool(self._chunks)
        for chunk in self._chunks:
            if type(chunk) is MaskLater:
                chunk.payload.release()
        self._chunks.clear()
        self._at = 0
        self._give_back()

    def _give_back(self) -> None:
        if self._piece is not None:
            _SEND_PIECES.put(self._piece)
            self._piece = None
