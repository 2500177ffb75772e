"""Debug tracing of an asyncio connection: shims around its protocol and transport
that show the tracers (:mod:`blazews.sansio.trace`) every byte read and written.
Installed only on a connection made while its logger is enabled for ``DEBUG``."""

from __future__ import annotations

import asyncio
from typing import Any

from .._logging import safe_feed
from ..sansio.trace import StreamTracer

__all__ = ["TracedProtocol", "TracedTransport"]


class TracedProtocol(asyncio.BufferedProtocol):
    """What the transport calls instead of the connection: reads are traced first."""

    def __init__(self, conn: Any, tracer: StreamTracer) -> None:
        self.conn = conn
        self.tracer = tracer
        self.buffer: Any = None

    def get_buffer(self, sizehint: int) -> Any:
        self.buffer = self.conn.get_buffer(sizehint)
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        safe_feed(self.tracer, memoryview(self.buffer)[:nbytes])
        self.buffer = None
        self.conn.buffer_updated(nbytes)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover
        self.conn.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self.conn.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class TracedTransport:
    """The connection's transport, with writes traced first."""

    def __init__(self, transport: asyncio.Transport, tracer: StreamTracer) -> None:
        self._transport = transport
        self._tracer = tracer

    def write(self, data: Any) -> None:
        safe_feed(self._tracer, data)
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        chunks = list(chunks)
        for chunk in chunks:
            safe_feed(self._tracer, chunk)
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
