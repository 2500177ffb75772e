"""A Listener connection keeps its write buffer bounded when the peer does not read.

The README's Listener echo, fed by a client that never reads, once buffered every echo
(4,096 messages of 64 KiB: +250 MiB). Now reading stops while the write buffer is above
``write_limit``, a listener may pause reading itself, and a listener that sends without
waiting is cut off with 1008 past ``max_write_buffer``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, ClassVar

import pytest

import blazews
from blazews import ConnectionClosed, Listener, ListenerConnection, MessageType
from tests.helpers import blocking_client, frame

MiB = 1 << 20


def _send_for(sock: socket.socket, frame: bytes, seconds: float) -> int:
    """Send ``frame`` again and again, without blocking, for ``seconds``; return the
    bytes the server took."""
    sock.setblocking(False)
    sent, view, deadline = 0, memoryview(frame), time.monotonic() + seconds
    pos = 0
    while time.monotonic() < deadline:
        try:
            n = sock.send(view[pos:])
        except BlockingIOError:
            time.sleep(0.002)
            continue
        sent += n
        pos = (pos + n) % len(frame)
    return sent


class Echo(Listener):
    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        conn.send(payload, kind)


async def _only_connection(server: blazews.Server) -> Any:
    for _ in range(200):
        if server.connections:
            return next(iter(server.connections))
        await asyncio.sleep(0.005)
    raise AssertionError("no connection")


async def test_an_echo_to_a_peer_that_never_reads_stays_bounded() -> None:
    async with blazews.serve_listener(Echo, "127.0.0.1", 0, ping_interval=None) as server:
        sock = await asyncio.to_thread(blocking_client, server.port, 4096)
        with sock:
            conn = await _only_connection(server)
            message = frame(0x2, mask=True, payload=bytes(64 * 1024))
            sent = await asyncio.to_thread(_send_for, sock, message, 1.0)
            buffered = conn.transport.get_write_buffer_size()
            # Reading stopped soon after the buffer passed write_limit (64 KiB): what is
            # buffered is that plus about one read's echoes, not all that was sent.
            assert buffered < 2 * MiB, buffered
            assert conn.handle.is_writing_paused
            assert conn.transport.is_reading() is False
            assert sent < 40 * MiB  # TCP pushed back on the sender too
            assert conn.state is blazews.State.OPEN  # paused, not cut off


class Pusher(Listener):
    """Sends 64 MiB in 1 MiB messages as soon as it is connected, never waiting."""

    outcome: ClassVar[list[str]] = []

    def on_connect(self, conn: ListenerConnection) -> None:
        try:
            for _ in range(64):
                conn.send(bytes(MiB))
        except ConnectionClosed:
            Pusher.outcome.append("closed")
        else:
            Pusher.outcome.append("all sent")


async def test_a_listener_that_sends_without_waiting_is_cut_off_at_max_write_buffer() -> None:
    Pusher.outcome = []
    async with blazews.serve_listener(
        Pusher, "127.0.0.1", 0, max_write_buffer=4 * MiB, ping_interval=None
    ) as server:
        sock = await asyncio.to_thread(blocking_client, server.port, 4096)
        with sock:
            conn = await _only_connection(server)
            for _ in range(200):
                if Pusher.outcome:
                    break
                await asyncio.sleep(0.005)
            assert Pusher.outcome == ["closed"]
            assert conn.protocol.close_sent is not None
            assert conn.protocol.close_sent.code == 1008
            assert conn.transport.get_write_buffer_size() < 4 * MiB + 2 * MiB


class Holder(Listener):
    seen: ClassVar[list[bytes]] = []

    def on_connect(self, conn: ListenerConnection) -> None:
        conn.pause_reading()
        Holder.handle = conn

    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        Holder.seen.append(bytes(payload))


async def test_a_listener_pauses_and_resumes_reading() -> None:
    Holder.seen = []
    async with blazews.serve_listener(Holder, "127.0.0.1", 0, ping_interval=None) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as client:
            await client.send(b"one")
            await client.send(b"two")
            await asyncio.sleep(0.2)
            assert Holder.seen == []  # paused: nothing read
            Holder.handle.resume_reading()
            for _ in range(200):
                if len(Holder.seen) == 2:
                    break
                await asyncio.sleep(0.005)
            assert Holder.seen == [b"one", b"two"]


@pytest.mark.parametrize(
    ("entry", "call"),
    [
        ("serve", lambda: blazews.serve(lambda c: None, "127.0.0.1", 0, max_write_buffer=1)),
        ("connect", lambda: blazews.connect("ws://127.0.0.1:9/", max_write_buffer=1)),
    ],
)
def test_the_coroutine_api_refuses_max_write_buffer(entry: str, call: Any) -> None:
    with pytest.raises(
        TypeError, match="takes no 'max_write_buffer' option: a coroutine send waits"
    ):
        call()
