"""Fixtures of the blocking front end's tests: a server in a thread, a loop in a thread,
a socket pair."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blazews import sync
from tests.sync.support import FAST, LoopThread, Running


@pytest.fixture
def run_server() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(handler: Callable[[sync.ServerConnection], None], **kwargs: Any) -> Running:
        options: dict[str, Any] = {**FAST, **kwargs}
        if "path" not in options:
            options.setdefault("host", "127.0.0.1")
            options.setdefault("port", 0)
        running = Running(sync.serve(handler, **options))
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.shutdown()
        running.thread.join(5)
        assert not running.thread.is_alive()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected sockets (a FrameReader reads one, the test writes the other)."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()
