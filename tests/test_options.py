"""The options objects: one list per role, checked once, at every entry point."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, get_type_hints

import pytest

import blazews
from blazews import ClientOptions, ConnectionOptions, InvalidStatus, ServerOptions, sync
from blazews.options import ClientKeywords, ServerKeywords


def _entry_points() -> dict[str, Callable[..., Any]]:
    """Each entry point, called with options only (nothing opens before they pass)."""
    return {
        "connect": lambda **kw: blazews.connect("ws://127.0.0.1:9/", **kw),
        "connect_listener": lambda **kw: blazews.connect_listener(
            blazews.Listener, "ws://127.0.0.1:9/", **kw
        ),
        "sync.connect": lambda **kw: sync.connect("ws://127.0.0.1:9/", **kw),
        "serve": lambda **kw: blazews.serve(lambda conn: None, "127.0.0.1", 0, **kw),
        "serve_listener": lambda **kw: blazews.serve_listener(
            blazews.Listener, "127.0.0.1", 0, **kw
        ),
        "sync.serve": lambda **kw: sync.serve(lambda conn: None, "127.0.0.1", 0, **kw),
    }


ENTRY_POINTS = _entry_points()


@pytest.mark.parametrize(
    ("options", "keywords"), [(ClientOptions, ClientKeywords), (ServerOptions, ServerKeywords)]
)
def test_keywords_match_the_options(options: type[Any], keywords: type[Any]) -> None:
    # The keyword form (for type checkers) lists the same options with the same types.
    fields = {f.name: f.type for f in dataclasses.fields(options)}
    hints = get_type_hints(keywords)
    assert set(hints) == set(fields)
    assert get_type_hints(options) == hints


def test_defaults_are_documented_values() -> None:
    options = ConnectionOptions()
    assert options.max_message_size == blazews.DEFAULT_MAX_MESSAGE_SIZE == 1 << 20
    assert (options.ping_interval, options.ping_timeout) == (20.0, 20.0)
    assert (options.open_timeout, options.close_timeout) == (10.0, 10.0)
    assert (options.max_queue, options.write_limit) == (16, 65536)
    assert (options.max_line, options.max_headers) == (8192, 128)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_queue = 1  # type: ignore[misc]


BAD = [
    ("max_queue", 0, ValueError, "max_queue must be at least 1"),
    ("max_queue", "16", TypeError, "max_queue must be an int"),
    ("max_message_size", -1, ValueError, "max_message_size must be at least 0"),
    ("max_message_size", 1.5, TypeError, "max_message_size must be an int or None"),
    ("ping_interval", 0, ValueError, "ping_interval must be more than 0"),
    ("ping_interval", True, TypeError, "ping_interval must be a number"),
    ("close_timeout", -1, ValueError, "close_timeout must be at least 0"),
    ("open_timeout", "10", TypeError, "open_timeout must be a number"),
    ("write_limit", (10, 20), ValueError, "write_limit must be a size in bytes"),
    ("write_limit", -1, ValueError, "write_limit must be a size in bytes"),
    ("compression", "gzip", ValueError, "compression must be 'deflate' or None"),
    ("subprotocols", "chat", TypeError, "subprotocols must be a sequence of str"),
    ("ssl", object(), TypeError, "ssl must be SSLContext or None"),
    ("max_line", 0, ValueError, "max_line must be at least 1"),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(("name", "value", "error", "message"), BAD, ids=lambda v: str(v)[:20])
def test_a_bad_value_is_refused_at_the_call(
    entry: str, name: str, value: Any, error: type[Exception], message: str
) -> None:
    refused = (entry.startswith("sync") and name == "write_limit") or (
        "listener" in entry and name == "max_queue"
    )
    if refused:  # an option the entry point has no use for is refused before it is checked
        error, message = TypeError, f"takes no '{name}' option"
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](**{name: value})


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_an_unknown_option_is_named_with_a_suggestion(entry: str) -> None:
    with pytest.raises(
        TypeError, match=r"unknown option 'ping_intervall' \(did you mean 'ping_interval'\?\)"
    ):
        ENTRY_POINTS[entry](ping_intervall=1.0)
    with pytest.raises(TypeError, match=r"unknown option 'frobnicate'$"):
        ENTRY_POINTS[entry](frobnicate=1)


@pytest.mark.parametrize(
    ("entry", "name", "reason"),
    [
        ("connect_listener", "max_queue", "a Listener has no queue"),
        ("serve_listener", "max_queue", "a Listener has no queue"),
        ("sync.connect", "write_limit", "writes its message before it returns"),
        ("sync.serve", "compress_in_thread", "compresses in the thread that sends"),
        ("sync.serve", "reuse_port", "serves from one process"),
    ],
)
def test_an_option_the_entry_point_has_no_use_for_is_refused(
    entry: str, name: str, reason: str
) -> None:
    value = {"reuse_port": True}.get(name, 1024)
    with pytest.raises(TypeError, match=f"takes no '{name}' option: .*{reason}"):
        ENTRY_POINTS[entry](**{name: value})
    role = ServerOptions if "serve" in entry else ClientOptions
    with pytest.raises(TypeError, match=f"takes no '{name}' option"):
        ENTRY_POINTS[entry](options=role(**{name: value}))


def test_an_options_object_of_the_other_role_is_refused() -> None:
    with pytest.raises(TypeError, match="options must be ClientOptions"):
        blazews.connect("ws://127.0.0.1:9/", options=ServerOptions())  # type: ignore[arg-type]


async def test_one_options_object_is_shared_by_every_connection() -> None:
    options = ServerOptions(ping_interval=None, max_queue=4, subprotocols=["chat"])
    async with blazews.serve(_echo, "127.0.0.1", 0, options=options) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        client = ClientOptions(subprotocols=["chat"], ping_interval=None)
        async with (
            blazews.connect(url, options=client) as one,
            blazews.connect(url, options=client) as two,
        ):
            assert one.options is two.options is client
            assert one.subprotocol == two.subprotocol == "chat"
            await one.send("x")
            assert await one.recv() == "x"
            served = list(server.connections)
            assert len(served) == 2 and all(conn.options is options for conn in served)
            assert all(conn.max_queue == 4 for conn in served)


async def test_keywords_go_on_top_of_an_options_object() -> None:
    async with blazews.serve(_echo, "127.0.0.1", 0) as server:
        base = ClientOptions(max_message_size=10, ping_interval=None)
        url = f"ws://127.0.0.1:{server.port}/"
        async with blazews.connect(url, options=base, max_message_size=100) as conn:
            assert conn.options.max_message_size == 100
            assert conn.options.ping_interval is None
            assert conn.protocol.max_message_size == 100
        assert base.max_message_size == 10


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


def test_sync_hook_returning_an_awaitable_is_refused_with_500() -> None:
    async def process_request(conn: Any, request: Any) -> None:
        return None

    with sync.serve(lambda conn: None, "127.0.0.1", 0, process_request=process_request) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        with pytest.raises(InvalidStatus) as info:
            sync.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5)
        assert info.value.response.status_code == 500
        server.shutdown()
