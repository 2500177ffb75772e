"""Reconnecting clients against real servers: ``async for conn in blazews.connect``,
``async for conn, listener in blazews.connect_listener`` and
``for conn in blazews.sync.reconnect``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import blazews
from blazews import sync
from blazews.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from tests.client.support import QUICK, EchoProcess
from tests.sync.support import LoopThread


class Script:
    """A server whose n-th connection does what ``plan[n]`` says: ``"echo"``,
    ``"close:CODE"`` (greet, then close with CODE), or ``"reject:STATUS"``."""

    def __init__(self, *plan: str) -> None:
        self.plan = list(plan)
        self.attempts = 0
        self.at: list[float] = []
        self.steps: dict[int, str] = {}

    def _step(self) -> str:
        step = self.plan[min(self.attempts, len(self.plan) - 1)]
        return step

    def process_request(self, conn: Any, request: Any) -> Any:
        step = self._step()
        self.attempts += 1
        self.at.append(time.monotonic())
        if step.startswith("reject:"):
            status = int(step.split(":")[1])
            return conn.reject(status, "no\n", [("Retry-After", "1")])
        self.steps[id(conn)] = step
        return None

    async def handler(self, conn: Any) -> None:
        await conn.send(f"hello {self.attempts}")
        step = self.steps[id(conn)]
        if step.startswith("close:"):
            await conn.close(int(step.split(":")[1]))
            return
        async for message in conn:
            await conn.send(message)

    async def serve(self) -> Any:
        return await blazews.serve(
            self.handler, "127.0.0.1", 0, process_request=self.process_request
        )


@pytest.fixture
async def scripted() -> AsyncIterator[Any]:
    servers: list[Any] = []

    async def start(*plan: str) -> tuple[Script, str]:
        script = Script(*plan)
        server = await script.serve()
        servers.append(server)
        return script, f"ws://127.0.0.1:{server.port}/"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_reconnects_after_a_server_restart() -> None:
    echo = EchoProcess()
    echo.start()
    try:
        seen = 0
        async for conn in blazews.connect(echo.url, **QUICK):  # type: ignore[arg-type]
            await conn.send(f"try {seen}")
            assert await conn.recv() == f"try {seen}"
            seen += 1
            if seen == 2:
                await conn.close()
                break
            echo.kill()  # SIGKILL: no close frame (1006), then refused connections
            with pytest.raises(ConnectionClosed):
                await conn.recv()
            with pytest.raises(ConnectionClosed):  # nothing is lost silently
                await conn.send("lost")
            echo.start()
    finally:
        echo.kill()
    assert seen == 2


async def test_reconnects_after_1012(scripted: Any) -> None:
    script, url = await scripted("close:1012", "echo")
    codes = []
    async for conn in blazews.connect(url, **QUICK):  # type: ignore[arg-type]
        assert await conn.recv() == f"hello {script.attempts}"
        try:
            await conn.send("ping")
            assert await conn.recv() == "ping"
        except ConnectionClosedError as exc:
            codes.append(exc.code)
            continue
        break
    await conn.close()
    assert codes == [1012] and script.attempts == 2


async def test_a_normal_close_by_the_server_ends_the_loop(scripted: Any) -> None:
    script, url = await scripted("close:1000")
    async for conn in blazews.connect(url, **QUICK):  # type: ignore[arg-type]
        await conn.wait_closed()
    assert script.attempts == 1


async def test_a_policy_violation_close_is_raised(scripted: Any) -> None:
    script, url = await scripted("close:1008")
    with pytest.raises(ConnectionClosedError) as info:
        async for conn in blazews.connect(url, **QUICK):  # type: ignore[arg-type]
            await conn.wait_closed()
    assert info.value.code == 1008 and script.attempts == 1


async def test_retries_503_after_retry_after(scripted: Any) -> None:
    script, url = await scripted("reject:503", "echo")
    async for conn in blazews.connect(url, **(QUICK | {"reconnect_max_delay": 30.0})):  # type: ignore[arg-type]
        await conn.close()
        break
    assert script.attempts == 2
    assert script.at[1] - script.at[0] >= 0.95  # Retry-After: 1, not the 50 ms backoff


async def test_no_retry_on_403(scripted: Any) -> None:
    script, url = await scripted("reject:403", "echo")
    with pytest.raises(InvalidStatus) as info:
        async for _ in blazews.connect(url, **QUICK):  # type: ignore[arg-type]
            pytest.fail("no connection expected")
    assert info.value.status == 403 and script.attempts == 1


async def test_process_exception_can_retry_a_403(scripted: Any) -> None:
    script, url = await scripted("reject:403", "echo")
    seen: list[Exception] = []

    def retry_all(exc: Exception) -> Exception | None:
        seen.append(exc)
        return None

    async for conn in blazews.connect(url, **QUICK, process_exception=retry_all):  # type: ignore[arg-type]
        await conn.close()
        break
    assert script.attempts == 2 and isinstance(seen[0], InvalidStatus)


async def test_listener_reconnects(scripted: Any) -> None:
    _, url = await scripted("close:1012", "echo")

    class Collect(blazews.Listener):
        def __init__(self) -> None:
            self.messages: list[bytes] = []
            self.closed = asyncio.get_running_loop().create_future()

        def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
            self.messages.append(bytes(payload))

        def on_close(self, conn: Any, code: int, reason: str) -> None:
            self.closed.set_result(code)

    listeners = []
    async for conn, listener in blazews.connect_listener(Collect, url, **QUICK):  # type: ignore[arg-type]
        listeners.append(listener)
        if len(listeners) == 2:
            conn.send("sub")
            while b"sub" not in listener.messages:
                await asyncio.sleep(0.01)
            await conn.close()
            break
    assert await listeners[0].closed == 1012
    assert listeners[0].messages == [b"hello 1"]
    assert listeners[1].messages == [b"hello 2", b"sub"]


# -- the blocking client ------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[Any]:
    lt = LoopThread()
    servers: list[Any] = []

    def start(*plan: str) -> tuple[Script, str]:
        script = Script(*plan)
        server = lt.run(script.serve())
        servers.append(server)
        return script, f"ws://127.0.0.1:{server.port}/"

    yield start

    async def stop() -> None:
        for server in servers:
            server.close()
            await server.wait_closed()

    lt.run(stop())
    lt.stop()


def test_sync_reconnects_after_a_server_restart() -> None:
    echo = EchoProcess()
    echo.start()
    try:
        seen = 0
        for conn in sync.reconnect(echo.url, **QUICK):  # type: ignore[arg-type]
            conn.send(f"try {seen}")
            assert conn.recv(timeout=20) == f"try {seen}"
            seen += 1
            if seen == 2:
                conn.close()
                break
            echo.kill()
            with pytest.raises(ConnectionClosed):
                conn.recv(timeout=20)
            echo.start()
    finally:
        echo.kill()
    assert seen == 2


def test_sync_reconnects_after_1012_and_503(served: Any) -> None:
    script, url = served("close:1012", "reject:503", "echo")
    greetings = []
    start = time.monotonic()
    for conn in sync.reconnect(url, **(QUICK | {"reconnect_max_delay": 30.0})):  # type: ignore[arg-type]
        greetings.append(conn.recv(timeout=20))
        try:
            conn.send("x")
            assert conn.recv(timeout=20) == "x"
        except ConnectionClosedError as exc:
            assert exc.code == 1012
            continue
        conn.close()
        break
    assert greetings == ["hello 1", "hello 3"]
    assert script.attempts == 3 and script.at[2] - script.at[1] >= 0.95
    assert time.monotonic() - start >= 0.95


def test_sync_no_retry_on_403(served: Any) -> None:
    script, url = served("reject:403")
    with pytest.raises(InvalidStatus):
        for _ in sync.reconnect(url, **QUICK):  # type: ignore[arg-type]
            pytest.fail("no connection expected")
    assert script.attempts == 1


def test_sync_reconnect_checks_at_the_call() -> None:
    with pytest.raises(blazews.InvalidURI):
        sync.reconnect("http://example.com/")
    with pytest.raises(TypeError, match="reconnect_delay"):
        sync.reconnect("ws://example.com/", reconnect_delay=1)  # type: ignore[call-arg]


def test_sync_a_thread_can_stop_the_loop(served: Any) -> None:
    # The body's close, from the loop's own thread: the iteration goes on to a new one.
    script, url = served("echo")
    for count, conn in enumerate(sync.reconnect(url, **QUICK), 1):  # type: ignore[arg-type]
        threading.Thread(target=conn.close).start()
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=20)
            conn.recv(timeout=20)
        if count == 2:
            break
    assert script.attempts == 2


async def test_a_certificate_that_fails_verification_is_raised_at_once() -> None:
    import ssl

    import trustme

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(context)
    attempts = 0

    def count(conn: Any, request: Any) -> None:
        nonlocal attempts
        attempts += 1

    async with blazews.serve(
        Script("echo").handler, "127.0.0.1", 0, ssl=context, process_request=count
    ) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            async for _ in blazews.connect(f"wss://localhost:{server.port}/", **QUICK):  # type: ignore[arg-type]
                pytest.fail("no connection expected")
    assert attempts == 0
