"""``serve(..., workers=N)``: N processes serving one port, under a supervisor.

One process runs one core. With ``workers=N`` (N > 1), :func:`~blazews.serve` (and
:func:`~blazews.serve_listener`) forks N worker processes, each with its own event
loop and its own listening socket bound to the same port with ``SO_REUSEPORT``: the
kernel (Linux) spreads incoming connections over them. The calling process becomes
the supervisor, a :class:`WorkerPool` (a :class:`~blazews.Server` with no
connections of its own):

- it reserves the port first (a bound socket that does not listen, so ``port=0``
  works and :attr:`WorkerPool.port` says which port it got);
- a worker that dies is started again (at once; after a growing delay, up to 5 s, if
  it keeps dying within a second of its start);
- SIGTERM, or :meth:`WorkerPool.close`, drains: each worker stops accepting, closes
  its connections with 1001 (each within its ``close_timeout``) and exits; the
  supervisor waits for them (and kills one still there ``close_timeout`` + 5 s later);
- a first SIGINT (Ctrl-C) drains the same way, a second one kills the workers and
  exits at once (both handled from the start, before the first fork);
- a worker drains and exits if the supervisor dies, however it dies (the kernel's
  parent-death signal, Linux): no worker outlives it.

The workers are forked, not spawned: the handler, the options and whatever the
process held (a :class:`~blazews.RedisHub` not started yet, say) are theirs without
pickling. Start hubs in the workers: a :class:`~blazews.RedisHub` starts by itself
on its first ``subscribe`` or ``publish``, so one made at import time serves every
worker's connections, and every worker's subscribers get every worker's messages.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from .server import Server

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from .server import serve

__all__ = ["WorkerPool"]

logger = logging.getLogger("blazews")

_FAST_EXIT = 1.0  # a worker that dies sooner than this after its start is crash-looping
_MAX_DELAY = 5.0  # the longest wait before starting a crash-looping worker again
_KILL_GRACE = 5.0  # beyond close_timeout, before a draining worker is killed
_PR_SET_PDEATHSIG = 1  # prctl(2)


def _worker_main(start: serve, port: int, ready: Any, parent: int) -> None:
    """A worker process's body (forked): serve until SIGTERM, then drain and exit."""
    # The parent's loop left its signal wake-up descriptor set: a signal here would
    # wake the supervisor's loop as if it were its own.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides on Ctrl-C
    _die_with(parent)
    asyncio.run(_worker(start, port, ready))


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM (a drain) when the supervisor dies,
    however it dies (Linux): no worker outlives it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # it died before that took effect
        os.kill(os.getpid(), signal.SIGTERM)


async def _worker(start: serve, port: int, ready: Any) -> None:
    start.port = port
    start.options = dataclasses.replace(start.options, reuse_port=True, workers=1)
    start.server = start._new_server()
    server = await start._start_one()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
    ready.set()  # listening: the supervisor's start may return
    await server.serve_forever()
    await server.wait_closed()


def _reserve(host: str | None, port: int) -> socket.socket:
    """A socket bound to ``host``/``port`` with SO_REUSEPORT, not listening: it holds
    the port (``0``: a free one) for the workers to bind beside it."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


class WorkerPool(Server):
    """What :func:`~blazews.serve` returns with ``workers`` > 1: the supervisor of the
    worker processes (see :mod:`blazews.asyncio.workers`).

    Its :attr:`connections` is empty (the connections live in the workers);
    :meth:`serve_forever`, :meth:`close` and :meth:`wait_closed` work as on a
    :class:`~blazews.Server`.

    Attributes:
        workers: How many worker processes it keeps.
        restarts: How many times a worker was started again after dying.
    """

    def __init__(self, start: serve) -> None:
        super().__init__(
            start.server.handler, process_request=None, process_response=None, open_timeout=None
        )
        if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - not Linux/BSD
            raise ValueError("workers needs SO_REUSEPORT, which this system lacks")
        options = start.options
        if options.path is not None or options.sock is not None:
            raise ValueError("workers needs a TCP host and port, not a path or a socket")
        self._serve = start
        self.workers = options.workers
        self.restarts = 0
        self._close_timeout = options.close_timeout
        self._procs: list[BaseProcess | None] = [None] * self.workers
        self._ready: list[Any] = [None] * self.workers
        self._started: list[float] = [0.0] * self.workers
        self._fails: list[int] = [0] * self.workers
        self._reserved: socket.socket | None = None
        self._port = 0
        self._closing = False
        self._interrupted = False
        self._changed: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._signals: list[int] = []

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The socket that holds the port (it does not listen: the workers do)."""
        return () if self._reserved is None else (self._reserved,)

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers running now."""
        return [p.pid for p in self._procs if p is not None and p.pid is not None]

    async def _start(self) -> WorkerPool:
        start = self._serve
        self._reserved = _reserve(start.host, start.port or 0)
        self._port = int(self._reserved.getsockname()[1])
        self._changed = asyncio.Event()
        self._handle_signals()
        for i in range(self.workers):
            self._spawn(i)
        # Return once every worker listens: before, the port would refuse connections.
        # (A SIGTERM meanwhile: the supervisor below sees the workers out.)
        while not self._closing and not all(r.is_set() for r in self._ready):
            dead = [p for p in self._procs if p is not None and p.exitcode is not None]
            if dead:
                self.kill()
                loop = asyncio.get_running_loop()
                for proc in self._procs:
                    if proc is not None:
                        loop.remove_reader(proc.sentinel)
                        proc.join()
                while self._signals:
                    loop.remove_signal_handler(self._signals.pop())
                self._reserved.close()
                raise RuntimeError(f"a worker exited with {dead[0].exitcode} before serving")
            await asyncio.sleep(0.01)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return self

    def _spawn(self, i: int) -> None:
        if self._closing:
            return
        ctx = multiprocessing.get_context("fork")
        ready = self._ready[i] = ctx.Event()
        proc = ctx.Process(
            target=_worker_main,
            args=(self._serve, self.port, ready, os.getpid()),
            name=f"blazews-worker-{i}",
        )
        proc.start()
        self._procs[i] = proc
        self._started[i] = time.monotonic()
        changed = self._changed
        assert changed is not None
        asyncio.get_running_loop().add_reader(proc.sentinel, changed.set)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        changed = self._changed
        assert changed is not None
        while True:
            for i, proc in enumerate(self._procs):
                if proc is None or proc.is_alive():
                    continue
                loop.remove_reader(proc.sentinel)
                proc.join()
                self._procs[i] = None
                if self._closing:
                    continue
                lived = time.monotonic() - self._started[i]
                self._fails[i] = self._fails[i] + 1 if lived < _FAST_EXIT else 0
                delay = min(_MAX_DELAY, 0.1 * 2 ** (self._fails[i] - 1)) if self._fails[i] else 0
                logger.warning(
                    "worker %d (pid %s) exited with %s; starting it again%s",
                    i,
                    proc.pid,
                    proc.exitcode,
                    f" in {delay:.1f} s" if delay else "",
                )
                self.restarts += 1
                if delay:
                    loop.call_later(delay, self._spawn, i)
                else:
                    self._spawn(i)
            if self._closing and all(p is None for p in self._procs):
                return
            changed.clear()
            await changed.wait()

    def _handle_signals(self) -> None:
        """SIGTERM drains, SIGINT drains then kills, from before the first fork until
        the workers are gone (a signal in between must not kill the supervisor alone)."""
        loop = asyncio.get_running_loop()
        for signum, handler in (
            (signal.SIGTERM, self.close),
            (signal.SIGINT, self._interrupt),
        ):
            try:
                loop.add_signal_handler(signum, handler)
                self._signals.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass  # (not the main thread: the application handles signals)

    async def serve_forever(self) -> None:
        """Supervise the workers until :meth:`close`, SIGTERM or SIGINT, and until
        they have all exited."""
        await self.wait_closed()

    def _interrupt(self) -> None:
        """SIGINT: drain the first time, kill the workers the second."""
        if self._interrupted:
            logger.warning("interrupted twice: killing the workers")
            self.kill()
            return
        self._interrupted = True
        self.close()

    def close(
        self,
        close_connections: bool = True,
        *,
        code: int = 1001,
        reason: str = "server shutting down",
    ) -> None:
        """Drain: every worker stops accepting, closes its connections with 1001 and
        exits (SIGTERM to each). ``code`` and ``reason`` are the workers' own: 1001,
        ``"server shutting down"``."""
        if self._closing:
            return
        self._closing = True
        for proc in self._procs:
            if proc is not None and proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM if close_connections else signal.SIGKILL)
        if self._changed is not None:
            self._changed.set()
        loop = asyncio.get_running_loop()
        grace = (self._close_timeout or 0.0) + _KILL_GRACE
        loop.call_later(grace, self.kill)

    def kill(self) -> None:
        """Kill every worker at once (SIGKILL)."""
        self._closing = True
        for proc in self._procs:
            if proc is not None and proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
        if self._changed is not None:
            self._changed.set()

    async def wait_closed(self) -> None:
        """Wait until every worker has exited (after :meth:`close`), and let the port go."""
        if self._supervisor is not None:
            await asyncio.shield(self._supervisor)
        loop = asyncio.get_running_loop()
        while self._signals:
            loop.remove_signal_handler(self._signals.pop())
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    @property
    def port(self) -> int:
        """The port the workers serve."""
        return self._port
