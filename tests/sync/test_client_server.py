"""Tests of the blocking front end, :mod:`blazews.sync`: the opening handshake, and
interoperability with the asyncio front end and the ``websockets`` package."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import blazews.asyncio as bz_asyncio
from blazews import sync
from blazews.exceptions import (
    ConnectionClosedOK,
    InvalidStatus,
)
from tests.sync.support import (
    FAST,
    LoopThread,
    Running,
    echo,
)

# -- handshake ---------------------------------------------------------------------------


def test_process_request_rejects_with_403(run_server: Callable[..., Running]) -> None:
    def process_request(conn: sync.ServerConnection, request: Any) -> Any:
        if request.path != "/allowed":
            return conn.reject(403, "forbidden\n", [("X-Why", "path")])
        return None

    running = run_server(echo, process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        sync.connect(running.url, **FAST)
    assert info.value.status == 403
    assert info.value.response.body == b"forbidden\n"
    assert info.value.response.headers["X-Why"] == "path"
    with sync.connect(running.url + "allowed", **FAST) as conn:
        conn.send("ok")
        assert conn.recv() == "ok"


def test_process_response_adds_header(run_server: Callable[..., Running]) -> None:
    def process_response(conn: sync.ServerConnection, request: Any, response: Any) -> Any:
        response.headers["X-Extra"] = "yes"
        return None

    def failing(conn: sync.ServerConnection, request: Any) -> Any:
        raise RuntimeError("hook failed")

    running = run_server(echo, process_response=process_response)
    with sync.connect(running.url, **FAST) as conn:
        assert conn.response_headers is not None
        assert conn.response_headers["X-Extra"] == "yes"
    running = run_server(echo, process_request=failing)
    with pytest.raises(InvalidStatus) as info:
        sync.connect(running.url, **FAST)
    assert info.value.status == 500


def test_subprotocol_negotiation(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        conn.send(conn.subprotocol or "none")

    running = run_server(handler, subprotocols=["chat", "superchat"])
    with sync.connect(running.url, subprotocols=["superchat", "chat"], **FAST) as conn:
        assert conn.subprotocol == "superchat"
        assert conn.recv() == "superchat"
    with sync.connect(running.url, subprotocols=["other"], **FAST) as conn:
        assert conn.subprotocol is None
        assert conn.recv() == "none"
    running = run_server(
        handler, subprotocols=["a", "b"], select_subprotocol=lambda offer: offer[-1]
    )
    with sync.connect(running.url, subprotocols=["a", "b"], **FAST) as conn:
        assert conn.subprotocol == "b"


def test_additional_headers_and_origin(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        headers = conn.request_headers
        assert headers is not None
        conn.send(f"{headers['X-Token']} {headers['Origin']}")

    running = run_server(handler)
    with sync.connect(
        running.url, origin="https://example.test", additional_headers=[("X-Token", "t1")], **FAST
    ) as conn:
        assert conn.recv() == "t1 https://example.test"


def test_bad_request_gets_400(run_server: Callable[..., Running]) -> None:
    running = run_server(echo)
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 400") or response.startswith(b"HTTP/1.1 426")


def test_unix_socket(run_server: Callable[..., Running]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ws.sock")
        run_server(echo, path=path)
        with sync.connect("ws://localhost/", unix_path=path, **FAST) as conn:
            conn.send(b"over unix" * 1000)
            assert conn.recv() == b"over unix" * 1000


def test_wss_with_ssl_context(run_server: Callable[..., Running]) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    running = run_server(echo, ssl=server_ctx)
    url = f"wss://localhost:{running.server.port}/"
    with sync.connect(url, ssl=client_ctx, **FAST) as conn:
        conn.send("secure")
        assert conn.recv() == "secure"
        big = os.urandom(300_000)
        conn.send(big)
        assert conn.recv() == big
    assert conn.close_code == 1000
    with pytest.raises(ValueError):
        sync.connect(running.url, ssl=client_ctx)


# -- interoperability --------------------------------------------------------------------


def test_sync_client_against_asyncio_server(loop_thread: LoopThread) -> None:
    async def handler(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async def start() -> Any:
        return await bz_asyncio.serve(handler, "127.0.0.1", 0, ping_interval=None)

    server = loop_thread.run(start())
    try:
        with sync.connect(f"ws://127.0.0.1:{server.port}/", **FAST) as conn:
            for message in ["text", b"bin", b"", os.urandom(1 << 20)]:
                conn.send(message)
                assert conn.recv() == message
        assert conn.close_code == 1000
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        loop_thread.run(stop())


def test_asyncio_client_against_sync_server(
    run_server: Callable[..., Running], loop_thread: LoopThread
) -> None:
    running = run_server(echo)
    big = os.urandom(1 << 20)

    async def client() -> list[Any]:
        results: list[Any] = []
        async with bz_asyncio.connect(running.url, ping_interval=None) as conn:
            for message in ["text", b"bin", b"", big]:
                await conn.send(message)
                results.append(await conn.recv())
        results.append(conn.close_code)
        return results

    assert loop_thread.run(client()) == ["text", b"bin", b"", big, 1000]


def test_websockets_client_against_sync_server(run_server: Callable[..., Running]) -> None:
    ws_client = pytest.importorskip("websockets.sync.client")
    running = run_server(echo, subprotocols=["chat"])
    with ws_client.connect(running.url, subprotocols=["chat"], compression=None) as ws:
        assert ws.subprotocol == "chat"
        for message in ["text", b"bin", os.urandom(500_000)]:
            ws.send(message)
            assert ws.recv() == message
        ws.ping().wait(5)
    assert ws.close_code == 1000


def test_sync_client_against_websockets_server() -> None:
    ws_server = pytest.importorskip("websockets.sync.server")

    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with ws_server.serve(handler, "127.0.0.1", 0, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            with sync.connect(f"ws://127.0.0.1:{port}/", **FAST) as conn:
                for message in ["text", b"bin", b"", os.urandom(500_000)]:
                    conn.send(message)
                    assert conn.recv() == message
                assert conn.ping().wait(5) >= 0
            assert conn.close_code == 1000
        finally:
            server.shutdown()
            thread.join(5)


def test_closing_handshake_does_not_wait_for_timeouts(run_server: Callable[..., Running]) -> None:
    def handler(conn: sync.ServerConnection) -> None:
        if conn.recv() == "close":
            conn.close(1000, "server closes")

    running = run_server(handler, close_timeout=5)
    for who in ("client", "server"):
        conn = sync.connect(running.url, ping_interval=None, close_timeout=5)
        start = time.monotonic()
        if who == "client":
            conn.send("stay")
            conn.close()
        else:
            conn.send("close")
            with pytest.raises(ConnectionClosedOK):
                conn.recv()
            conn.close()
        assert time.monotonic() - start < 1, who  # the server closed TCP promptly
        assert conn.close_code == 1000


def test_permessage_deflate_by_default_and_per_message_opt_out(
    run_server: Callable[..., Running],
) -> None:
    seen: list[tuple[bool, bytes]] = []

    def handler(conn: sync.ServerConnection) -> None:
        for message in conn:
            conn.send(message)

    running = run_server(handler)
    with sync.connect(running.url, **FAST) as conn:
        header = conn.response_headers["Sec-WebSocket-Extensions"] if conn.response_headers else ""
        assert header.startswith("permessage-deflate")
        text = '{"key": "value", "list": [1, 2, 3]}' * 200
        # Watch what the core hands to the socket: compressed frames carry RSV1.
        original = conn.protocol.data_to_send

        def spy() -> list[bytes]:
            chunks = original()
            if chunks:
                seen.append((bool(chunks[0][0] & 0x40), b"".join(chunks)))
            return chunks

        conn.protocol.data_to_send = spy  # type: ignore[method-assign]
        conn.send(text)
        assert conn.recv() == text
        conn.send(text, compress=False)
        assert conn.recv() == text
    rsv1 = [flag for flag, data in seen if len(data) > 100]
    assert rsv1[:2] == [True, False]
    assert len(seen[0][1]) < len(text) // 4  # it really was compressed

    with sync.connect(running.url, compression=None, **FAST) as conn:
        assert conn.response_headers is not None
        assert "Sec-WebSocket-Extensions" not in conn.response_headers
