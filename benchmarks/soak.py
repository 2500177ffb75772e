"""Endurance: a server under hours' worth of traffic in minutes stays flat.

``python -m benchmarks.soak`` (``make soak``) runs, for each server front end
(asyncio coroutines, Listener, blocking) with compression on and off, four phases
against one server process:

- ``messages``: 1,000,000 echoed messages through one connection (16 B-2 KiB, text
  and binary, 32 in flight);
- ``cycles``: 10,000 connect/echo/close cycles;
- ``slow``: 1,000 clients open at once that send up to 128 KiB to be echoed and
  never read (receive buffer 4 KiB), then reset; the memory peak, so the warm-up
  runs it at full size;
- ``vanish``: 1,000 clients that send half a frame and reset the connection.

The server runs in its own process (``python -m benchmarks.soak serve``), the drivers
in this one. Before the phases run at full size they run once small (a warm-up: the
pools, the caches and the allocator reach their working size); the figures are taken
after it and at the end, each time once the server reports no connection left:
resident memory (``VmRSS``) and open descriptors read from ``/proc/<pid>``, and the
memory ``tracemalloc`` traces in the server (it reports it on ``/stats``, after
``gc.collect()``). The server runs with ``MALLOC_ARENA_MAX=2`` (see
:data:`SERVER_ENV`). A run passes when, at the end, RSS grew by at most
``RSS_TOLERANCE``, traced memory by at most ``TRACED_TOLERANCE``, the descriptors
are those of the start, and the server still echoes. ``--quick`` (the test in
``make test``) runs small counts; ``--scale`` multiplies the full ones.

Results go to ``benchmarks/results/soak.md`` and ``soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FRONT_ENDS = ["asyncio", "listener", "sync"]
COMPRESSION = [True, False]
FULL = {"messages": 1_000_000, "cycles": 10_000, "slow": 1_000, "vanish": 1_000}
QUICK = {"messages": 3_000, "cycles": 150, "slow": 40, "vanish": 60}
WARMUP: dict[str, int | None] = {"messages": 2_000, "cycles": 100, "slow": None, "vanish": 30}
"""The warm-up's counts; ``None``: the run's own. The slow readers are the memory
peak (every one of them open at once, its write buffer full), so they run at full
size in the warm-up: what the allocator keeps after a peak is not a leak."""
RSS_TOLERANCE = 16 * 1024 * 1024
"""RSS growth allowed between the warm-up and the end: the allocator keeps freed arenas
and pages (pymalloc, glibc), so RSS is flat within a few MiB, never to the byte."""
TRACED_TOLERANCE = 512 * 1024
"""Growth allowed of the memory tracemalloc sees: a leak of one object per message or
connection would pass it within a few thousand."""
RESULTS = Path(__file__).resolve().parent / "results"
SERVER_ENV = "MALLOC_ARENA_MAX=2"
"""The server process's environment: glibc gives each thread that allocates its own
arena (up to 8 per core) and keeps what they grew to, so after a peak of a thousand
threads (the blocking server's connections) RSS creeps for rounds on end with no
Python object alive (measured: +26 MiB in a second round, traced memory +66 KiB). Two
arenas keep it flat (+5 MiB); it is the usual setting for threaded Python servers."""


# -- the server process ---------------------------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _stats(count: int) -> str:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return json.dumps({"traced": traced, "connections": count})


def serve(front_end: str, compression: bool, trace: bool) -> None:
    """Serve echo on ``/`` and the server's own figures on ``/stats``; print the port;
    run until SIGTERM."""
    import blazews
    from blazews import Listener, Router, sync

    _raise_fd_limit()
    if trace:
        tracemalloc.start()
    options: dict[str, Any] = {
        "compression": "deflate" if compression else None,
        "ping_interval": None,
        "close_timeout": 2,
        "open_timeout": 5,
        "backlog": 1024,
    }
    holder: dict[str, Any] = {}

    def announce(port: int) -> None:
        print(f"PORT {port}", flush=True)

    if front_end == "sync":

        def echo(conn: Any) -> None:
            for message in conn:
                conn.send(message)

        def stats(conn: Any) -> None:
            conn.send(_stats(len(holder["server"].connections) - 1))

        with sync.serve(Router({"/": echo, "/stats": stats}), "127.0.0.1", 0, **options) as srv:
            holder["server"] = srv
            signal.signal(signal.SIGTERM, lambda *_: srv.shutdown(timeout=5))
            announce(srv.port)
            srv.serve_forever()
        return

    class Echo(Listener):
        def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
            conn.send(payload, kind)

    class Stats(Listener):
        def on_connect(self, conn: Any) -> None:
            conn.send(_stats(len(holder["server"].connections) - 1))

    async def echo_coroutine(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    async def stats_coroutine(conn: Any) -> None:
        await conn.send(_stats(len(holder["server"].connections) - 1))

    async def main() -> None:
        if front_end == "listener":
            serving: Any = blazews.serve_listener(
                Router({"/": Echo, "/stats": Stats}), "127.0.0.1", 0, **options
            )
        else:
            routes = Router({"/": echo_coroutine, "/stats": stats_coroutine})
            serving = blazews.serve(routes, "127.0.0.1", 0, **options)
        async with serving as server:
            holder["server"] = server
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
            announce(server.port)
            await server.serve_forever()

    asyncio.run(main())


# -- the drivers (this process) ------------------------------------------------------


def _handshake(port: int, rcvbuf: int | None = None, timeout: float = 20) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101 "):
        raise ConnectionError(head[:40].decode(errors="replace"))
    return sock


def _masked(opcode: int, payload: bytes, length: int | None = None) -> bytes:
    """A masked client frame (the key is zero: unmasking changes nothing)."""
    n = len(payload) if length is None else length
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


def _reset(sock: socket.socket) -> None:
    """Close with RST: the client vanishes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def phase_messages(port: int, count: int, compression: bool) -> None:
    from blazews import sync

    rng = random.Random(7)
    payloads: list[str | bytes] = []
    for i in range(64):
        size = rng.choice([16, 100, 700, 2048])
        text = "".join(rng.choice("abcdefghij \u00e9") for _ in range(size // 2))
        payloads.append(text if i % 2 else text.encode()[:size])
    window = 32
    options = {"compression": "deflate" if compression else None, "ping_interval": None}
    with sync.connect(f"ws://127.0.0.1:{port}/", **options) as conn:  # type: ignore[arg-type]
        sent = 0
        while sent < count:
            batch = min(window, count - sent)
            for i in range(batch):
                conn.send(payloads[(sent + i) % 64])
            for i in range(batch):
                if conn.recv(timeout=30) != payloads[(sent + i) % 64]:
                    raise AssertionError("echo mismatch")
            sent += batch


def phase_cycles(port: int, count: int, compression: bool) -> None:
    from blazews import sync

    options = {"compression": "deflate" if compression else None, "ping_interval": None}
    for i in range(count):
        with sync.connect(f"ws://127.0.0.1:{port}/", **options) as conn:  # type: ignore[arg-type]
            conn.send(f"cycle {i}")
            if conn.recv(timeout=30) != f"cycle {i}":
                raise AssertionError("echo mismatch")


def phase_slow(port: int, count: int, compression: bool) -> None:
    """``count`` clients at once send 128 KiB to be echoed and never read."""
    message = _masked(0x2, os.urandom(32 * 1024))
    socks = []
    try:
        for _ in range(count):
            sock = _handshake(port, rcvbuf=4096)
            sock.setblocking(False)
            socks.append(sock)
            for _ in range(4):
                try:
                    sock.send(message)  # what fits; the rest never goes
                except BlockingIOError:
                    break
        time.sleep(0.3)  # the server now holds every one of them, its writes paused
    finally:
        for sock in socks:
            _reset(sock)


def phase_vanish(port: int, count: int, compression: bool) -> None:
    """``count`` clients send a frame header and part of its payload, then reset."""
    half = _masked(0x2, os.urandom(500), length=1000)
    for start in range(0, count, 100):
        socks = [_handshake(port) for _ in range(min(100, count - start))]
        for sock in socks:
            sock.sendall(half)
        time.sleep(0.05)
        for sock in socks:
            _reset(sock)


PHASES = {
    "messages": phase_messages,
    "cycles": phase_cycles,
    "slow": phase_slow,
    "vanish": phase_vanish,
}


# -- measuring ----------------------------------------------------------------------


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _server_stats(port: int) -> dict[str, int]:
    from blazews import sync

    with sync.connect(f"ws://127.0.0.1:{port}/stats", compression=None) as conn:
        result: dict[str, int] = json.loads(conn.recv(timeout=30))
        return result


def _settled(port: int, timeout: float = 60) -> dict[str, int]:
    """The server's figures once it holds no connection (but the one asking)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = _server_stats(port)
        if stats["connections"] == 0 or time.monotonic() > deadline:
            time.sleep(0.2)  # a closing socket's descriptor, a delayed buffer release
            return _server_stats(port)
        time.sleep(0.2)


@dataclass
class Snapshot:
    rss: int
    fds: int
    traced: int


@dataclass
class Run:
    front_end: str
    compression: bool
    counts: dict[str, int]
    start: Snapshot | None = None
    end: Snapshot | None = None
    peak_rss: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    answering: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _snapshot(pid: int, port: int) -> Snapshot:
    stats = _settled(port)
    # The fewest descriptors over half a second: the /stats connection's own socket
    # may still be closing at the first look.
    fds = _fds(pid)
    for _ in range(5):
        time.sleep(0.1)
        fds = min(fds, _fds(pid))
    return Snapshot(rss=_rss(pid), fds=fds, traced=stats["traced"])


def _watch_peak(pid: int, run: Run, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        try:
            run.peak_rss = max(run.peak_rss, _rss(pid))
        except (OSError, RuntimeError):
            return


def soak(front_end: str, compression: bool, counts: dict[str, int], trace: bool = True) -> Run:
    """One server process through every phase; the figures and the verdict."""
    run = Run(front_end, compression, dict(counts))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.setdefault("MALLOC_ARENA_MAX", "2")  # (see SERVER_ENV)
    args = [sys.executable, "-m", "benchmarks.soak", "serve", front_end]
    args += ["--compression" if compression else "--no-compression"]
    if not trace:
        args.append("--no-trace")
    pipe = subprocess.PIPE
    proc = subprocess.Popen(args, stdout=pipe, stderr=pipe, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
        port = int(line.split()[1])
        for name, phase in PHASES.items():  # warm-up
            phase(port, WARMUP[name] or counts[name], compression)
        run.start = _snapshot(proc.pid, port)
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_peak, args=(proc.pid, run, stop), daemon=True)
        watcher.start()
        try:
            for name, phase in PHASES.items():
                started = time.monotonic()
                phase(port, counts[name], compression)
                run.durations[name] = round(time.monotonic() - started, 2)
        finally:
            stop.set()
            watcher.join()
        run.end = _snapshot(proc.pid, port)
        phase_messages(port, 10, compression)
        run.answering = True
    except Exception as exc:  # a failed phase is a failed run, reported
        run.failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if "Traceback" in err:
            run.failures.append("server logged a traceback:\n" + err[-2000:])
    _judge(run)
    return run


def _judge(run: Run) -> None:
    if run.start is None or run.end is None:
        return
    if run.end.rss - run.start.rss > RSS_TOLERANCE:
        run.failures.append(f"RSS grew by {(run.end.rss - run.start.rss) >> 10} KiB")
    if run.end.traced - run.start.traced > TRACED_TOLERANCE:
        run.failures.append(f"traced memory grew by {(run.end.traced - run.start.traced)} B")
    if run.end.fds != run.start.fds:
        run.failures.append(f"descriptors: {run.start.fds} at the start, {run.end.fds} at the end")
    if not run.answering:
        run.failures.append("the server no longer answers")


# -- the report ---------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f}"


def report(runs: list[Run], started: float) -> str:
    from blazews._bench.common import loadavg, machine_info

    lines = [
        "# Soak: blazews servers under sustained traffic",
        "",
        f"Phases per run: {json.dumps(runs[0].counts if runs else {})}; "
        f"tolerance: RSS +{_mib(RSS_TOLERANCE)} MiB, traced +{TRACED_TOLERANCE >> 10} KiB, "
        "descriptors exact. Start: after a warm-up; end: after the phases, once the "
        f"server holds no connection. Server environment: {SERVER_ENV}. Total "
        f"{time.monotonic() - started:.0f} s; load average {loadavg()}.",
        "",
        "| server | compression | RSS start MiB | RSS end MiB | peak MiB | fds start/end"
        " | traced start/end KiB | seconds per phase | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        if run.start is None or run.end is None:
            lines.append(
                f"| {run.front_end} | {'on' if run.compression else 'off'} | | | | | | | "
                f"FAIL: {'; '.join(run.failures)} |"
            )
            continue
        phases = ", ".join(f"{k} {v}" for k, v in run.durations.items())
        verdict = "ok" if run.ok else "FAIL: " + "; ".join(run.failures)
        lines.append(
            f"| {run.front_end} | {'on' if run.compression else 'off'} | "
            f"{_mib(run.start.rss)} | {_mib(run.end.rss)} | {_mib(run.peak_rss)} | "
            f"{run.start.fds}/{run.end.fds} | {run.start.traced >> 10}/{run.end.traced >> 10} | "
            f"{phases} | {verdict} |"
        )
    lines += ["", "Machine: " + json.dumps(machine_info(), default=str), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve")
    srv.add_argument("front_end", choices=FRONT_ENDS)
    srv.add_argument("--compression", action=argparse.BooleanOptionalAction, default=True)
    srv.add_argument("--trace", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quick", action="store_true", help="small counts (make test)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the full counts")
    parser.add_argument("--front-end", choices=FRONT_ENDS, action="append")
    parser.add_argument("--compression", choices=["on", "off"], action="append")
    parser.add_argument("--out", type=Path, default=None, help="report path (.md; .json beside)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.front_end, args.compression, args.trace)
        return 0
    _raise_fd_limit()
    counts = dict(QUICK) if args.quick else {k: int(v * args.scale) for k, v in FULL.items()}
    started = time.monotonic()
    runs = []
    for front_end in args.front_end or FRONT_ENDS:
        for compression in [c == "on" for c in args.compression or ["on", "off"]]:
            run = soak(front_end, compression, counts)
            print(
                f"{front_end:8} compression={'on ' if compression else 'off'} "
                f"{'ok' if run.ok else 'FAIL'} {run.durations} "
                f"rss {run.start.rss >> 10 if run.start else '?'}->"
                f"{run.end.rss >> 10 if run.end else '?'} KiB "
                f"fds {run.start.fds if run.start else '?'}->{run.end.fds if run.end else '?'} "
                f"traced {run.start.traced if run.start else '?'}->"
                f"{run.end.traced if run.end else '?'} {run.failures}",
                flush=True,
            )
            runs.append(run)
    if args.out is not None or not args.quick:
        out = args.out or RESULTS / "soak.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(runs, started), encoding="utf-8")
        out.with_suffix(".json").write_text(
            json.dumps([asdict(r) | {"ok": r.ok} for r in runs], indent=2), encoding="utf-8"
        )
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
