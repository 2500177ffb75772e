"""The blocking client sends large messages masked a piece at a time (``MaskLater``).

It masks a frame the core handed over unmasked through a pooled 1 MiB buffer while it
writes: the bytes on the wire are checked against a reference parser, and sending a
large message allocates no masked copy of it. (The pieces themselves:
tests/sansio/test_mask_later.py.)
"""

from __future__ import annotations

import os
import socket
import tracemalloc

import pytest

from blazews import IMPLEMENTATION, sync
from tests.helpers import BINARY, MiB, RawServer, parse_frames


def received_by_raw_server() -> tuple[RawServer, list[bytes]]:
    """A raw server that keeps every byte it receives until the client closes."""
    got: list[bytes] = []

    def sink(sock: socket.socket) -> None:
        while chunk := sock.recv(1 << 20):
            got.append(chunk)

    return RawServer(sink), got


@pytest.mark.parametrize("size", [MiB + 1, 3 * MiB + 5])
def test_the_blocking_client_sends_large_messages_masked_in_pieces(size: int) -> None:
    server, got = received_by_raw_server()
    payload = os.urandom(size)
    conn = sync.connect(f"ws://127.0.0.1:{server.port}/", compression=None)
    conn.send(payload)
    conn.send(b"after")
    conn.send(bytearray(payload))
    conn.socket.shutdown(socket.SHUT_WR)
    server.thread.join(10)
    conn.close()
    frames = parse_frames(b"".join(got))
    assert [(f.opcode, f.masked) for f in frames] == [(BINARY, True)] * 3
    assert [f.payload for f in frames] == [payload, b"after", payload]


def test_sending_a_large_message_allocates_no_copy_of_it() -> None:
    # (The bytes are checked above; here the sink only counts them, allocating nothing
    # per read: the server thread's memory is traced too.)
    buf = bytearray(MiB)
    head = bytearray()
    count = [0]

    def sink(sock: socket.socket) -> None:
        while n := sock.recv_into(buf):
            if not count[0]:
                head.extend(buf[:14])
            count[0] += n

    server = RawServer(sink)
    payload = os.urandom(16 * MiB)
    conn = sync.connect(f"ws://127.0.0.1:{server.port}/", compression=None)
    tracemalloc.start()
    try:
        conn.send(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One 1 MiB piece buffer (none if the pool kept one), not a 16 MiB masked copy.
    # (The pure-Python mask_bytes makes a few piece-sized temporaries of its own.)
    assert peak < (2 * MiB if IMPLEMENTATION == "compiled" else 6 * MiB), peak
    conn.socket.shutdown(socket.SHUT_WR)
    server.thread.join(10)
    conn.close()
    assert count[0] == 14 + 16 * MiB
    assert head[:10] == bytes((0x82, 0x80 | 127)) + (16 * MiB).to_bytes(8, "big")
