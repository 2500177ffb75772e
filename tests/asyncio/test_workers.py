"""serve(..., workers=N): real worker processes on one port; a killed worker comes
back and serves, SIGTERM drains with 1001, a second SIGINT exits at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import blazews
from blazews import ConnectionClosedOK
from tests.helpers import blocking_client
from tests.hub_support import RedisServer

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreading: Linux")


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def _wait(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class App:
    def __init__(self, workers: int, close_timeout: float = 5.0, *more: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.workers_app", str(workers), str(close_timeout), *more],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        _wait(lambda: len(_children(self.proc.pid)) == workers)
        self.url = f"ws://127.0.0.1:{self.port}/"

    def workers(self) -> set[int]:
        return _children(self.proc.pid)


@pytest.fixture
def apps() -> Iterator[list[App]]:
    started: list[App] = []
    yield started
    for app in started:
        if app.proc.poll() is None:
            for pid in app.workers():
                os.kill(pid, signal.SIGKILL)
            app.proc.kill()
        _, err = app.proc.communicate(timeout=10)
        print(err)  # (shown when a test fails)


async def _pid_of_new_connection(url: str) -> tuple[int, blazews.ClientConnection]:
    conn = await blazews.connect(url)
    return int(await asyncio.wait_for(conn.recv(), 10)), conn


async def test_a_killed_worker_comes_back_and_serves(apps: list[App]) -> None:
    app = App(2)
    apps.append(app)
    before = app.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    await asyncio.to_thread(lambda: _wait(lambda: len(app.workers() - {victim}) == 2))
    (new,) = app.workers() - before
    seen = set()
    for _ in range(200):  # the kernel spreads connections by their addresses
        pid, conn = await _pid_of_new_connection(app.url)
        await conn.send("ping")
        assert await asyncio.wait_for(conn.recv(), 10) == "ping"
        await conn.close()
        seen.add(pid)
        if new in seen:
            break
    assert new in seen and victim not in seen, (new, seen, app.workers())
    assert app.proc.poll() is None


async def test_sigterm_drains_every_worker_with_1001(apps: list[App]) -> None:
    app = App(2)
    apps.append(app)
    workers = app.workers()
    conns = [(await _pid_of_new_connection(app.url))[1] for _ in range(6)]
    app.proc.send_signal(signal.SIGTERM)
    for conn in conns:
        with pytest.raises(ConnectionClosedOK) as caught:
            await asyncio.wait_for(conn.recv(), 20)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001
    assert await asyncio.to_thread(app.proc.wait, 20) == 0
    assert not any(_alive(pid) for pid in workers)


def test_sigint_twice_exits_at_once(apps: list[App]) -> None:
    app = App(2, close_timeout=60.0)  # a drain could take a minute
    apps.append(app)
    workers = app.workers()
    stuck = [blocking_client(app.port) for _ in range(4)]  # never answer the close
    app.proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert app.proc.poll() is None  # draining: the peers have not answered
    start = time.monotonic()
    app.proc.send_signal(signal.SIGINT)
    app.proc.wait(15)
    assert time.monotonic() - start < 15
    _wait(lambda: not any(_alive(pid) for pid in workers))
    for sock in stuck:
        sock.close()


async def test_every_worker_s_connections_join_one_hub(apps: list[App]) -> None:
    redis = RedisServer()
    redis.start()
    try:
        app = App(2, 5.0, redis.url)
        apps.append(app)
        by_worker: dict[int, blazews.ClientConnection] = {}
        others = []
        for _ in range(200):  # one connection on each worker
            pid, conn = await _pid_of_new_connection(app.url)
            if pid in by_worker:
                others.append(conn)
            else:
                by_worker[pid] = conn
            if len(by_worker) == 2:
                break
        assert by_worker.keys() == app.workers()
        for conn in by_worker.values():
            await conn.send("sub room")
            assert await asyncio.wait_for(conn.recv(), 20) == "subscribed"
        first = next(iter(by_worker.values()))
        await first.send("pub room hello from one worker")
        for conn in by_worker.values():
            assert await asyncio.wait_for(conn.recv(), 20) == "hello from one worker"
        for conn in [*by_worker.values(), *others]:
            await conn.close()
    finally:
        redis.stop()


async def _pid_handler(conn: blazews.ServerConnection) -> None:
    await conn.send(str(os.getpid()))
    await conn.wait_closed()


async def test_the_supervisor_in_this_process() -> None:
    # The same pool, supervised from the test's own loop (its code runs here).
    from blazews.asyncio.workers import WorkerPool

    async with blazews.serve(
        _pid_handler, "127.0.0.1", 0, workers=2, ping_interval=None, close_timeout=2
    ) as server:
        assert isinstance(server, WorkerPool) and server.connections == set()
        assert len(server.pids) == 2 and server.sockets
        pid, conn = await _pid_of_new_connection(f"ws://127.0.0.1:{server.port}/")
        assert pid in server.pids
        os.kill(pid, signal.SIGKILL)
        for _ in range(2000):
            if server.restarts == 1 and len(server.pids) == 2:
                break
            await asyncio.sleep(0.01)
        assert server.restarts == 1 and pid not in server.pids and len(server.pids) == 2
        with pytest.raises(blazews.ConnectionClosedError):
            await asyncio.wait_for(conn.recv(), 10)  # its worker died: no close frame
        _, conn = await _pid_of_new_connection(f"ws://127.0.0.1:{server.port}/")
        workers = server.pids
    # Leaving the block drained the workers: this connection got 1001.
    with pytest.raises(ConnectionClosedOK):
        await asyncio.wait_for(conn.recv(), 10)
    assert conn.close_code == 1001
    assert not any(_alive(p) for p in workers)
    assert server.pids == [] and server.sockets == ()


def test_workers_need_a_tcp_port() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="TCP host and port"):
            await blazews.serve(_pid_handler, path="/tmp/x.sock", workers=2)

    asyncio.run(main())


def test_no_worker_outlives_a_killed_supervisor(apps: list[App]) -> None:
    app = App(2)
    apps.append(app)
    workers = app.workers()
    app.proc.kill()  # SIGKILL: no drain of its own; the kernel tells the workers
    app.proc.wait(10)
    _wait(lambda: not any(_alive(pid) for pid in workers))
