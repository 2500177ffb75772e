"""Both clients follow a real blazews server's redirects (its ``process_request``
answers 3xx), within the rules of :mod:`blazews.sansio.redirect`."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

import blazews
from blazews import sync
from blazews.exceptions import InvalidRedirect, InvalidStatus
from tests.sync.support import LoopThread

TIMEOUTS = {"open_timeout": 20.0, "close_timeout": 5.0, "proxy": None}


class Redirecting:
    """Servers (``a`` and ``b``: ws on two ports, two origins; ``t``: wss) whose
    ``/go/<status>/<location>`` answers ``status`` with ``Location: <location>``,
    where ``<a>``, ``<b>`` and ``<t>`` stand for the servers' ports; any other path is
    an echo. Every request's server, path and headers are recorded."""

    def __init__(self) -> None:
        ca = trustme.CA()
        self.server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self.server_ssl)
        self.client_ssl = ssl.create_default_context()
        ca.configure_trust(self.client_ssl)
        self.seen: list[tuple[str, str, Any]] = []
        self.loop = LoopThread()
        self.servers = {
            name: self.loop.run(self._serve(name, self.server_ssl if name == "t" else None))
            for name in ("a", "b", "t")
        }

    async def _serve(self, name: str, context: ssl.SSLContext | None) -> Any:
        def process_request(conn: Any, request: Any) -> Any:
            self.seen.append((name, request.path, request.headers))
            if request.path in ROUTES:
                status, location = ROUTES[request.path]
                for other, server in self.servers.items():
                    location = location.replace(f"<{other}>", str(server.port))
                return conn.reject(status, "", [("Location", location)])
            if not request.path.startswith("/go/"):
                return None
            _, _, status, location = request.path.split("/", 3)
            for other, server in self.servers.items():
                location = location.replace(f"<{other}>", str(server.port))
            return conn.reject(int(status), "", [("Location", location)] if location else [])

        async def echo(conn: Any) -> None:
            async for message in conn:
                await conn.send(message)

        return await blazews.serve(
            echo, "127.0.0.1", 0, ssl=context, process_request=process_request
        )

    def url(self, name: str, path: str) -> str:
        if name == "t":
            return f"wss://localhost:{self.servers['t'].port}{path}"
        return f"ws://127.0.0.1:{self.servers[name].port}{path}"

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers.values():
                server.close()
                await server.wait_closed()

        self.loop.run(close())
        self.loop.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Redirecting]:
    running = Redirecting()
    yield running
    running.stop()


AUTH = [("Authorization", "Bearer secret"), ("X-Mine", "1")]

ROUTES = {
    "/r/1": (301, "/r/2"),  # an absolute path
    "/r/2": (307, "ws://127.0.0.1:<a>/r/3"),  # an absolute URL, the same origin
    "/r/3": (308, "ws://127.0.0.1:<b>/r/4"),  # the other origin
    "/r/4": (302, "5"),  # a relative path
    "/r/5": (303, "http://127.0.0.1:<b>/done"),  # http:// read as ws://
    "/loop/a": (302, "/loop/b"),
    "/loop/b": (307, "/loop/a"),
}
CHAIN = "/r/1"


def check_chain(servers: Redirecting) -> None:
    names = [name for name, _, _ in servers.seen]
    assert names == ["a", "a", "a", "b", "b", "b"], [(n, p) for n, p, _ in servers.seen]
    assert [path for _, path, _ in servers.seen] == [
        "/r/1",
        "/r/2",
        "/r/3",
        "/r/4",
        "/r/5",
        "/done",
    ]
    assert servers.seen[-1][1] == "/done"
    for name, _, headers in servers.seen:
        if name == "a":  # the first origin: the application's headers go
            assert headers["Authorization"] == "Bearer secret" and headers["X-Mine"] == "1"
        else:  # after a hop to another origin, they do not
            assert "Authorization" not in headers and "X-Mine" not in headers


async def test_asyncio_follows_redirects(servers: Redirecting) -> None:
    servers.seen.clear()
    options = TIMEOUTS | {"additional_headers": AUTH}
    async with blazews.connect(servers.url("a", CHAIN), **options) as conn:  # type: ignore[arg-type]
        await conn.send("there")
        assert await conn.recv() == "there"
    check_chain(servers)


def test_sync_follows_redirects(servers: Redirecting) -> None:
    servers.seen.clear()
    options = TIMEOUTS | {"additional_headers": AUTH}
    with sync.connect(servers.url("a", CHAIN), **options) as conn:  # type: ignore[arg-type]
        conn.send("there")
        assert conn.recv(timeout=20) == "there"
    check_chain(servers)


@pytest.mark.parametrize("client", ["asyncio", "sync"])
async def test_refused_redirects(servers: Redirecting, client: str) -> None:
    async def connect(url: str, **options: Any) -> None:
        options = TIMEOUTS | options
        if url.startswith("wss"):
            options["ssl"] = servers.client_ssl
        if client == "asyncio":
            conn = await blazews.connect(url, **options)
            await conn.close()
        else:
            sync.connect(url, **options).close()

    with pytest.raises(InvalidRedirect, match="loop") as info:
        await connect(servers.url("a", "/loop/a"))
    assert info.value.chain == [servers.url("a", p) for p in ("/loop/a", "/loop/b", "/loop/a")]
    with pytest.raises(InvalidRedirect, match="more than 2") as info:
        await connect(servers.url("a", "/go/301/go/301/go/301/go/301/done"), max_redirects=2)
    assert len(info.value.chain) == 4 and info.value.status == 301
    with pytest.raises(InvalidRedirect, match="wss:// to ws://"):
        await connect(servers.url("t", "/go/302/ws://127.0.0.1:<a>/done"))
    with pytest.raises(InvalidStatus) as status:  # 0: a redirect is an error
        await connect(servers.url("a", "/go/302/done"), max_redirects=0)
    assert status.value.status == 302
    with pytest.raises(InvalidRedirect, match="without Location"):
        await connect(servers.url("a", "/go/302/"))
    # ws:// to wss:// is followed, with TLS (the default context: our CA is not in it).
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(servers.url("a", "/go/302/wss://localhost:<t>/done"))
    # wss:// to wss://, relative.
    servers.seen.clear()
    await connect(servers.url("t", "/go/308/../../done?q=1"))
    assert [path for _, path, _ in servers.seen] == ["/go/308/../../done?q=1", "/done?q=1"]
