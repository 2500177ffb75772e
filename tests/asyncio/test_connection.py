"""The asyncio front end over real loopback sockets: connect(), serve(), Connection."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trustme

import blazews
from blazews import (
    BufferTooSmall,
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    MessageType,
)
from tests.helpers import echo_handler as echo
from tests.helpers import frame

Handler = Callable[[Any], Awaitable[None]]


@pytest.fixture
async def echo_server() -> AsyncIterator[blazews.Server]:
    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        yield server


def url(server: blazews.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def raw_handshake(
    port: int, extra: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection and do the opening handshake by hand."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + masked


async def test_echo_text_binary_empty_and_large(echo_server: blazews.Server) -> None:
    async with blazews.connect(url(echo_server)) as conn:
        for message in ["héllo", b"\x00\xff", "", b"", os.urandom(1 << 20)[: (1 << 20) - 16]]:
            await conn.send(message)
            assert await conn.recv() == message
        await conn.send(memoryview(b"abcdef")[1:4])
        assert await conn.read_message() == (MessageType.BINARY, b"bcd")
        await conn.send(bytearray(b"xyz"))
        kind, data = await conn.read_message()
        assert kind is MessageType.BINARY and data == b"xyz"


async def test_read_message_into_and_buffer_too_small(echo_server: blazews.Server) -> None:
    async with blazews.connect(url(echo_server)) as conn:
        await conn.send(b"0123456789")
        small = bytearray(4)
        with pytest.raises(BufferTooSmall) as info:
            await conn.read_message_into(small)
        assert info.value.needed == 10
        big = bytearray(64)
        assert await conn.read_message_into(big) == (MessageType.BINARY, 10)
        assert big[:10] == b"0123456789"
        await conn.send("text")
        view = memoryview(bytearray(16))[3:]
        assert await conn.read_message_into(view) == (MessageType.TEXT, 4)
        assert bytes(view[:4]) == b"text"


async def test_batch_of_messages_in_one_read_all_delivered() -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(conn: Any) -> None:
        for _ in range(50):
            received.append(await conn.recv())
        done.set()

    async with blazews.serve(handler, "127.0.0.1", 0, max_queue=64) as server:
        _reader, writer = await raw_handshake(server.port)
        writer.write(b"".join(client_frame(2, bytes([i])) for i in range(50)))
        await asyncio.wait_for(done.wait(), 5)
        assert received == [bytes([i]) for i in range(50)]
        writer.close()


async def test_iteration_ends_on_normal_close_and_codes_are_seen() -> None:
    seen: list[Any] = []

    async def handler(conn: Any) -> None:
        try:
            async for message in conn:
                seen.append(message)
        except ConnectionClosedError as exc:
            seen.append(("error", exc.code))
        seen.append((conn.close_code, conn.close_reason))

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        conn = await blazews.connect(url(server))
        await conn.send("a")
        await conn.close(1000, "bye now")
        assert conn.close_code == 1000  # the server echoed our code
        conn = await blazews.connect(url(server))
        await conn.close(4001, "app code")
        assert conn.close_code == 4001
        await asyncio.sleep(0.05)
    # 1000/1001 end the iteration; any other code raises ConnectionClosedError.
    assert seen == ["a", (1000, "bye now"), ("error", 4001), (4001, "app code")]


async def test_handler_exception_closes_with_1011() -> None:
    async def handler(conn: Any) -> None:
        await conn.recv()
        raise RuntimeError("boom")

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server)) as conn:
            await conn.send("x")
            with pytest.raises(ConnectionClosedError) as info:
                await conn.recv()
            assert info.value.code == 1011


async def test_handler_ended_by_a_normal_close_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The README's echo, met by a client that closes right after sending: the reply's
    # send raises ConnectionClosedOK, which ends the handler without an error record.
    ended = asyncio.Event()

    async def handler(conn: Any) -> None:
        message = await conn.recv()
        await conn.wait_closed()
        try:
            await conn.send(message)
        finally:
            ended.set()

    with caplog.at_level(logging.DEBUG, logger="blazews"):
        async with blazews.serve(handler, "127.0.0.1", 0) as server:
            async with blazews.connect(url(server)) as conn:
                await conn.send("bye")
            await asyncio.wait_for(ended.wait(), 5)
            await asyncio.sleep(0.01)  # the handler's task logs as it ends
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("handler ended" in r.message for r in caplog.records)


async def test_handler_return_closes_with_1000() -> None:
    async def handler(conn: Any) -> None:
        await conn.send("only")

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        async with blazews.connect(url(server)) as conn:
            assert await conn.recv() == "only"
            with pytest.raises(ConnectionClosedOK):
                await conn.recv()
            assert conn.close_code == 1000


async def test_ping_round_trip(echo_server: blazews.Server) -> None:
    async with blazews.connect(url(echo_server)) as conn:
        waiter = await conn.ping()
        rtt = await asyncio.wait_for(waiter, 5)
        assert isinstance(rtt, float) and 0 <= rtt < 5
        assert conn.latency == rtt
        first = await conn.ping(b"one")
        second = await conn.ping(b"two")
        await asyncio.wait_for(second, 5)
        assert first.done()  # a pong answers its ping and every earlier one
        with pytest.raises(ValueError):
            await conn.ping(b"x" * 126)


async def test_keepalive_timeout_fails_with_1011() -> None:
    closed = asyncio.Event()
    codes: list[int | None] = []

    async def handler(conn: Any) -> None:
        await conn.wait_closed()
        codes.append(conn.protocol.close_sent.code if conn.protocol.close_sent else None)
        closed.set()

    async with blazews.serve(
        handler, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.1
    ) as server:
        reader, writer = await raw_handshake(server.port)  # never answers pings
        await asyncio.wait_for(closed.wait(), 5)
        data = await asyncio.wait_for(reader.read(), 5)
        # pings (0x89) then a close frame (0x88) with code 1011; walk the frames, since
        # the random ping payloads may contain any byte
        opcodes, pos = [], 0
        while pos < len(data):
            opcodes.append(data[pos])
            payload = data[pos + 2 : pos + 2 + (data[pos + 1] & 0x7F)]
            pos += 2 + len(payload)
        assert opcodes[-1] == 0x88 and set(opcodes[:-1]) == {0x89}
        assert struct.unpack("!H", payload[:2])[0] == 1011
        writer.close()
    assert codes == [1011]


async def test_receive_queue_is_bounded_and_pauses_reading() -> None:
    release = asyncio.Event()
    connections: list[Any] = []

    async def handler(conn: Any) -> None:
        connections.append(conn)
        await release.wait()
        for _ in range(200):
            await conn.recv()

    async with blazews.serve(handler, "127.0.0.1", 0, max_queue=4) as server:
        async with blazews.connect(url(server), write_limit=16384) as conn:
            payload = os.urandom(65536)  # incompressible, whatever the extensions
            sent = 0
            try:
                with pytest.raises(asyncio.TimeoutError):
                    for _ in range(200):
                        await asyncio.wait_for(conn.send(payload), 1.0)
                        sent += 1
                assert sent < 200  # the sender was held back
                server_conn = connections[0]
                assert server_conn._queue.paused
                # One read may bring several messages, but the queue stays near max_queue.
                assert len(server_conn._queue) <= 4 + 8
            finally:
                release.set()


async def test_a_reader_that_keeps_up_does_not_pause_reading() -> None:
    # Ten messages in one write fill a queue of 4; the reader woken by that read takes
    # them all in its turn: reading is not paused meanwhile (pausing and resuming on
    # every read costs two system calls a read), nor after.
    seen: list[tuple[int, bool]] = []
    done = asyncio.Event()

    async def handler(conn: Any) -> None:
        async for message in conn:
            seen.append((len(conn._queue), conn._queue.paused))
            if message == b"9":
                done.set()

    async with blazews.serve(handler, "127.0.0.1", 0, max_queue=4) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"".join(frame(2, str(i).encode(), mask=True) for i in range(10)))
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.05)  # the check after the reader's turn has run
        (server_conn,) = server.connections
        assert not server_conn._queue.paused and server_conn._queue.full_reads == 0
        writer.close()
    assert seen[0][0] >= 4  # the queue was full when the reader took the first
    assert not any(paused for _, paused in seen)


async def test_open_timeout_drops_silent_client() -> None:
    async with blazews.serve(echo, "127.0.0.1", 0, open_timeout=0.1) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()


async def test_connect_open_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    with pytest.raises(asyncio.TimeoutError):
        await blazews.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.1)
    tcp.close()


async def test_process_request_rejects_with_status_and_body() -> None:
    def process_request(conn: Any, request: blazews.Request) -> blazews.Response | None:
        if request.headers.get("Authorization") != "Bearer ok":
            return conn.reject(403, "go away\n", [("X-Why", "no token")])
        return None

    async with blazews.serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
        with pytest.raises(InvalidStatus) as info:
            await blazews.connect(url(server))
        assert info.value.status == 403
        assert info.value.response.body == b"go away\n"
        assert info.value.response.headers["X-Why"] == "no token"
        async with blazews.connect(
            url(server), additional_headers=[("Authorization", "Bearer ok")]
        ) as conn:
            await conn.send("in")
            assert await conn.recv() == "in"


async def test_process_response_adds_headers() -> None:
    async def process_response(conn: Any, request: Any, response: blazews.Response) -> None:
        response.headers.add("X-Server-Says", "hi")

    async with blazews.serve(echo, "127.0.0.1", 0, process_response=process_response) as server:
        async with blazews.connect(url(server)) as conn:
            assert conn.response_headers is not None
            assert conn.response_headers["X-Server-Says"] == "hi"


async def test_subprotocol_negotiation() -> None:
    async def handler(conn: Any) -> None:
        await conn.send(conn.subprotocol or "none")

    async with blazews.serve(handler, "127.0.0.1", 0, subprotocols=["chat", "superchat"]) as server:
        async with blazews.connect(url(server), subprotocols=["superchat", "chat"]) as conn:
            assert conn.subprotocol == "superchat"
            assert await conn.recv() == "superchat"
        async with blazews.connect(url(server), subprotocols=["other"]) as conn:
            assert conn.subprotocol is None
            assert await conn.recv() == "none"


async def test_unix_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "ws.sock")
    async with blazews.serve(echo, path=path):
        async with blazews.connect("ws://localhost/", unix_path=path) as conn:
            await conn.send("over unix")
            assert await conn.recv() == "over unix"


async def test_wss_with_ssl_context() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with blazews.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        async with blazews.connect(f"wss://localhost:{server.port}/", ssl=client_ctx) as conn:
            await conn.send("secret")
            assert await conn.recv() == "secret"
    with pytest.raises(ValueError):
        blazews.connect("ws://localhost/", ssl=client_ctx)


async def test_handshake_errors_over_the_wire(echo_server: blazews.Server) -> None:
    async def exchange(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_server.port)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return data

    good = (
        b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    data = await exchange(b"GET / HTTP/1.1\r\n" + good + b"Sec-WebSocket-Version: 8\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13" in data
    data = await exchange(b"POST / HTTP/1.1\r\n" + good + b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 405 ")
    data = await exchange(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n")
    assert data.startswith(b"HTTP/1.1 414 ")
    data = await exchange(b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200)
    assert data.startswith(b"HTTP/1.1 431 ")
    # The server kept serving.
    async with blazews.connect(url(echo_server)) as conn:
        await conn.send("still here")
        assert await conn.recv() == "still here"


async def test_client_rejects_non_websocket_server() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        await writer.drain()
        writer.close()

    tcp = await asyncio.start_server(http, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    with pytest.raises(InvalidStatus) as info:
        await blazews.connect(f"ws://127.0.0.1:{port}/")
    assert info.value.status == 200 and info.value.response.body == b"hi"
    tcp.close()


async def test_protocol_error_from_peer_closes_with_code_and_cause() -> None:
    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        reader, writer = await raw_handshake(server.port)
        writer.write(b"\x81\x05hello")  # unmasked frame from a client: 1002
        data = await asyncio.wait_for(reader.read(), 5)
        assert data[:2] == b"\x88\x02" or data[0] == 0x88
        assert struct.unpack("!H", data[2:4])[0] == 1002
        writer.close()

    async def bad_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b": ")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = blazews.sansio.handshake.accept_key(key.decode())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n" + b"\x81\x02\xc3\x28"
        )
        await writer.drain()
        await reader.read()
        writer.close()

    tcp = await asyncio.start_server(bad_server, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    async with blazews.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.5) as conn:
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
        assert isinstance(info.value.__cause__, blazews.ProtocolError)
        assert info.value.__cause__.close_code == 1007
        assert info.value.sent is not None and info.value.sent.code == 1007
    tcp.close()


async def test_message_too_big_over_the_wire() -> None:
    async with blazews.serve(echo, "127.0.0.1", 0, max_message_size=1000) as server:
        async with blazews.connect(url(server)) as conn:
            await conn.send(b"x" * 1000)
            assert len(await conn.recv()) == 1000
            await conn.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await conn.recv()
            assert info.value.code == 1009


async def test_abrupt_eof_gives_1006() -> None:
    got: list[BaseException] = []

    async def handler(conn: Any) -> None:
        try:
            await conn.recv()
        except ConnectionClosedError as exc:
            got.append(exc)

    async with blazews.serve(handler, "127.0.0.1", 0) as server:
        _reader, writer = await raw_handshake(server.port)
        writer.close()
        await asyncio.sleep(0.2)
    assert len(got) == 1 and got[0].code == 1006 and got[0].rcvd is None


async def test_close_timeout_when_peer_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b": ")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = blazews.sansio.handshake.accept_key(key.decode())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        await asyncio.sleep(3)
        writer.close()

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    conn = await blazews.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await conn.close()
    assert loop.time() - start < 2
    assert conn.close_code == 1006
    tcp.close()


async def test_concurrent_recv_is_refused(echo_server: blazews.Server) -> None:
    async with blazews.connect(url(echo_server)) as conn:
        first = asyncio.ensure_future(conn.recv())
        await asyncio.sleep(0)
        with pytest.raises(ConcurrencyError):
            await conn.recv()
        await conn.send("x")
        assert await first == "x"


async def test_send_after_close_raises(echo_server: blazews.Server) -> None:
    conn = await blazews.connect(url(echo_server))
    await conn.close()
    with pytest.raises(ConnectionClosedOK):
        await conn.send("late")


async def test_invalid_uri_and_header_injection() -> None:
    with pytest.raises(blazews.InvalidURI):
        blazews.connect("http://example.com/")
    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        with pytest.raises(ValueError):
            await blazews.connect(
                url(server), additional_headers=[("X-Evil", "a\r\nInjected: yes")]
            )


async def test_server_close_sends_going_away() -> None:
    server = await blazews.serve(echo, "127.0.0.1", 0)
    conn = await blazews.connect(url(server))
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionClosedOK):
        await conn.recv()
    assert conn.close_code == 1001


async def test_handshake_failure_is_invalid_handshake() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    tcp = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    with pytest.raises(InvalidHandshake):
        await blazews.connect(f"ws://127.0.0.1:{port}/")
    tcp.close()
