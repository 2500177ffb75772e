"""The asyncio servers end a connection without a TCP reset, even with bytes unread.

A server that fails a connection (or answers a close) while the peer is still sending
must write its close frame, half-close, read and discard until the peer's FIN (or
``close_timeout``), and only then close: closing a socket with unread bytes makes the
kernel send RST, and a peer whose stack drops unread data on RST never reads the close
code. Each case is a raw blocking client that keeps sending after the server's close,
then reads to the end: it must get the close frame and then EOF, never ECONNRESET.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

import blazews
from blazews import Listener, ListenerConnection, MessageType
from tests.helpers import RawServer, blocking_client, frame


def _keep_sending_then_read_to_the_end(sock: socket.socket, first: bytes) -> bytes:
    """Send ``first``, then junk frames for a while (the server closes meanwhile),
    half-close, and read everything to EOF. Raises ConnectionResetError on a reset."""
    sock.sendall(first)
    junk = frame(0x2, mask=True, payload=b"j" * 1024)
    deadline = time.monotonic() + 0.3
    sock.setblocking(False)
    try:
        while time.monotonic() < deadline:
            try:
                sock.send(junk)
            except BlockingIOError:
                time.sleep(0.001)
    finally:
        sock.setblocking(True)
    sock.settimeout(10)
    sock.shutdown(socket.SHUT_WR)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _close_code(received: bytes) -> int:
    """The code of the close frame the server sent (the last frame, unmasked)."""
    at = received.rfind(b"\x88")
    assert at >= 0, received[-40:]
    length = received[at + 1]
    assert 2 <= length <= 125 and at + 2 + length == len(received), received[at:]
    return int.from_bytes(received[at + 2 : at + 4], "big")


class _Echo(Listener):
    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        conn.send(payload, kind)


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


def _server(api: str, **options: Any) -> Any:
    if api == "listener":
        return blazews.serve_listener(_Echo, "127.0.0.1", 0, **options)
    return blazews.serve(_echo, "127.0.0.1", 0, **options)


_CLOSE_1000 = frame(0x8, mask=True, payload=b"\x03\xe8")

CASES = {
    # A text frame larger than max_message_size: the server fails it with 1009.
    "too-big": (frame(0x1, mask=True, payload=b"x" * 1010), 1009),
    # The client closes, then sends a data frame anyway: the server answered 1000.
    "data-after-close": (
        frame(0x8, mask=True, payload=b"\x03\xe8") + frame(0x2, mask=True, payload=b"late"),
        1000,
    ),
    # A ping longer than 125 bytes (1002), with the client's close queued behind it.
    "bad-ping": (
        frame(0x9, mask=True, payload=b"p" * 126) + frame(0x8, mask=True, payload=b"\x03\xe8"),
        1002,
    ),
}


@pytest.mark.parametrize("api", ["coroutine", "listener"])
@pytest.mark.parametrize("case", list(CASES))
async def test_the_close_frame_arrives_and_no_reset(api: str, case: str) -> None:
    first, code = CASES[case]
    async with _server(api, max_message_size=1000, ping_interval=None) as server:
        sock = await asyncio.to_thread(blocking_client, server.port)
        with sock:
            received = await asyncio.to_thread(_keep_sending_then_read_to_the_end, sock, first)
        assert _close_code(received) == code


async def test_a_peer_that_never_sends_its_fin_is_cut_off_after_close_timeout() -> None:
    # The half-closed server reads for close_timeout at most, then closes.
    async with _server("coroutine", max_message_size=1000, close_timeout=0.2) as server:
        sock = await asyncio.to_thread(blocking_client, server.port)
        with sock:
            sock.sendall(frame(0x1, mask=True, payload=b"x" * 1010))
            sock.settimeout(10)
            started = time.monotonic()
            received = b""
            while chunk := await asyncio.to_thread(sock.recv, 65536):
                received += chunk  # the close frame, then the server's FIN
            assert _close_code(received) == 1009
            for _ in range(100):  # the server lets go within close_timeout
                if not server.connections:
                    break
                await asyncio.sleep(0.02)
            assert not server.connections
            assert time.monotonic() - started < 5


async def test_a_failed_client_with_a_large_send_pending_closes_in_time() -> None:
    # A client's message over 1 MiB goes out a piece at a time (its outbox); the close
    # frame of a failure queues behind it. A server that reads nothing and keeps the
    # socket open must not keep the client's connection forever.
    release = threading.Event()

    def stalls_then_breaks_the_protocol(sock: socket.socket) -> None:
        time.sleep(0.2)  # the client's send is under way, its outbox full
        sock.sendall(bytes([0x83, 0x00]))  # a reserved opcode: the client fails (1002)
        release.wait(10)  # reads nothing, closes nothing

    server = RawServer(stalls_then_breaks_the_protocol)
    try:
        conn = await blazews.connect(
            f"ws://127.0.0.1:{server.port}/", close_timeout=0.3, ping_interval=None
        )
        sending = asyncio.create_task(conn.send(bytes(8 * 1024 * 1024)))
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert conn.close_code == 1006 or conn.protocol.close_sent is not None
        with pytest.raises(blazews.ConnectionClosed):
            await sending
    finally:
        release.set()
