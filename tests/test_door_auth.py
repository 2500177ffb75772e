"""At the server's door: basic authentication, routing by path, subprotocol selection.

The decisions are the sans-I/O :mod:`blazews.sansio.door`'s (tested alone first);
then every server front end (asyncio coroutines, Listener, blocking) against a real
client: the status answered, the user name and path parameters the connection sees.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

import blazews
from blazews import BasicAuth, InvalidStatus, Listener, Request, Router, ServerOptions, sync
from blazews.sansio.door import NO_PARAMS, Door
from blazews.sansio.http11 import Headers

FRONT_ENDS = ["asyncio", "listener", "sync"]
USERS = {"alice": "wonder land", "bob": "p\u00e4ss:word"}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(path: str = "/", *headers: tuple[str, str]) -> Request:
    return Request(path, Headers(list(headers)))


# -- the sans-I/O decisions -------------------------------------------------------------


def test_credentials_are_parsed_from_the_authorization_header() -> None:
    auth = BasicAuth("blazews", USERS)
    header = ("Authorization", _basic("bob", "p\u00e4ss:word"))
    # Split at the first colon only; UTF-8.
    assert auth.credentials_of(_request("/", header)) == ("bob", "p\u00e4ss:word")
    assert auth.credentials_of(_request("/", ("authorization", "basic  YTpi "))) == ("a", "b")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),
        ([("Authorization", "Bearer abc")], 401),  # another scheme: ask for Basic
        ([("Authorization", "Basic !!!")], 400),
        ([("Authorization", "Basic " + base64.b64encode(b"nocolon").decode())], 400),
        ([("Authorization", "Basic " + base64.b64encode(b"\xff:x").decode())], 400),
        ([("Authorization", _basic("a", "b")), ("Authorization", _basic("a", "b"))], 400),
    ],
)
def test_missing_or_malformed_credentials_are_answered(
    headers: list[tuple[str, str]], status: int
) -> None:
    answer = BasicAuth("my realm", USERS).credentials_of(_request("/", *headers))
    assert isinstance(answer, blazews.Response)
    assert answer.status_code == status
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="my realm", charset="UTF-8"'
    else:
        assert "WWW-Authenticate" not in answer.headers


def test_passwords_are_verified() -> None:
    auth = BasicAuth("r", USERS)
    assert auth.verify("alice", "wonder land") is True
    assert auth.verify("alice", "wonder lan") is False
    assert auth.verify("alice", "wonder land ") is False
    assert auth.verify("carol", "wonder land") is False  # unknown user
    assert auth.verify("bob", "p\u00e4ss:word") is True
    checked: list[tuple[str, str]] = []
    by_function = BasicAuth("r", check=lambda u, p: checked.append((u, p)) is None and u == p)
    assert by_function.verify("x", "x") is True and by_function.verify("x", "y") is False
    assert checked == [("x", "x"), ("x", "y")]
    assert by_function.may_wait and not auth.may_wait


def test_basic_auth_arguments_are_checked() -> None:
    for realm in ['say "hi"', "back\\slash", "new\nline"]:
        with pytest.raises(ValueError, match="realm"):
            BasicAuth(realm, USERS)
    with pytest.raises(ValueError, match="either credentials or check"):
        BasicAuth("r")
    with pytest.raises(ValueError, match="either credentials or check"):
        BasicAuth("r", USERS, check=lambda u, p: True)
    with pytest.raises(TypeError, match="callable"):
        BasicAuth("r", check="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str user names"):
        BasicAuth("r", {"a": b"b"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="':'"):
        BasicAuth("r", {"a:b": "c"})
    with pytest.raises(TypeError, match="basic_auth must be BasicAuth"):
        ServerOptions(basic_auth=USERS)  # type: ignore[arg-type]
    assert "2 users" in repr(BasicAuth("r", USERS))


def test_router_matches_paths_and_parameters() -> None:
    router = Router({"/chat": "chat", "/feed/{id}": "feed", "/a/{x}/b/{y}": "ab", "/": "root"})
    assert router.match("/chat") == ("chat", {})
    assert router.match("/chat?room=1") == ("chat", {})  # the query is not matched
    assert router.match("/feed/42") == ("feed", {"id": "42"})
    assert router.match("/feed/caf%C3%A9%2F1") == ("feed", {"id": "caf\u00e9/1"})
    assert router.match("/a/1/b/2") == ("ab", {"x": "1", "y": "2"})
    assert router.match("/") == ("root", {})
    for unknown in ["/chat/", "/feed", "/feed/", "/feed/1/2", "/Chat", "/a/1/b"]:
        assert router.match(unknown) is None, unknown


@pytest.mark.parametrize("pattern", ["chat", "/feed/{id", "/feed/x{id}", "/a/{x}/{x}", "/{1x}"])
def test_router_refuses_bad_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        Router({pattern: "x"})


def test_the_door_checks_credentials_before_the_path() -> None:
    door = Door(BasicAuth("r", USERS), Router({"/chat": "chat"}))
    # No credentials on an unknown path: 401, which tells nothing about the routes.
    refusal = door.admit(_request("/nope")).refusal
    assert refusal is not None and refusal.status_code == 401
    # Wrong credentials on an unknown path: 401 as well, once verified.
    admission = door.admit(_request("/nope", ("Authorization", _basic("alice", "x"))))
    decided = door.decide(admission, bool(door.verify(admission)))
    assert decided is not None and decided.status_code == 401
    # Good credentials: 404 for an unknown path, in for a route.
    admission = door.admit(_request("/nope", ("Authorization", _basic("alice", "wonder land"))))
    decided = door.decide(admission, bool(door.verify(admission)))
    assert decided is not None and decided.status_code == 404
    admission = door.admit(_request("/chat", ("Authorization", _basic("alice", "wonder land"))))
    assert door.decide(admission, bool(door.verify(admission))) is None
    assert (admission.username, admission.target, admission.password) == ("alice", "chat", "")
    # A router alone: 404 at once; no auth, no user.
    refusal = Door(None, Router({"/": 1})).admit(_request("/x")).refusal
    assert refusal is not None and refusal.status_code == 404
    admission = Door(None, Router({"/": 1})).admit(_request("/"))
    assert admission.username is None and admission.path_params == {}


# -- every front end ------------------------------------------------------------------


def _who(conn: Any) -> str:
    return f"{conn.username}|{sorted(conn.path_params.items())}"


async def _tell(conn: Any) -> None:
    await conn.send(_who(conn))
    async for message in conn:
        await conn.send(message)


def _sync_tell(conn: Any) -> None:
    conn.send(_who(conn))
    for message in conn:
        conn.send(message)


class Tell(Listener):
    def on_connect(self, conn: Any) -> None:
        conn.send(_who(conn))


def _prefixed(prefix: str, base: Any) -> Any:
    """The same handler (or Listener), telling its route too."""
    if base is Tell:

        class Routed(Listener):
            def on_connect(self, conn: Any) -> None:
                conn.send(prefix + _who(conn))

        return Routed
    if base is _sync_tell:

        def sync_routed(conn: Any) -> None:
            conn.send(prefix + _who(conn))
            for _ in conn:
                pass

        return sync_routed

    async def routed(conn: Any) -> None:
        await conn.send(prefix + _who(conn))
        async for _ in conn:
            pass

    return routed


HANDLERS: dict[str, Any] = {"asyncio": _tell, "listener": Tell, "sync": _sync_tell}


@contextmanager
def _sync_server(handler: Any, **options: Any) -> Iterator[int]:
    with sync.serve(handler, "127.0.0.1", 0, **options) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.port
        finally:
            server.shutdown()
            thread.join(5)


@asynccontextmanager
async def _server(front_end: str, handler: Any = None, **options: Any) -> AsyncIterator[int]:
    handler = HANDLERS[front_end] if handler is None else handler
    if front_end == "sync":
        with _sync_server(handler, **options) as port:
            yield port
        return
    serving = blazews.serve_listener if front_end == "listener" else blazews.serve
    async with serving(handler, "127.0.0.1", 0, **options) as server:
        yield server.port


async def _first(port: int, path: str = "/", **options: Any) -> str:
    """Connect; return the first message the server sends, or raise InvalidStatus."""
    async with blazews.connect(f"ws://127.0.0.1:{port}{path}", **options) as conn:
        return str(await asyncio.wait_for(conn.recv(), 10))


async def _status(port: int, path: str = "/", **options: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await _first(port, path, **options)
    return info.value


def _auth(user: str, password: str) -> dict[str, Any]:
    return {"additional_headers": [("Authorization", _basic(user, password))]}


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_basic_auth_with_credentials(front_end: str) -> None:
    auth = BasicAuth("blazews test", USERS)
    async with _server(front_end, basic_auth=auth) as port:
        assert await _first(port, **_auth("alice", "wonder land")) == "alice|[]"
        assert await _first(port, **_auth("bob", "p\u00e4ss:word")) == "bob|[]"
        for user, password in [("alice", "wrong"), ("carol", "wonder land"), ("", "")]:
            refused = await _status(port, **_auth(user, password))
            assert refused.response.status_code == 401
            challenge = refused.response.headers["WWW-Authenticate"]
            assert challenge == 'Basic realm="blazews test", charset="UTF-8"'
        assert (await _status(port)).response.status_code == 401
        malformed = {"additional_headers": [("Authorization", "Basic %%%")]}
        assert (await _status(port, **malformed)).response.status_code == 400


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_basic_auth_with_a_check_function(front_end: str) -> None:
    def check(user: str, password: str) -> bool:
        return user == "svc" and password == "token"

    async with _server(front_end, basic_auth=BasicAuth("r", check=check)) as port:
        assert await _first(port, **_auth("svc", "token")) == "svc|[]"
        assert (await _status(port, **_auth("svc", "x"))).response.status_code == 401


@pytest.mark.parametrize("front_end", ["asyncio", "listener"])
async def test_basic_auth_with_a_coroutine_check(front_end: str) -> None:
    seen: list[str] = []

    async def check(user: str, password: str) -> bool:
        await asyncio.sleep(0.01)  # a database lookup
        seen.append(user)
        return password == "pw-" + user

    async with _server(front_end, basic_auth=BasicAuth("r", check=check)) as port:
        assert await _first(port, **_auth("dana", "pw-dana")) == "dana|[]"
        assert (await _status(port, **_auth("dana", "pw"))).response.status_code == 401
    assert seen == ["dana", "dana"]


async def test_a_coroutine_check_on_the_blocking_server_is_a_500() -> None:
    async def check(user: str, password: str) -> bool:  # pragma: no cover - never awaited
        return True

    async with _server("sync", basic_auth=BasicAuth("r", check=check)) as port:
        assert (await _status(port, **_auth("a", "b"))).response.status_code == 500


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_a_failing_check_is_a_500_and_the_server_goes_on(front_end: str) -> None:
    def check(user: str, password: str) -> bool:
        if user == "boom":
            raise RuntimeError("database down")
        return True

    async with _server(front_end, basic_auth=BasicAuth("r", check=check)) as port:
        assert (await _status(port, **_auth("boom", "x"))).response.status_code == 500
        assert await _first(port, **_auth("ok", "x")) == "ok|[]"


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_process_request_runs_after_the_door_and_sees_the_user(front_end: str) -> None:
    seen: list[str | None] = []

    def process_request(conn: Any, request: Request) -> Any:
        seen.append(conn.username)
        return conn.reject(403, "not you") if conn.username == "bob" else None

    auth = BasicAuth("r", USERS)
    async with _server(front_end, basic_auth=auth, process_request=process_request) as port:
        assert await _first(port, **_auth("alice", "wonder land")) == "alice|[]"
        assert (await _status(port, **_auth("bob", "p\u00e4ss:word"))).response.status_code == 403
        assert (await _status(port, **_auth("bob", "nope"))).response.status_code == 401
    assert seen == ["alice", "bob"]  # not run for a refused client


def _router(front_end: str) -> Router[Any]:
    base = HANDLERS[front_end]
    return Router({"/chat": _prefixed("chat:", base), "/feed/{id}": _prefixed("feed:", base)})


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_routing_by_path(front_end: str) -> None:
    async with _server(front_end, _router(front_end)) as port:
        assert await _first(port, "/chat") == "chat:None|[]"
        assert await _first(port, "/chat?since=3") == "chat:None|[]"
        assert await _first(port, "/feed/42") == "feed:None|[('id', '42')]"
        assert await _first(port, "/feed/a%20b") == "feed:None|[('id', 'a b')]"
        for unknown in ["/", "/feed", "/feed/1/2", "/chatroom"]:
            refused = await _status(port, unknown)
            assert refused.response.status_code == 404, unknown


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_routing_with_basic_auth(front_end: str) -> None:
    auth = BasicAuth("r", USERS)
    async with _server(front_end, _router(front_end), basic_auth=auth) as port:
        alice = _auth("alice", "wonder land")
        assert await _first(port, "/feed/7", **alice) == "feed:alice|[('id', '7')]"
        assert (await _status(port, "/nope")).response.status_code == 401
        assert (await _status(port, "/nope", **alice)).response.status_code == 404
        assert (await _status(port, "/chat", **_auth("alice", "x"))).response.status_code == 401


async def test_without_a_door_connections_have_no_user_and_no_parameters() -> None:
    async with _server("asyncio") as port:
        assert await _first(port) == "None|[]"
    server_conn_params: list[Any] = []

    async def handler(conn: Any) -> None:
        server_conn_params.append(conn.path_params)

    async with _server("asyncio", handler) as port:
        async with blazews.connect(f"ws://127.0.0.1:{port}/") as conn:
            await conn.wait_closed()
    assert server_conn_params == [NO_PARAMS]


# -- subprotocol selection ------------------------------------------------------------


def _select(offered: Sequence[str], request: Request) -> str | None:
    # Each path speaks its own protocol: /v2 takes the newest offered.
    if request.path.startswith("/v2"):
        return max(offered)
    return min(offered) if request.headers.get("X-Old") else None


@pytest.mark.parametrize("front_end", FRONT_ENDS)
async def test_select_subprotocol_gets_the_request(front_end: str) -> None:
    async def handler(conn: Any) -> None:
        await conn.send(str(conn.subprotocol))

    class Say(Listener):
        def on_connect(self, conn: Any) -> None:
            conn.send(str(conn.subprotocol))

    def sync_handler(conn: Any) -> None:
        conn.send(str(conn.subprotocol))

    chosen = {"asyncio": handler, "listener": Say, "sync": sync_handler}[front_end]
    offer = {"subprotocols": ["chat.v1", "chat.v2"]}
    # The selector decides alone: subprotocols= (what the default policy picks from)
    # is not consulted, even where it lists none of the offers.
    async with _server(
        front_end, chosen, select_subprotocol=_select, subprotocols=["other"]
    ) as port:
        assert await _first(port, "/v2/x", **offer) == "chat.v2"
        assert await _first(port, "/", **offer) == "None"
        old = {**offer, "additional_headers": [("X-Old", "1")]}
        assert await _first(port, "/", **old) == "chat.v1"
    async with _server(front_end, chosen, select_subprotocol=lambda offered: offered[-1]) as port:
        assert await _first(port, "/", **offer) == "chat.v2"  # one argument: still works
