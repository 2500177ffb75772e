"""Both clients through real proxies: tinyproxy (HTTP CONNECT, with and without Basic
auth, and behind a TLS terminator as an ``https://`` proxy), microsocks (SOCKS5, with
and without a user) and dante (SOCKS4; it refuses SOCKS4a), to ``ws://`` and
``wss://`` servers."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

import blazews
from blazews import sync
from blazews.exceptions import InvalidProxy
from tests.client.proxies import Dante, Microsocks, SSHSocks, Tinyproxy, TLSFront
from tests.compliance.test_autobahn import free_port
from tests.helpers import run_on
from tests.sync.support import LoopThread

AUTH = ("alice", "pass-word_1")
AUTH_URL = "alice:pass%2Dword_1"  # percent-decoded
TIMEOUTS = {"open_timeout": 20.0, "close_timeout": 5.0}


class Setup:
    """The proxies and the two echo servers (ws and wss), for one module."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server_ssl)
        self.client_ssl = ssl.create_default_context()
        self.ca.configure_trust(self.client_ssl)
        self.loop = LoopThread()
        self.ws = self.loop.run(self._serve(None))
        self.wss = self.loop.run(self._serve(self.server_ssl))
        self.tiny = Tinyproxy()
        self.tiny_auth = Tinyproxy(auth=AUTH)
        self.tiny_strict = Tinyproxy(connect_ports=[1])  # CONNECT to our ports: 403
        self.front = TLSFront(self.server_ssl, self.tiny.port)
        self.socks = Microsocks()
        self.socks_auth = Microsocks(auth=AUTH)
        self.dante = Dante()
        self.ssh = SSHSocks()

    async def _serve(self, context: ssl.SSLContext | None) -> Any:
        async def echo(conn: Any) -> None:
            async for message in conn:
                await conn.send(message)

        return await blazews.serve(echo, "127.0.0.1", 0, ssl=context)

    def target(self, scheme: str) -> str:
        server = self.ws if scheme == "ws" else self.wss
        return f"{scheme}://localhost:{server.port}/path"

    def proxy(self, kind: str) -> str:
        tiny, auth, socks = self.tiny.port, self.tiny_auth.port, self.socks.port
        return {
            "http": f"http://127.0.0.1:{tiny}",
            "http-auth": f"http://{AUTH_URL}@127.0.0.1:{auth}",
            "https": self.front.url,
            "socks5": f"socks5://127.0.0.1:{socks}",
            "socks5h": f"socks5h://127.0.0.1:{socks}",
            "socks5-auth": f"socks5://{AUTH_URL}@127.0.0.1:{self.socks_auth.port}",
            "socks4": f"socks4://127.0.0.1:{self.dante.port}",
            # The proxy resolves "localhost": a host name through SOCKS4a.
            "socks4a": f"socks4a://127.0.0.1:{self.ssh.port}",
        }[kind]

    def options(self, scheme: str, proxy: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {"proxy": proxy, **TIMEOUTS}
        if scheme == "wss":
            options["ssl"] = self.client_ssl
        options["proxy_ssl"] = self.client_ssl
        return options

    def stop(self) -> None:
        procs = (self.tiny, self.tiny_auth, self.tiny_strict, self.socks, self.socks_auth)
        for proc in (*procs, self.dante, self.ssh):
            proc.stop()
        self.front.stop()

        async def close() -> None:
            for server in (self.ws, self.wss):
                server.close()
                await server.wait_closed()

        self.loop.run(close())
        self.loop.stop()


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    running = Setup()
    yield running
    running.stop()


KINDS = ["http", "http-auth", "https", "socks5", "socks5h", "socks5-auth", "socks4", "socks4a"]


@pytest.mark.parametrize("scheme", ["ws", "wss"])
@pytest.mark.parametrize("kind", KINDS)
async def test_asyncio_through_proxy(setup: Setup, kind: str, scheme: str) -> None:
    url = setup.target(scheme)
    async with blazews.connect(url, **setup.options(scheme, setup.proxy(kind))) as conn:
        await conn.send(f"{kind} {scheme}")
        assert await conn.recv() == f"{kind} {scheme}"
        big = bytes(range(256)) * 1000
        await conn.send(big)
        assert await conn.recv() == big
        # The server saw the proxy, not us, connect: its peer is the proxy's socket.
        assert conn.remote_address is not None


@pytest.mark.parametrize("scheme", ["ws", "wss"])
@pytest.mark.parametrize("kind", KINDS)
def test_sync_through_proxy(setup: Setup, kind: str, scheme: str) -> None:
    url = setup.target(scheme)
    options = setup.options(scheme, setup.proxy(kind))
    with sync.connect(url, **options) as conn:
        conn.send(b"\x00\x01")
        assert conn.recv(timeout=20) == b"\x00\x01"
        big = bytes(range(256)) * 1000  # many TLS records, inside TLS for https-wss
        conn.send(big)
        assert conn.recv(timeout=20) == big


def _refusals(setup: Setup) -> list[tuple[str, str, int | None, bool]]:
    """(proxy, target, the status expected or None, whether it is transient)."""
    up = setup.target("ws")
    down = f"ws://127.0.0.1:{free_port()}/"  # nothing listens there
    return [
        (f"http://127.0.0.1:{setup.tiny_auth.port}", up, 407, False),  # no credentials
        # tinyproxy answers wrong credentials with 401 (RFC 9110 says 407: its choice).
        (f"http://alice:wrong@127.0.0.1:{setup.tiny_auth.port}", up, 401, False),
        (f"http://127.0.0.1:{setup.tiny_strict.port}", up, 403, False),  # port not allowed
        (f"socks5://alice:wrong@127.0.0.1:{setup.socks_auth.port}", up, None, False),
        # SOCKS4a sends the host name (localhost) to the proxy, which dante refuses.
        (f"socks4a://127.0.0.1:{setup.dante.port}", up, None, False),
        # The proxy cannot reach the server: worth retrying.
        (f"http://127.0.0.1:{setup.tiny.port}", down, 500, True),
        (f"socks5://127.0.0.1:{setup.socks.port}", down, None, True),
        (f"socks5://127.0.0.1:{setup.dante.port}", down, None, True),
    ]


def _check_refusal(exc: InvalidProxy, proxy: str, status: int | None, transient: bool) -> None:
    assert exc.transient is transient, (proxy, exc)
    if status is None:
        assert exc.status is None, (proxy, exc)
    elif status >= 500:
        assert exc.status is not None and exc.status >= 500, (proxy, exc)
    else:
        assert exc.status == status, (proxy, exc)
        assert exc.response is not None


async def test_asyncio_proxy_refusals(setup: Setup) -> None:
    for proxy, url, status, transient in _refusals(setup):
        with pytest.raises(InvalidProxy) as info:
            await blazews.connect(url, proxy=proxy, **TIMEOUTS)  # type: ignore[arg-type]
        _check_refusal(info.value, proxy, status, transient)


def test_sync_proxy_refusals(setup: Setup) -> None:
    for proxy, url, status, transient in _refusals(setup):
        with pytest.raises(InvalidProxy) as info:
            sync.connect(url, proxy=proxy, **TIMEOUTS)  # type: ignore[arg-type]
        _check_refusal(info.value, proxy, status, transient)


def test_environment_is_the_default(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    # A proxy that refuses us shows that the connection went through it.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{setup.tiny_auth.port}")
    with pytest.raises(InvalidProxy):
        sync.connect(setup.target("ws"), **TIMEOUTS)  # type: ignore[arg-type]
    monkeypatch.setenv("NO_PROXY", "localhost")
    with sync.connect(setup.target("ws"), **TIMEOUTS) as conn:  # type: ignore[arg-type]
        conn.send("direct")
        assert conn.recv(timeout=20) == "direct"
    monkeypatch.delenv("NO_PROXY")
    with sync.connect(setup.target("ws"), proxy=None, **TIMEOUTS) as conn:  # type: ignore[arg-type]
        conn.send("direct")
        assert conn.recv(timeout=20) == "direct"
    # wss:// reads HTTPS_PROXY, else ALL_PROXY.
    monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{setup.socks.port}")
    options = setup.options("wss", None) | {"proxy": "environment"}
    with sync.connect(setup.target("wss"), **options) as conn:
        conn.send("all")
        assert conn.recv(timeout=20) == "all"


async def test_a_proxy_that_closes_at_once() -> None:
    import asyncio

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(InvalidProxy, match="closed") as info:
            await blazews.connect("ws://example.invalid/", proxy=f"http://127.0.0.1:{port}")
        assert info.value.status is None
    finally:
        server.close()
        await server.wait_closed()


async def test_a_proxy_answer_is_bounded_by_the_header_limits() -> None:
    import asyncio

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 50)
        await writer.drain()
        await asyncio.sleep(30)

    server = await asyncio.start_server(chatty, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(InvalidProxy, match="header"):
            await blazews.connect(
                "ws://example.invalid/", proxy=f"http://127.0.0.1:{port}", max_headers=10
            )
        with pytest.raises(TimeoutError):
            await blazews.connect(
                "ws://example.invalid/", proxy=f"http://127.0.0.1:{port}", open_timeout=0.5
            )
    finally:
        server.close()
        await server.wait_closed()


def test_bad_proxy_urls() -> None:
    with pytest.raises(ValueError, match="scheme"):
        blazews.ClientOptions(proxy="ftp://127.0.0.1:21")
    with pytest.raises(ValueError, match="no host"):
        blazews.ClientOptions(proxy="http://")


def test_sync_tls_inside_tls_traced(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    # DEBUG tracing wraps the tunnelled TLS socket: no vectored send, records in order.
    options = setup.options("wss", setup.proxy("https")) | {"compression": None}
    with caplog.at_level(logging.DEBUG, logger="blazews.client"):
        with sync.connect(setup.target("wss"), **options) as conn:
            conn.send(b"a" * 70000)
            assert conn.recv(timeout=20) == b"a" * 70000
    lines = [r.getMessage().split("] ", 1)[1] for r in caplog.records]
    assert lines[0].startswith("> GET /path HTTP/1.1")
    assert "> BINARY fin masked len=70000" in lines and "< BINARY fin len=70000" in lines


def test_uvloop_through_proxies_traced(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    # uvloop's transports: the tunnel's hand-over (set_protocol), TLS inside TLS
    # (start_tls on a TLS transport) and the DEBUG tracing shims.
    async def main() -> None:
        for kind, scheme in [("http", "ws"), ("https", "wss"), ("socks5", "wss")]:
            options = setup.options(scheme, setup.proxy(kind))
            async with blazews.connect(setup.target(scheme), **options) as conn:
                await conn.send(b"u" * 100_000)
                assert await conn.recv() == b"u" * 100_000

    with caplog.at_level(logging.DEBUG, logger="blazews.client"):
        run_on("uvloop", main)
    lines = [r.getMessage() for r in caplog.records if r.name == "blazews.client"]
    assert sum("> GET /path HTTP/1.1" in line for line in lines) == 3
