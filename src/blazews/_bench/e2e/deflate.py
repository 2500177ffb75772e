"""What the ``deflate`` scenario's processes share: its JSON message, and permessage-deflate
on a raw socket for the connection holder.

The messages are JSON text built from fixed seeds (so every library, every process and
every run sends the same bytes): a list of order records with the same keys, a few
numbers, short strings from small vocabularies, as an API would send. A 16 KiB one
compresses about 7x at level 1 with a 4 KiB window, about 8.5x at level 6. The echo
client cycles through :data:`ECHO_MESSAGES` different ones: with context takeover and
a 32 KiB window, a message sent again and again would be found whole in the window and
shrink to almost nothing, which no real stream does.

Settings. Each library runs with its own defaults unless ``BENCH_DEFLATE_SETTINGS``
says ``blazews``: then websockets runs with blazews' default settings (see
:func:`websockets_extensions`), so that a row compares the implementations rather
than their defaults. The defaults differ in two ways that matter: websockets
compresses at zlib's default level (6) where blazews uses 1, and it keeps its
compressor per connection (context takeover) where blazews' server answers with
``server_no_context_takeover`` and pools its compressor. Both ask for 12-bit windows
both ways and use memLevel 5.

The holder speaks permessage-deflate itself (stdlib ``zlib``, no WebSocket library):
it makes the offer browsers make, ``permessage-deflate; client_max_window_bits``, so
each server answers the same offer with its own policy; it compresses what it sends
with the window the server allowed it, and checks that the server's reply came back
compressed and inflates to the message sent.
"""

from __future__ import annotations

import json
import os
import random
import socket
import zlib
from typing import Any

__all__ = [
    "ECHO_MESSAGES",
    "MEMORY_SEED",
    "OFFER",
    "SETTINGS_ENV",
    "compressed_frame",
    "echo_messages",
    "json_message",
    "parse_extensions",
    "read_compressed",
    "websockets_extensions",
    "window_bits",
]

OFFER = "permessage-deflate; client_max_window_bits"
SETTINGS_ENV = "BENCH_DEFLATE_SETTINGS"  # "" (each library's defaults) or "blazews"
ECHO_MESSAGES = 8  # distinct messages the compressed echo cycles through (seeds 0-7)
MEMORY_SEED = 100  # the idle connections' message: shares no records with the others
_TAIL = b"\x00\x00\xff\xff"
_MASK_KEY = b"\x3c\x1f\xa7\x52"

_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
_STATUSES = ("active", "pending", "closed", "archived")
_CITIES = ("Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima")


def json_message(size: int, seed: int = 0) -> bytes:
    """Return ``size`` bytes of valid JSON: a list of records, padded with spaces."""
    rng = random.Random(seed)
    records: list[bytes] = []
    total = 2  # the brackets
    while True:
        name = rng.choice(_NAMES)
        day, hour, minute = rng.randrange(1, 29), rng.randrange(24), rng.randrange(60)
        record = {
            "id": 100000 + len(records),
            "type": "order",
            "user": {"name": name, "email": f"{name}@example.com", "city": rng.choice(_CITIES)},
            "status": rng.choice(_STATUSES),
            "amount": {"value": rng.randrange(100, 50000) / 100, "currency": "EUR"},
            "items": rng.randrange(1, 9),
            "created_at": f"2024-05-{day:02d}T{hour:02d}:{minute:02d}:00Z",
            "flags": {"gift": rng.random() < 0.1, "express": rng.random() < 0.3},
        }
        text = json.dumps(record, separators=(",", ":")).encode()
        cost = len(text) + (1 if records else 0)
        if total + cost > size:
            break
        records.append(text)
        total += cost
    return b"[" + b",".join(records) + b" " * (size - total) + b"]"


def echo_messages(size: int) -> list[bytes]:
    """The messages the compressed echo sends in turn."""
    return [json_message(size, seed) for seed in range(ECHO_MESSAGES)]


def websockets_extensions(*, client: bool) -> dict[str, Any]:
    """Keyword arguments for websockets' ``serve``/``connect`` with compression on.

    Its own defaults (``compression="deflate"``: level 6, memLevel 5, 12-bit windows,
    context takeover both ways), unless ``BENCH_DEFLATE_SETTINGS=blazews``: then
    blazews' defaults, level 1, memLevel 5, 12-bit windows, and the server without
    context takeover for what it sends (the client offers what browsers offer).
    """
    if os.environ.get(SETTINGS_ENV, "") != "blazews":
        return {"compression": "deflate"}
    from websockets.extensions import permessage_deflate as wspmd

    settings = {"level": 1, "memLevel": 5}
    factory: Any
    if client:
        factory = wspmd.ClientPerMessageDeflateFactory(compress_settings=settings)
    else:
        factory = wspmd.ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings=settings,
        )
    return {"compression": None, "extensions": [factory]}


def parse_extensions(header: str) -> dict[str, str | None]:
    """The parameters of a ``permessage-deflate`` response header (``{}`` if absent)."""
    for ext in header.split(","):
        name, *params = (part.strip() for part in ext.split(";"))
        if name == "permessage-deflate":
            found: dict[str, str | None] = {}
            for param in params:
                key, eq, value = param.partition("=")
                found[key.strip()] = value.strip().strip('"') if eq else None
            return found
    return {}


def window_bits(header: str) -> tuple[int, int]:
    """The (server, client) window bits a ``permessage-deflate`` response settles on
    (15 where it sets no limit): what "the same window settings" compares."""
    params = parse_extensions(header)
    return (
        int(params.get("server_max_window_bits") or 15),
        int(params.get("client_max_window_bits") or 15),
    )


def compressed_frame(payload: bytes, compressor: zlib._Compress) -> bytes:
    """One final, masked binary frame with RSV1: ``payload`` through ``compressor``."""
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_TAIL):
        data = data[:-4]
    size = len(data)
    if size < 126:
        header = bytes([0xC2, 0x80 | size])
    elif size < 65536:
        header = bytes([0xC2, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0xC2, 0x80 | 127]) + size.to_bytes(8, "big")
    stream = (_MASK_KEY * (size // 4 + 1))[:size]
    masked = (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
    return header + _MASK_KEY + masked


def _recv_exactly(sock: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise ConnectionError("server closed the connection during the exchange")
        buf += chunk
    data = bytes(buf[:n])
    del buf[:n]
    return data


def read_compressed(
    sock: socket.socket, buf: bytearray, inflater: zlib._Decompress
) -> tuple[int, bytes]:
    """Read one unfragmented server frame; return its wire size and inflated payload.

    Raises:
        ConnectionError: The frame is not a final data frame with RSV1 (compressed).
    """
    b0, b1 = _recv_exactly(sock, 2, buf)
    size, header = b1 & 0x7F, 2
    if size == 126:
        size, header = int.from_bytes(_recv_exactly(sock, 2, buf), "big"), 4
    elif size == 127:
        size, header = int.from_bytes(_recv_exactly(sock, 8, buf), "big"), 10
    payload = _recv_exactly(sock, size, buf)
    if b0 & 0xF0 != 0xC0 or b0 & 0x0F not in (1, 2):
        raise ConnectionError(f"expected a final compressed data frame, got 0x{b0:02x}")
    return header + size, inflater.decompress(payload + _TAIL)
