"""blazews.uvicorn under an in-process uvicorn server: the ASGI events, the refusals,
the close codes, shutdown and keepalive (the subprocess tests in test_apps.py cover
real apps; these run in the test's process, so that what they cover is measured)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

import blazews
from blazews.uvicorn import WebSocketProtocol, options_for

Scope = dict[str, Any]


@asynccontextmanager
async def running(app: Any, **config: Any) -> AsyncIterator[tuple[uvicorn.Server, str]]:
    sock = socket.create_server(("127.0.0.1", 0))
    config = {"lifespan": "off", "log_level": "warning", **config}
    cfg = uvicorn.Config(app, ws=WebSocketProtocol, **config)
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    try:
        yield server, f"ws://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (generous: no timing assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def disconnected(events: list[dict[str, Any]]) -> Any:
    return lambda: bool(events) and events[-1]["type"] == "websocket.disconnect"


def echo_app(events: list[dict[str, Any]] | None = None, subprotocol: str | None = None) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        headers = [(b"x-a", b"1")]
        await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers})
        while True:
            event = await receive()
            if events is not None:
                events.append(event)
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") == "close":
                await send({"type": "websocket.close", "code": 4000, "reason": "asked"})
                continue
            if event.get("text") == "fail":
                raise RuntimeError("boom")
            await send({"type": "websocket.send", **{k: event.get(k) for k in ("text", "bytes")}})

    return app


async def test_scope_echo_and_app_close() -> None:
    events: list[dict[str, Any]] = []
    scopes: list[Scope] = []
    inner = echo_app(events, subprotocol="b")

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await inner(scope, receive, send)

    async with running(app, root_path="/api") as (_, url):
        uri = f"{url}/a%2Fb?x=1"
        async with blazews.connect(uri, subprotocols=["a", "b"], compression=None) as conn:
            assert conn.subprotocol == "b"
            assert conn.response is not None and conn.response.headers["x-a"] == "1"
            assert conn.response.headers["server"] == "uvicorn"
            await conn.send("hé")
            assert await conn.recv() == "hé"
            await conn.send(b"\x00" * 70000)  # a grown receive buffer's payload
            assert await conn.recv() == b"\x00" * 70000
            await conn.send("close")
            with pytest.raises(blazews.ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4000, "asked")
        await until(disconnected(events))
    scope = scopes[0]
    assert scope["path"] == "/api/a/b" and scope["raw_path"] == b"/api/a%2Fb"
    assert scope["query_string"] == b"x=1" and scope["root_path"] == "/api"
    assert scope["subprotocols"] == ["a", "b"] and scope["scheme"] == "ws"
    assert "websocket.http.response" in scope["extensions"]
    assert (b"sec-websocket-version", b"13") in scope["headers"]
    assert events[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": "asked"}


async def test_client_close_reaches_the_app() -> None:
    events: list[dict[str, Any]] = []
    async with running(echo_app(events)) as (_, url):
        async with blazews.connect(url) as conn:
            await conn.send(b"x")
            assert await conn.recv() == b"x"
            await conn.close(1001, "bye")
        await until(disconnected(events))
    assert events[-1] == {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}


async def test_exception_after_accept_closes_with_1011() -> None:
    async with running(echo_app()) as (_, url):
        async with blazews.connect(url) as conn:
            await conn.send("fail")
            with pytest.raises(blazews.ConnectionClosed) as info:
                await conn.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011


async def refuse(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    kind = scope["path"].strip("/")
    if kind == "close":
        await send({"type": "websocket.close"})
    elif kind == "deny":
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"way"})
    elif kind == "start-only":
        await send({"type": "websocket.http.response.start", "status": 404, "headers": []})
    elif kind == "raise":
        raise ValueError("before accepting")
    elif kind == "wrong":
        await send({"type": "websocket.send", "text": "too early"})
    # "return": returns without answering


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("close", 403, b""),
        ("deny", 401, b"no way"),
        ("start-only", 404, b""),
        ("raise", 500, b"Internal Server Error"),
        ("wrong", 500, b"Internal Server Error"),
        ("return", 500, b"Internal Server Error"),
    ],
)
async def test_refusals_by_the_app(path: str, status: int, body: bytes) -> None:
    async with running(refuse) as (_, url):
        with pytest.raises(blazews.InvalidStatus) as info:
            async with blazews.connect(f"{url}/{path}"):
                pass  # pragma: no cover
    assert info.value.response.status_code == status
    assert info.value.response.body == body


async def test_refusals_of_the_native_server() -> None:
    async with running(echo_app()) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"Sec-WebSocket-Version: 13" in answer


async def test_oversize_message_is_refused_with_1009() -> None:
    events: list[dict[str, Any]] = []
    async with running(echo_app(events), ws_max_size=1000) as (_, url):
        async with blazews.connect(url) as conn:
            await conn.send(b"x" * 1001)
            with pytest.raises(blazews.ConnectionClosed):
                await conn.recv()
        await until(disconnected(events))
    assert events[-1]["code"] == 1009


async def test_shutdown_closes_with_1012() -> None:
    events: list[dict[str, Any]] = []
    async with running(echo_app(events)) as (server, url):
        conn = await blazews.connect(url)
        await conn.send("x")
        assert await conn.recv() == "x"
        server.should_exit = True
        with pytest.raises(blazews.ConnectionClosed) as info:
            await asyncio.wait_for(conn.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012
        await conn.close()
    assert events[-1] == {"type": "websocket.disconnect", "code": 1012}


async def test_keepalive_pings() -> None:
    async with running(echo_app(), ws_ping_interval=0.05, ws_ping_timeout=5) as (server, url):
        async with blazews.connect(url, ping_interval=None) as conn:
            (protocol,) = server.server_state.connections
            assert isinstance(protocol, WebSocketProtocol)
            assert protocol.ping_timer is not None
            await until(lambda: protocol.ping_sent_at > 0)
            await conn.send("still here")
            assert await conn.recv() == "still here"


def test_options_follow_the_config() -> None:
    config = uvicorn.Config(
        echo_app(), ws=WebSocketProtocol, ws_max_size=1234, ws_max_queue=7,
        ws_ping_interval=0, ws_ping_timeout=3, ws_per_message_deflate=False,
    )  # fmt: skip
    options = options_for(config)
    assert (options.max_message_size, options.max_queue) == (1234, 7)
    assert (options.ping_interval, options.ping_timeout, options.compression) == (None, 3, None)
    assert options_for(config) is options  # once per config


async def test_access_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    async with running(echo_app(), log_level="info") as (_, url):
        logging.getLogger("uvicorn").propagate = True
        async with blazews.connect(f"{url}/logged?q=1") as conn:
            await conn.send("x")
            await conn.recv()
    assert '"WebSocket /logged?q=1" [accepted]' in caplog.text


HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def raw_exchange(url: str, head: bytes, frames: bytes = b"") -> bytes:
    """Send a handshake (and frames after its response); return all the server sent."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if frames and answer.startswith(b"HTTP/1.1 101"):
        writer.write(frames)
    answer += await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (b"\x81\x02hi", 1002),  # unmasked
        (b"\x81\x82\x00\x00\x00\x00\xc3\x28", 1007),  # invalid UTF-8
        (b"\xc1\x80\x00\x00\x00\x00", 1002),  # a reserved bit, no extension
    ],
    ids=["unmasked", "utf-8", "rsv1"],
)
async def test_protocol_errors_close_as_the_native_server(frames: bytes, code: int) -> None:
    events: list[dict[str, Any]] = []
    async with running(echo_app(events)) as (_, url):
        answer = await raw_exchange(url, HANDSHAKE, frames)
        await until(disconnected(events))
    assert answer.startswith(b"HTTP/1.1 101 ")
    close = answer[answer.index(b"\r\n\r\n") + 4 :]
    assert close[0] == 0x88 and int.from_bytes(close[2:4], "big") == code
    assert events[-1]["code"] == code


async def test_bad_extension_offer_is_refused() -> None:
    async with running(echo_app()) as (_, url):
        answer = await raw_exchange(url, HANDSHAKE + b"Sec-WebSocket-Extensions: ;;\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_tls(tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    scopes: list[Scope] = []
    inner = echo_app()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await inner(scope, receive, send)

    config = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
    async with running(app, **config) as (_, url):
        context = ssl.create_default_context()
        ca.configure_trust(context)
        wss = url.replace("ws://", "wss://")
        async with blazews.connect(wss, ssl=context) as conn:
            await conn.send(b"\x01" * 100000)
            assert await conn.recv() == b"\x01" * 100000
    assert scopes[0]["scheme"] == "wss"


async def test_an_open_connection_keeps_only_what_it_needs() -> None:
    """Once accepted, the handshake's request and response are not kept, the scope's
    common header pairs are shared between connections, the client's key is not, and
    the application's task leaves the server's tasks when it ends."""
    scopes: list[Scope] = []
    inner = echo_app()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await inner(scope, receive, send)

    async with running(app) as (server, url):
        state = server.server_state
        async with blazews.connect(url) as one, blazews.connect(url) as two:
            for conn in (one, two):
                await conn.send("x")
                assert await conn.recv() == "x"
            protocols = list(state.connections)
            assert len(protocols) == 2 and len(state.tasks) == 2
            for protocol in protocols:
                assert isinstance(protocol, WebSocketProtocol)
                assert protocol.response is None
                assert protocol.protocol.request is None and protocol.protocol.response is None
            first, second = (dict(scope["headers"]) for scope in scopes)
            assert first[b"sec-websocket-key"] != second[b"sec-websocket-key"]
            version = [pair for pair in scopes[0]["headers"] if pair[0] == b"sec-websocket-version"]
            assert version[0] in scopes[1]["headers"]
            assert any(version[0] is pair for pair in scopes[1]["headers"])  # one object
            keys = [p for s in scopes for p in s["headers"] if p[0] == b"sec-websocket-key"]
            assert keys[0] is not keys[1]
        await until(lambda: not state.tasks and not state.connections)


def test_header_cache_is_bounded() -> None:
    from blazews import uvicorn as adapter

    for n in range(3 * adapter._SHARED):
        name, value = f"X-Made-Up-{n}", f"v{n}"
        assert adapter._header(name, value) == (name.lower().encode(), value.encode())
    assert len(adapter._PAIRS) <= adapter._SHARED and len(adapter._NAMES) <= adapter._SHARED
    long = "a" * 65  # (too long to be shared)
    assert adapter._header("Host", long) is not adapter._header("Host", long)


async def test_accept_sends_the_server_s_current_default_headers() -> None:
    """uvicorn renews its Date header every second in ``server_state.default_headers``:
    the 101 carries the one current when the application accepts."""
    accepted = asyncio.Event()
    go = asyncio.Event()
    inner = echo_app()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        accepted.set()
        await go.wait()
        await inner(scope, receive, send)

    async with running(app) as (server, url):
        connecting = asyncio.ensure_future(blazews.connect(url))
        await accepted.wait()
        server.server_state.default_headers = [(b"date", b"renewed"), (b"server", b"uvicorn")]
        go.set()
        conn = await connecting
        assert conn.response is not None and conn.response.headers["date"] == "renewed"
        await conn.close()


async def test_an_application_s_sends_of_one_step_are_written_together() -> None:
    """Sends complete at once and their frames go out together at the end of the turn
    of the loop, before anything sent after them (here the close)."""
    seen: list[bool] = []
    servers: list[uvicorn.Server] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()  # the client's "go" (and "more" queued behind it)
        (protocol,) = servers[0].server_state.connections
        assert isinstance(protocol, WebSocketProtocol)
        await until(lambda: protocol._queue.pending() == 1)  # "more", unread
        for n in range(3):
            await send({"type": "websocket.send", "text": f"m{n}"})
        seen.append(protocol.protocol.holds_output())
        await asyncio.sleep(0)
        seen.append(protocol.protocol.holds_output())
        for n in range(3, 5):
            await send({"type": "websocket.send", "bytes": bytes([n])})
        await send({"type": "websocket.close", "code": 4001, "reason": "after them"})

    async with running(app) as (server, url):
        servers.append(server)
        async with blazews.connect(url, compression=None) as conn:
            await conn.send("go")
            await conn.send("more")  # (a message left to answer: sends wait for the turn)
            got = [await asyncio.wait_for(conn.recv(), 5) for _ in range(5)]
            with pytest.raises(blazews.ConnectionClosed) as info:
                await asyncio.wait_for(conn.recv(), 5)
    assert got == ["m0", "m1", "m2", b"\x03", b"\x04"]
    assert seen == [True, False]
    assert info.value.rcvd is not None and info.value.rcvd.code == 4001
