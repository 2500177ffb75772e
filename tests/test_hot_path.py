"""The per-message shortcuts of the read and send paths give what the general paths give.

Each shortcut skips work for the common case of a message (a view made per read, a
buffer export per frame built, a method looked up by name per write); each test here
puts the cases next to it through the same call and checks the outcome. Like every
test, they run in both builds and at every SIMD level.
"""

from __future__ import annotations

import array
import os
from typing import Any

import pytest

from helpers import client, parse_frames, server

# Around each header length boundary, and around the 64 KiB past which a frame is
# built with the GIL let go (the shortcut stops short of it).
SIZES = [0, 1, 125, 126, 4096, 65535, 65536, 70000]


def payload_kinds(data: bytes) -> dict[str, Any]:
    """``data`` as each kind of object an application may send."""
    n = len(data)
    spread = bytearray(2 * n)
    spread[::2] = data
    kinds: dict[str, Any] = {
        "bytes": data,
        "bytearray": bytearray(data),
        "view": memoryview(data),
        "view of part": memoryview(b"ab" + data + b"cd")[2 : 2 + n],
        "signed view": memoryview(data).cast("b"),
        "char view": memoryview(data).cast("c"),
        "strided view": memoryview(spread)[::2],
    }
    if n % 2 == 0 and n:
        kinds["2-D view"] = memoryview(bytearray(data)).cast("B", (n // 2, 2))
    if n % 4 == 0:
        kinds["int view"] = memoryview(array.array("i", data))
    return kinds


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("side", ["server", "client"])
def test_every_kind_of_payload_makes_the_same_frame(size: int, side: str) -> None:
    data = os.urandom(size)
    for name, payload in payload_kinds(data).items():
        proto = server() if side == "server" else client()
        proto.send_binary(payload)
        # (A server sends a large payload as itself, beside its header: any view.)
        (sent,) = parse_frames(b"".join(memoryview(p).tobytes() for p in proto.data_to_send()))
        assert (sent.opcode, sent.fin, sent.masked) == (2, True, side == "client"), name
        assert sent.payload == data, name


def test_a_released_view_is_refused_at_every_size() -> None:
    for size in (10, 70000):
        view = memoryview(bytearray(size))
        view.release()
        for proto in (server(), client()):
            with pytest.raises(ValueError):
                proto.send_binary(view)
            assert proto.data_to_send() == []
