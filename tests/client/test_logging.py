"""Connections' logging: the ``blazews.client`` and ``blazews.server`` loggers, the
``logger`` option, the connection id in every record, and the debug traces of the
handshake and the frames, in both front ends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import blazews
from blazews import sync
from tests.sync.support import LoopThread


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def records() -> Iterator[tuple[logging.Logger, Records]]:
    logger = logging.getLogger("tests.client.logging")
    handler = Records()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


@pytest.fixture
def server_records() -> Iterator[Records]:
    logger = logging.getLogger("blazews.server")
    handler = Records()
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.setLevel(old)
    logger.removeHandler(handler)


async def echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


def check_client_trace(lines: list[str], conn_id: int) -> None:
    prefix = f"[{conn_id}] "
    assert all(line.startswith(prefix) for line in lines), lines
    lines = [line[len(prefix) :] for line in lines]
    assert lines[0] == "> GET / HTTP/1.1"
    assert "> Authorization: ***" in lines  # credentials never reach the log
    assert "< HTTP/1.1 101 Switching Protocols" in lines
    frames = [line for line in lines if "len=" in line]
    # (the reader thread of a blocking connection may trace the echo first)
    assert sorted(frames[:2]) == ["< TEXT fin len=2", "> TEXT fin masked len=2"]
    assert "> CLOSE fin masked len=2" in frames and "< CLOSE fin len=2" in frames


async def test_asyncio_debug_traces(
    records: tuple[logging.Logger, Records], server_records: Records
) -> None:
    logger, handler = records
    async with blazews.serve(echo, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        options: Any = {"proxy": None, "compression": None, "logger": logger}
        headers = [("Authorization", "Bearer secret")]
        async with blazews.connect(url, additional_headers=headers, **options) as conn:
            await conn.send("hi")
            assert await conn.recv() == "hi"
        await conn.wait_closed()
        check_client_trace(handler.lines(), conn.id)
        assert all(getattr(r, "websocket_id", None) == conn.id for r in handler.records)
        (server_conn_id,) = {r.websocket_id for r in server_records.records}  # type: ignore[attr-defined]
        server_lines = server_records.lines()
        assert f"[{server_conn_id}] < GET / HTTP/1.1" in server_lines
        assert f"[{server_conn_id}] < TEXT fin masked len=2" in server_lines
        assert f"[{server_conn_id}] > TEXT fin len=2" in server_lines
        assert not any("Bearer" in line for line in server_lines + handler.lines())


async def test_nothing_is_traced_when_debug_is_off(records: tuple[logging.Logger, Records]) -> None:
    logger, handler = records
    logger.setLevel(logging.INFO)
    async with blazews.serve(echo, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with blazews.connect(url, proxy=None, logger=logger) as conn:
            assert type(conn.transport).__name__ != "TracedTransport"
            await conn.send("hi")
            assert await conn.recv() == "hi"
    assert handler.records == []


async def test_a_logger_adapter_keeps_its_context(
    records: tuple[logging.Logger, Records],
) -> None:
    logger, handler = records

    class Tagged(logging.LoggerAdapter):  # type: ignore[type-arg]
        def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
            return f"app: {msg}", {**kwargs, "extra": self.extra}

    adapter = Tagged(logger, {"app": "feed"})

    async def fail(conn: Any) -> None:
        raise RuntimeError("boom")

    async with blazews.serve(fail, "127.0.0.1", 0, logger=adapter) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with blazews.connect(url, proxy=None) as conn:
            await conn.wait_closed()
    failed = [r for r in handler.records if "handler failed" in r.getMessage()]
    assert len(failed) == 1
    record: Any = failed[0]
    assert record.app == "feed" and isinstance(record.websocket_id, int)
    assert record.getMessage() == f"app: [{record.websocket_id}] connection handler failed"
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_sync_debug_traces(records: tuple[logging.Logger, Records]) -> None:
    logger, handler = records
    loop = LoopThread()
    try:

        async def start() -> Any:
            return await blazews.serve(echo, "127.0.0.1", 0, compression=None)

        server = loop.run(start())
        url = f"ws://127.0.0.1:{server.port}/"
        headers = [("Authorization", "Basic c2VjcmV0")]
        options: Any = {"proxy": None, "compression": None, "logger": logger}
        with sync.connect(url, additional_headers=headers, **options) as conn:
            conn.send("hi")
            assert conn.recv(timeout=20) == "hi"
        check_client_trace(handler.lines(), conn.id)

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        loop.run(stop())
    finally:
        loop.stop()


def test_the_logger_option_is_checked() -> None:
    with pytest.raises(TypeError, match="logger must be"):
        blazews.ClientOptions(logger="blazews")  # type: ignore[arg-type]
