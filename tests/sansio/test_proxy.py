"""The proxy logic without I/O: URLs, the environment, NO_PROXY, HTTP CONNECT."""

from __future__ import annotations

import pytest

from blazews.exceptions import InvalidProxy
from blazews.sansio.proxy import (
    ENVIRONMENT,
    HttpConnect,
    bypassed,
    environment_proxies,
    parse_proxy,
    proxy_for,
    socks_options,
)
from blazews.sansio.uri import parse_uri


def test_parse_proxy() -> None:
    p = parse_proxy("http://us%40r:p%3Ass@proxy.example:3128")
    assert (p.scheme, p.host, p.port, p.username, p.password) == (
        "http",
        "proxy.example",
        3128,
        "us@r",
        "p:ss",
    )
    assert str(p) == "http://proxy.example:3128"  # no credentials in messages
    assert parse_proxy("https://h").port == 443
    assert parse_proxy("socks5h://h").port == 1080 and parse_proxy("socks5h://h").is_socks
    assert parse_proxy("h:8080").scheme == "http"  # HTTP_PROXY=host:port
    assert str(parse_proxy("http://[::1]:1")) == "http://[::1]:1"
    with pytest.raises(ValueError, match="scheme"):
        parse_proxy("ftp://h")
    with pytest.raises(ValueError, match="invalid port") as info:
        parse_proxy("http://u:secret@h:99999")
    assert "secret" not in str(info.value)


def test_socks_options() -> None:
    assert socks_options(parse_proxy("socks5h://a:b%2F@h:1")) == ("socks5://a:b%2F@h:1", True)
    assert socks_options(parse_proxy("socks4a://h")) == ("socks4://h:1080", True)
    assert socks_options(parse_proxy("socks5://u@h")) == ("socks5://u@h:1080", False)


def test_environment_like_urllib() -> None:
    env = {
        "HTTP_PROXY": "http://upper",
        "http_proxy": "http://lower",
        "HTTPS_PROXY": "http://secure",
        "ALL_PROXY": "socks5://all",
        "no_proxy": "",
        "NO_PROXY": "example.com",
        "PATH": "/bin",
    }
    assert environment_proxies(env) == {
        "http": "http://lower",
        "https": "http://secure",
        "all": "socks5://all",
    }
    # A CGI script: a client's "Proxy:" header becomes HTTP_PROXY; ignore it.
    assert "http" not in environment_proxies({"HTTP_PROXY": "x", "REQUEST_METHOD": "GET"})


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("www.example.com", 80, "example.com", True),
        ("www.example.com", 80, ".example.com", True),
        ("example.com", 80, "example.com", True),
        ("badexample.com", 80, "example.com", False),
        ("example.com", 8080, "example.com:8080", True),
        ("example.com", 80, "example.com:8080", False),
        ("anything", 1, "*", True),
        ("Example.COM", 1, " other , EXAMPLE.com ", True),
        ("127.0.0.1", 1, "", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_proxy_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    ws, wss = parse_uri("ws://h.example/"), parse_uri("wss://h.example/")
    assert proxy_for(ws, ENVIRONMENT) is None
    monkeypatch.setenv("HTTP_PROXY", "http://plain:1")
    monkeypatch.setenv("ALL_PROXY", "socks5://all:2")
    assert str(proxy_for(ws, ENVIRONMENT)) == "http://plain:1"
    assert str(proxy_for(wss, ENVIRONMENT)) == "socks5://all:2"
    monkeypatch.setenv("HTTPS_PROXY", "https://secure:3")
    assert str(proxy_for(wss, ENVIRONMENT)) == "https://secure:3"
    monkeypatch.setenv("NO_PROXY", "example")
    assert proxy_for(wss, ENVIRONMENT) is None
    assert proxy_for(wss, None) is None
    assert str(proxy_for(wss, "socks4://x")) == "socks4://x:1080"


def test_http_connect_request_and_answer() -> None:
    exchange = HttpConnect(parse_proxy("http://al%3Ai:pw@p:1"), parse_uri("wss://[::1]:9/x"))
    assert exchange.request() == (
        b"CONNECT [::1]:9 HTTP/1.1\r\nHost: [::1]:9\r\n"
        b"Proxy-Authorization: Basic YWw6aTpwdw==\r\n\r\n"
    )
    assert exchange.feed(b"HTTP/1.1 200 Connection established\r\n") is None
    # A 2xx ends at its head, whatever Content-Length says (RFC 9110 section 9.3.6).
    assert exchange.feed(b"Content-Length: 5\r\n\r\n\x16\x03") == b"\x16\x03"
    plain = HttpConnect(parse_proxy("http://p"), parse_uri("ws://h/"))
    assert b"Proxy-Authorization" not in plain.request()


def test_http_connect_refusals() -> None:
    exchange = HttpConnect(parse_proxy("http://p"), parse_uri("ws://h/"))
    with pytest.raises(InvalidProxy) as info:
        exchange.feed(b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\nno")
    assert info.value.status == 407
    assert info.value.response is not None and info.value.response.body == b"no"
    exchange = HttpConnect(parse_proxy("http://p"), parse_uri("ws://h/"))
    exchange.feed(b"HTTP/1.1 502 Bad Gateway\r\n\r\nupstream down")
    with pytest.raises(InvalidProxy) as info:
        exchange.feed_eof()
    assert info.value.status == 502
    exchange = HttpConnect(parse_proxy("http://p"), parse_uri("ws://h/"))
    exchange.feed(b"HTTP/1.1 20")
    with pytest.raises(InvalidProxy, match="closed") as info:
        exchange.feed_eof()
    assert info.value.status is None
    exchange = HttpConnect(parse_proxy("http://p"), parse_uri("ws://h/"), max_line=20)
    with pytest.raises(InvalidProxy, match="too long"):
        exchange.feed(b"HTTP/1.1 200 " + b"x" * 40)
