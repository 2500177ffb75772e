"""blazews.broadcast: one frame for many connections, and each slow-consumer policy
against a real slow reader (a raw socket client that never reads, small buffers)."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

import blazews
from blazews import Listener, ListenerConnection, MessageType
from blazews.sansio.extensions import _deflate_codec
from tests.helpers import CLOSE, blocking_client, parse_frames, run_on

KiB = 1024


async def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _hold(conn: blazews.ServerConnection) -> None:
    await conn.wait_closed()


async def _collect(conn: blazews.ClientConnection, into: list[Any]) -> None:
    try:
        async for message in conn:
            into.append(message)
    except blazews.ConnectionClosed:
        pass


def _server_socket(conn: Any) -> socket.socket:
    return conn.transport.get_extra_info("socket")  # type: ignore[no-any-return]


def _read_all(sock: socket.socket) -> bytes:
    """Read until the server ends the TCP connection (blocking; in a thread)."""
    sock.settimeout(20)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _close_code(frames: list[Any]) -> int:
    last = frames[-1]
    assert last.opcode == CLOSE
    return int(struct.unpack("!H", last.payload[:2])[0])


async def test_every_connection_gets_the_message_once() -> None:
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        clients = [await blazews.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(5)]
        got: list[list[Any]] = [[] for _ in clients]
        tasks = [asyncio.create_task(_collect(c, g)) for c, g in zip(clients, got, strict=True)]
        await _wait_for(lambda: len(server.connections) == 5)
        result = blazews.broadcast(server.connections, "hello")
        assert result == blazews.BroadcastResult(delivered=5)
        result = blazews.broadcast(server.connections, b"\x00\x01" * 300)
        assert result.delivered == 5
        await _wait_for(lambda: all(len(g) == 2 for g in got))
        assert all(g == ["hello", b"\x00\x01" * 300] for g in got)
        await clients[0].close()
        await _wait_for(lambda: len(server.connections) == 4)
        conns = [*server.connections, clients[0]]
        assert blazews.broadcast(conns, "x").not_open == 1  # the closed client
        for c in clients[1:]:
            await c.close()
        await asyncio.gather(*tasks)


async def test_compressed_once_for_the_server_default(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = _deflate_codec._deflate

    def counting(compressor: Any, payload: Any, mode: int) -> bytes:
        calls.append(len(payload))
        return real(compressor, payload, mode)

    monkeypatch.setattr(_deflate_codec, "_deflate", counting)
    message = '{"price": 101.25, "symbol": "ABC"}' * 30
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        clients = [await blazews.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(4)]
        await _wait_for(lambda: len(server.connections) == 4)
        calls.clear()
        assert blazews.broadcast(server.connections, message).delivered == 4
        assert calls == [len(message.encode())]  # once, not once per connection
        for c in clients:
            assert await asyncio.wait_for(c.recv(), 10) == message
        for c in clients:
            await c.close()


class _Keep(Listener):
    conns: list[ListenerConnection] = []  # noqa: RUF012 (the test's registry)
    got: list[bytes] = []  # noqa: RUF012

    def on_connect(self, conn: ListenerConnection) -> None:
        self.conns.append(conn)


async def test_listener_handles_and_server_connections_alike() -> None:
    _Keep.conns = []
    async with blazews.serve_listener(_Keep, "127.0.0.1", 0, ping_interval=None) as server:
        clients = [await blazews.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(3)]
        await _wait_for(lambda: len(_Keep.conns) == 3)
        assert blazews.broadcast(_Keep.conns, "one").delivered == 3
        assert blazews.broadcast(server.connections, "two").delivered == 3
        for c in clients:
            assert await asyncio.wait_for(c.recv(), 10) == "one"
            assert await asyncio.wait_for(c.recv(), 10) == "two"
            await c.close()


class _Echo(Listener):
    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        blazews.broadcast([conn], payload)  # from inside a callback, a borrowed payload


async def test_from_inside_a_listener_callback() -> None:
    async with blazews.serve_listener(_Echo, "127.0.0.1", 0, ping_interval=None) as server:
        async with blazews.connect(f"ws://127.0.0.1:{server.port}/") as c:
            await c.send(b"abc")
            assert await asyncio.wait_for(c.recv(), 10) == b"abc"


async def _slow_setup(server: blazews.Server) -> tuple[socket.socket, Any, Any, list[Any], Any]:
    """A raw client that never reads (4 KiB receive buffer, the server's send buffer
    cut to 4 KiB too) and a blazews client that reads everything."""
    sock = await asyncio.to_thread(blocking_client, server.port, 4096)
    await _wait_for(lambda: len(server.connections) == 1)
    slow = next(iter(server.connections))
    _server_socket(slow).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    fast = await blazews.connect(f"ws://127.0.0.1:{server.port}/", max_queue=1024)
    got: list[Any] = []
    task = asyncio.create_task(_collect(fast, got))
    await _wait_for(lambda: len(server.connections) == 2)
    return sock, slow, fast, got, task


async def _blast(server: blazews.Server, n: int, **kwargs: Any) -> list[blazews.BroadcastResult]:
    results = []
    for i in range(n):
        results.append(blazews.broadcast(server.connections, i.to_bytes(4, "big") * 4096, **kwargs))
        await asyncio.sleep(0)  # the fast reader's turn
    return results


async def test_skip_leaves_the_slow_reader_out_and_its_buffer_bounded() -> None:
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        sock, slow, fast, got, task = await _slow_setup(server)
        with sock:
            results = await _blast(server, 100)
            assert sum(r.skipped for r in results) > 50
            assert sum(r.closed for r in results) == 0
            assert all(r.delivered + r.skipped == 2 for r in results)
            # Bounded: what was buffered before it counted as slow, plus one message.
            assert slow.transport.get_write_buffer_size() <= 64 * KiB + 16 * KiB
            await _wait_for(lambda: len(got) == 100)
            assert [m[:4] for m in got] == [i.to_bytes(4, "big") for i in range(100)]
            assert slow.protocol.state is blazews.State.OPEN  # skipped, not closed
            await fast.close()
        await task


@pytest.mark.parametrize("code", [1008, 1013])
async def test_close_closes_the_slow_reader_at_once(code: int) -> None:
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None, close_timeout=10) as server:
        sock, _, fast, got, task = await _slow_setup(server)
        with sock:
            results = await _blast(server, 30, slow="close", close_code=code)
            assert sum(r.closed for r in results) == 1
            assert results[-1] == blazews.BroadcastResult(delivered=1, not_open=1)
            data = await asyncio.to_thread(_read_all, sock)  # now it reads
            frames = parse_frames(data)
            assert _close_code(frames) == code
            received = [f.payload[:4] for f in frames[:-1]]
            assert received == [i.to_bytes(4, "big") for i in range(len(received))]
            await _wait_for(lambda: len(got) == 30)
            await fast.close()
        await task


async def test_queue_buffers_up_to_the_cap_then_closes() -> None:
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None, close_timeout=10) as server:
        sock, _, fast, got, task = await _slow_setup(server)
        with sock:
            cap = 256 * KiB
            results = await _blast(server, 60, slow="queue", max_queued=cap)
            closed_at = next(i for i, r in enumerate(results) if r.closed)
            # It got messages past the high-water mark (64 KiB), up to the cap.
            assert closed_at * 16 * KiB > 64 * KiB + 4 * 16 * KiB
            assert all(r.skipped == 0 for r in results)
            assert sum(r.closed for r in results) == 1
            data = await asyncio.to_thread(_read_all, sock)
            frames = parse_frames(data)
            assert _close_code(frames) == 1008
            assert [f.payload[:4] for f in frames[:-1]] == [
                i.to_bytes(4, "big") for i in range(len(frames) - 1)
            ]
            assert len(frames) - 1 >= closed_at  # what was queued reached it, in order
            await _wait_for(lambda: len(got) == 60)
            await fast.close()
        await task


async def test_a_compressor_busy_in_a_thread_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    from blazews.sansio.broadcast import PreparedMessage
    from blazews.sansio.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    made: list[bool] = []

    class Spy(PreparedMessage):
        __slots__ = ()

        def __init__(self, message: Any, *, compress: bool = True) -> None:
            made.append(compress)
            super().__init__(message, compress=compress)

    module = importlib.import_module("blazews.asyncio.broadcast")  # (not the function)
    monkeypatch.setattr(module, "PreparedMessage", Spy)

    # Context takeover: each connection compresses with its own compressor, which a
    # large send holds in a worker thread meanwhile: the broadcast goes uncompressed.
    factory = ServerPerMessageDeflateFactory(server_no_context_takeover=False)
    big = "x" * (1 << 20)
    async with blazews.serve(
        _hold, "127.0.0.1", 0, ping_interval=None, extensions=[factory], compress_in_thread=1024
    ) as server:
        client = await blazews.connect(f"ws://127.0.0.1:{server.port}/", max_message_size=None)
        await _wait_for(lambda: len(server.connections) == 1)
        (conn,) = server.connections
        sending = asyncio.create_task(conn.send(big))
        await asyncio.sleep(0)  # the send is under way, in the thread's hands
        assert conn._send_chain is not None and not conn._send_chain.done()
        assert blazews.broadcast([conn], "small " * 100).delivered == 1
        assert made == [True, False]  # the message, then its uncompressed form
        await sending
        got = {await asyncio.wait_for(client.recv(), 10) for _ in range(2)}
        assert got == {big, "small " * 100}
        await client.close()


async def test_a_frame_the_core_holds_goes_out_before_the_broadcast() -> None:
    # The compiled loop writes a prepared frame straight to the transport only when
    # the core holds nothing to send first; a ping queued in the core (not flushed
    # yet) must reach the peer before the broadcast message, on every build.
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        sock = await asyncio.to_thread(blocking_client, server.port)
        try:
            await _wait_for(lambda: len(server.connections) == 1)
            (conn,) = server.connections
            conn.protocol.send_ping(b"first")
            assert conn.protocol.holds_output()
            assert blazews.broadcast([conn], b"second").delivered == 1
            assert not conn.protocol.holds_output()
            data = b""
            while len(data) < 2 + 5 + 2 + 6:
                data += await asyncio.to_thread(sock.recv, 4096)
            frames = parse_frames(data)
            assert [(f.opcode, f.payload) for f in frames] == [(0x9, b"first"), (0x2, b"second")]
        finally:
            sock.close()


async def test_frames_stay_whole_and_in_order_when_the_socket_takes_part() -> None:
    # The compiled build writes a broadcast frame to the socket itself where the
    # transport holds nothing: a socket that takes only part of it (a 4 KiB send
    # buffer, a peer that reads later) must get the rest through the transport,
    # and every later frame after it, on every build.
    async with blazews.serve(
        _hold, "127.0.0.1", 0, ping_interval=None, write_limit=64 * 1024 * 1024
    ) as server:
        sock = await asyncio.to_thread(blocking_client, server.port, 4096)
        try:
            await _wait_for(lambda: len(server.connections) == 1)
            (conn,) = server.connections
            _server_socket(conn).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sent = [bytes([i]) * (3000 + 7 * i) for i in range(200)]
            held_back = 0
            for message in sent:
                result = blazews.broadcast([conn], message)
                assert result.delivered == 1
                held_back += conn.transport.get_write_buffer_size() > 0
            assert held_back  # the socket filled: the transport holds the rest
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            size = sum(len(m) + 4 for m in sent)  # (a 4-byte header: 126..65535 bytes)
            data = b""
            while len(data) < size:
                data += await asyncio.to_thread(sock.recv, 1 << 20)
            frames = parse_frames(data)
            assert [f.payload for f in frames] == sent
        finally:
            sock.close()


async def test_a_broadcast_to_a_peer_that_reset_raises_nothing_and_closes_it() -> None:
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        sock = await asyncio.to_thread(blocking_client, server.port)
        await _wait_for(lambda: len(server.connections) == 1)
        (conn,) = server.connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset: the server's writes fail
        await asyncio.sleep(0.05)
        for _ in range(3):
            blazews.broadcast([conn], b"to nobody")  # must not raise
            await asyncio.sleep(0.01)
        await asyncio.wait_for(conn.wait_closed(), 10)
        assert conn.state is blazews.State.CLOSED


async def test_the_compiled_build_writes_to_an_idle_socket_itself() -> None:
    # Where the transport holds nothing, the frame goes to the socket with one
    # send(2): the transport's write is not called (compiled build); the pure build
    # writes through the transport. The peer gets the same bytes either way.
    async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
        sock = await asyncio.to_thread(blocking_client, server.port)
        try:
            await _wait_for(lambda: len(server.connections) == 1)
            (conn,) = server.connections
            calls: list[bytes] = []
            transport_write = conn.transport.write
            conn.transport.write = lambda data: (calls.append(data), transport_write(data))
            assert blazews.broadcast([conn], b"direct").delivered == 1
            compiled = blazews.IMPLEMENTATION == "compiled"
            assert len(calls) == (0 if compiled else 1)
            data = b""
            while len(data) < 2 + 6:
                data += await asyncio.to_thread(sock.recv, 4096)
            assert [(f.opcode, f.payload) for f in parse_frames(data)] == [(0x2, b"direct")]
        finally:
            sock.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_long_mixed_list_each_open_connection_once(loop: str) -> None:
    # The compiled loop resolves every item first and loads the next connections'
    # objects ahead of the one it writes to: closed connections and a connection
    # given again and again in between must neither shift nor skip a write. Each
    # open connection gets one whole frame per time it is listed, on either loop.
    async def main() -> None:
        async with blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as server:
            socks = [await asyncio.to_thread(blocking_client, server.port) for _ in range(12)]
            await _wait_for(lambda: len(server.connections) == 12)
            conns = list(server.connections)
            peer = {c.transport.get_extra_info("peername"): c for c in conns}
            sock_of = {id(peer[s.getsockname()]): s for s in socks}
            gone = conns[3::4]  # three whose peers leave before the broadcast
            for conn in gone:
                sock_of[id(conn)].close()
            await _wait_for(lambda: all(c.state is blazews.State.CLOSED for c in gone))
            items: list[Any] = []
            for i, conn in enumerate(conns):
                items.append(conn)
                if i % 5 == 0:
                    items.append(conns[0])
                if i % 4 == 1:
                    items.append(gone[0])  # a closed one again
            result = blazews.broadcast(items, b"m" * 40)
            assert result == blazews.BroadcastResult(delivered=9 + 3, not_open=3 + 3)
            for conn in conns:
                if conn in gone:
                    continue
                want = 4 if conn is conns[0] else 1
                sock = sock_of[id(conn)]
                data = b""
                while len(data) < want * 42:
                    data += await asyncio.to_thread(sock.recv, 4096)
                frames = parse_frames(data)
                assert [(f.opcode, f.payload) for f in frames] == [(0x2, b"m" * 40)] * want
            for sock in socks:
                sock.close()

    run_on(loop, main)


async def test_connections_of_two_compression_settings_interleaved() -> None:
    # Each setting gets its own frame, even listed in turns: with a threshold above
    # the message's size, a connection sends it uncompressed (RSV1 clear); with the
    # default threshold, compressed.
    from blazews.sansio.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    high = ServerPerMessageDeflateFactory(compress_threshold=4096)
    message = b"abcdefgh" * 100
    async with (
        blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None) as default,
        blazews.serve(_hold, "127.0.0.1", 0, ping_interval=None, extensions=[high]) as above,
    ):
        servers = (default, above) * 3
        socks = [await asyncio.to_thread(blocking_client, s.port, None, offer) for s in servers]
        try:
            await _wait_for(lambda: len(default.connections) == len(above.connections) == 3)
            pairs = zip(default.connections, above.connections, strict=True)
            items = [c for pair in pairs for c in pair]
            assert all(c.protocol.extensions for c in items)  # permessage-deflate on each
            assert blazews.broadcast(items, message).delivered == 6
            for server, sock in zip(servers, socks, strict=True):
                data = b""
                while not parse_frames(data):
                    data += await asyncio.to_thread(sock.recv, 65536)
                (f,) = parse_frames(data)
                if server is above:
                    assert (f.rsv, f.payload) == (0, message)
                else:
                    assert f.rsv == 0x40
                    assert len(f.payload) < len(message)
        finally:
            for sock in socks:
                sock.close()
