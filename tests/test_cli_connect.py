"""``python -m blazews connect``'s flags, run in this process against real servers:
``--header``, ``--subprotocol``, ``--proxy``, ``--insecure``, ``--ping``, ``--hex``,
``--binary``, and the escaping of what it prints."""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

import blazews
from blazews import cli
from tests.client.proxies import Tinyproxy
from tests.sync.support import LoopThread


class Servers:
    """A ws echo server (recording each request, offering the subprotocol ``chat``,
    prefixing ``/greet``'s echoes with control characters, echoing ``/slow`` a second late)
    and the same over wss, with a certificate no default context trusts."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        ca = trustme.CA()
        self.server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self.server_ssl)
        self.loop = LoopThread()
        self.ws = self.loop.run(self._serve(None))
        self.wss = self.loop.run(self._serve(self.server_ssl))

    async def _serve(self, context: ssl.SSLContext | None) -> Any:
        def record(conn: Any, request: Any) -> None:
            self.requests.append(request)

        async def handler(conn: Any) -> None:
            path = conn.request.path
            async for message in conn:
                if path == "/slow":
                    await asyncio.sleep(1.0)
                if path == "/greet":
                    message = "red\x1b[31m\nline\u202eevil " + message
                await conn.send(message)

        return await blazews.serve(
            handler,
            "127.0.0.1",
            0,
            ssl=context,
            subprotocols=["chat"],
            process_request=record,
        )

    def url(self, path: str = "/", tls: bool = False) -> str:
        if tls:
            return f"wss://localhost:{self.wss.port}{path}"
        return f"ws://127.0.0.1:{self.ws.port}{path}"

    def stop(self) -> None:
        async def close() -> None:
            for server in (self.ws, self.wss):
                server.close()
                await server.wait_closed()

        self.loop.run(close())
        self.loop.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    running = Servers()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    stdin: str = "",
) -> tuple[int, list[str], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = cli.main(["connect", *args])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def test_header_and_subprotocol(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    servers.requests.clear()
    status, out, _ = run(
        monkeypatch,
        capsys,
        servers.url(),
        "-H",
        "X-Token: abc",
        "--header",
        "X-Other:  two ",
        "--subprotocol",
        "nope",
        "--subprotocol",
        "chat",
        stdin="hi\n",
    )
    assert status == 0
    assert "; subprotocol chat;" in out[0]
    assert out[1:] == ["< hi"]
    headers = servers.requests[-1].headers
    assert headers["X-Token"] == "abc" and headers["X-Other"] == "two"
    assert headers["Sec-WebSocket-Protocol"] == "nope, chat"


def test_a_header_without_a_colon_is_refused(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(monkeypatch, capsys, servers.url(), "-H", "no colon")
    assert status == 1 and "invalid header 'no colon'" in err


def test_binary_messages_as_repr_or_hex(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(monkeypatch, capsys, servers.url(), "--binary", stdin="ab\n")
    assert status == 0 and "as binary" in out[0] and out[1:] == ["< b'ab'"]
    status, out, _ = run(monkeypatch, capsys, servers.url(), "--binary", "--hex", stdin="é\n")
    assert status == 0 and out[1:] == ["< [2 bytes] c3 a9"]


def test_control_characters_are_escaped(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(monkeypatch, capsys, servers.url("/greet"), stdin="tab\there\n")
    assert status == 0
    assert out[1:] == ["< red\\x1b[31m\\nline\\u202eevil tab\there"]


def test_insecure_skips_the_certificate_check_with_a_warning(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(monkeypatch, capsys, servers.url(tls=True), stdin="x\n")
    assert status == 1 and "certificate verification failed" in err
    status, out, err = run(
        monkeypatch, capsys, servers.url(tls=True), "--insecure", stdin="secure?\n"
    )
    assert status == 0 and out[1:] == ["< secure?"]
    assert "warning: --insecure" in err


def test_proxy(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = Tinyproxy(auth=("alice", "pass-word_1"))
    try:
        status, _, err = run(monkeypatch, capsys, servers.url(), "--proxy", proxy.url)
        assert status == 1 and "HTTP 407" in err  # it went through the proxy
        good = f"http://alice:pass-word_1@127.0.0.1:{proxy.port}"
        status, out, _ = run(monkeypatch, capsys, servers.url(), "--proxy", good, stdin="p\n")
        assert status == 0 and out[1:] == ["< p"]
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        status, out, _ = run(monkeypatch, capsys, servers.url(), "--proxy", "none", stdin="d\n")
        assert status == 0 and out[1:] == ["< d"]
        status, _, err = run(monkeypatch, capsys, servers.url(), "--proxy", "ftp://x")
        assert status == 1 and "invalid proxy" in err
    finally:
        proxy.stop()


def test_ping_prints_round_trips(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(
        monkeypatch, capsys, servers.url("/slow"), "--ping", "0.05", stdin="late\n"
    )
    assert status == 0
    pongs = [line for line in out if line.startswith("% pong in ")]
    assert pongs and all(line.endswith(" ms") for line in pongs)
    assert "< late" in out
    with pytest.raises(SystemExit):
        cli.main(["connect", servers.url(), "--ping", "0"])
