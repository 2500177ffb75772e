"""What the permessage-deflate tests share: payloads compressed with the standard library,
and extensions and connections set up for them.

Compressed payloads are built here with the standard library's zlib directly (raw
deflate, sync flush, the 4-byte tail removed) rather than with the code under test,
so that a bug in the encoder cannot hide one in the decoder.
"""

from __future__ import annotations

import gc
import tracemalloc
import zlib
from typing import Any

from blazews.sansio.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from blazews.sansio.http11 import Request
from blazews.sansio.server import ServerProtocol
from tests.helpers import CONT, frame

TAIL = b"\x00\x00\xff\xff"
JSON = b'{"type":"message","channel":"general","user":"someone","text":"hello there"}' * 4


def deflate(data: bytes, wbits: int = 15, level: int = 6) -> bytes:
    """One message compressed the RFC 7692 way with stdlib zlib, on a fresh stream."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(data: bytes, wbits: int = 15) -> bytes:
    """The inverse of :func:`deflate`, with stdlib zlib."""
    return zlib.decompressobj(-wbits).decompress(data + TAIL)


def ext(**kwargs: Any) -> PerMessageDeflate:
    """An extension on the stdlib zlib backend unless told otherwise."""
    kwargs.setdefault("backend", "zlib")
    return PerMessageDeflate(**kwargs)


def fragments(opcode: int, payload: bytes, size: int) -> bytes:
    """A compressed message cut into masked frames of ``size`` payload bytes."""
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    last = len(chunks) - 1
    return b"".join(
        frame(opcode if i == 0 else CONT, c, fin=i == last, rsv=0 if i else 0x40, mask=True)
        for i, c in enumerate(chunks)
    )


def pair(**kwargs: Any) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """A sender and a receiver agreeing on the same parameters."""
    nct, wbits = kwargs.get("no_context_takeover", False), kwargs.get("wbits", 15)
    backends = kwargs.get("backends", ("zlib", "zlib"))
    sender = ext(
        local_no_context_takeover=nct,
        local_max_window_bits=wbits,
        compress_threshold=kwargs.get("threshold", 0),
        backend=backends[0],
    )
    receiver = ext(
        remote_no_context_takeover=nct, remote_max_window_bits=wbits, backend=backends[1]
    )
    return sender, receiver


def server_negotiate(header: str | None, **policy: Any) -> tuple[ServerProtocol, bytes]:
    """A server with ``policy`` answers a client offering ``header``: it, and its response."""
    policy.setdefault("backend", "zlib")
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory(**policy)])
    request = (
        "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
    if header is not None:
        request += f"Sec-WebSocket-Extensions: {header}\r\n"
    server.receive_data((request + "\r\n").encode())
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    return server, b"".join(server.data_to_send())


def traced(function: Any, *args: Any) -> tuple[int, int]:
    """Run ``function(*args)``; return the memory (current, peak) it allocated.

    ``current`` counts only what this thread allocated under ``function`` (a thread
    left running by an earlier test allocates in the same window: tracemalloc sees
    every thread), and garbage left by earlier tests is collected first, so that its
    finalizers do not run inside the window. (A whole-suite run once counted 1.9 MB
    against 40 idle extensions.) ``peak`` is the process's."""
    gc.collect()
    tracemalloc.start(_FRAMES)
    try:
        function(*args)
        _, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    mine = snapshot.filter_traces([tracemalloc.Filter(True, __file__, all_frames=True)])
    return sum(trace.size for trace in mine.traces), peak


# Frames kept per allocation: enough to reach traced() from the deepest allocation.
_FRAMES = 100
