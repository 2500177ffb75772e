"""Redirects of the opening handshake, without I/O: :mod:`blazews.sansio.redirect`."""

from __future__ import annotations

import pytest

from blazews.exceptions import InvalidRedirect, InvalidStatus, InvalidURI
from blazews.sansio.http11 import Headers, Response
from blazews.sansio.redirect import Redirects


def to(status: int, location: str | None) -> InvalidStatus:
    headers = Headers([("Location", location)] if location is not None else [])
    return InvalidStatus(Response(status, "", headers, b""))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_follows_each_redirect_status(status: int) -> None:
    redirects = Redirects("ws://h/a/b?x")
    uri = redirects.follow(to(status, "c"))
    assert uri is not None and uri.resource_name == "/a/c" and not redirects.cross_origin
    assert redirects.chain == ["ws://h/a/b?x", "ws://h/a/c"]


def test_not_redirects() -> None:
    redirects = Redirects("ws://h/")
    assert redirects.follow(to(300, "/x")) is None
    assert redirects.follow(to(304, "/x")) is None
    assert redirects.follow(to(403, "/x")) is None
    assert Redirects("ws://h/", 0).follow(to(302, "/x")) is None


def test_origins_and_schemes() -> None:
    redirects = Redirects("ws://h/")
    uri = redirects.follow(to(302, "https://other:8443/p"))
    assert uri is not None and uri.secure and (uri.host, uri.port) == ("other", 8443)
    assert redirects.cross_origin
    same_host_other_port = Redirects("ws://h/")
    same_host_other_port.follow(to(302, "ws://h:81/"))
    assert same_host_other_port.cross_origin
    upgrade = Redirects("ws://h/")
    upgrade.follow(to(302, "wss://h/"))
    assert upgrade.cross_origin  # another scheme: another origin
    with pytest.raises(InvalidRedirect, match="wss:// to ws://") as info:
        Redirects("wss://h/").follow(to(307, "http://h/"))
    assert info.value.chain == ["wss://h/", "ws://h/"] and info.value.status == 307
    with pytest.raises(InvalidURI):
        Redirects("ws://h/").follow(to(302, "ftp://h/"))


def test_loops_and_limits() -> None:
    redirects = Redirects("ws://h/a")
    redirects.follow(to(302, "/b"))
    with pytest.raises(InvalidRedirect, match="loop: ws://h/a -> ws://h/b -> ws://h/a"):
        redirects.follow(to(302, "/a"))
    redirects = Redirects("ws://h/0", max_redirects=3)
    for n in range(1, 4):
        redirects.follow(to(301, f"/{n}"))
    with pytest.raises(InvalidRedirect, match="more than 3") as info:
        redirects.follow(to(301, "/4"))
    assert len(info.value.chain) == 5
    with pytest.raises(InvalidRedirect, match="without Location"):
        Redirects("ws://h/").follow(to(302, None))
