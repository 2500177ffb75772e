"""Fan-out, hub and workers benchmarks: ``python -m benchmarks.fanout [--quick]``.

Three scenarios (issue 24), side by side in one run; reports to
``benchmarks/results/fanout.md`` and ``fanout.json``:

fanout
    One message of 256 B to N local connections (1,000 and 10,000) whose peers drain
    in another process (raw sockets that read and discard), compression off and on.
    Rows: ``blazews.broadcast``; ``websockets.broadcast`` (websockets' asyncio
    server); a plain loop of ``await conn.send`` on blazews; and the floor: the same
    pre-built frame written by a tight loop of non-blocking ``socket.send`` calls over
    the same sockets (one system call per connection); and, between the two, the same
    frame handed to each connection's transport (``transport.write``: what the event
    loop's transport costs over the bare system call). Each round times the call
    alone (the sender's cost), then waits for the peers to drain (the transports'
    buffers and the kernel's send queues empty) and the same pause more for every
    row; the blazews rows and the floor take turns round by round, after an untimed
    warm-up round; deliveries/s is N over the median round.
redis
    Two node processes (each a blazews server with a RedisHub) on a real
    redis-server; subscribers on both; one node publishes timestamped messages:
    deliveries/s over both nodes and end-to-end latency p50 / p99.
workers
    ``python -m blazews echo --workers N`` (N = 1, 2) under echo load (several
    connections, 16 messages in flight each) from this process: echoes/s, and the
    server's CPU time per message (supervisor and workers, from /proc). The load
    generator shares the cores: quote both figures.

Run it on a quiet machine; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import fcntl
import json
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from blazews._bench.common import machine_info, package_version

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MESSAGE = ('{"symbol":"ABC","price":101.25,"size":300,"side":"buy","venue":"X"}' * 4)[:256]
DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


# -- the draining peers (a child process) ---------------------------------------------


def _handshake(sock: socket.socket, deflate: bool) -> None:
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: 13\r\n"
        + (DEFLATE_OFFER if deflate else b"")
        + b"\r\n"
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))


def drain(port: int, n: int, deflate: bool) -> None:
    """Open ``n`` connections, then read and discard everything until stdin closes."""
    _raise_nofile(n + 100)
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        _handshake(sock, deflate)
        sock.setblocking(False)
        socks.append(sock)
    print("READY", flush=True)
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    received = 0
    while True:
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:
                print(json.dumps({"received": received}), flush=True)
                return
            try:
                data = key.fileobj.recv(262144)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
            received += len(data)


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))


class Drainer:
    def __init__(self, port: int, n: int, deflate: bool) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fanout", "drain", str(port), str(n)]
            + (["--deflate"] if deflate else []),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if line.strip() != "READY":
            raise RuntimeError(f"drainer failed: {line!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


# -- fanout ---------------------------------------------------------------------------


async def _wait(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark setup timed out")
        await asyncio.sleep(0.01)


def _unsent(fds: list[int]) -> int:
    """Bytes still in the kernel's send queues of ``fds`` (not yet sent, or not yet
    acknowledged by the peer: SIOCOUTQ)."""
    total = 0
    buf = array.array("i", [0])
    for fd in fds:
        fcntl.ioctl(fd, termios.TIOCOUTQ, buf, True)
        total += buf[0]
    return total


async def _settle(transports: list[Any], fds: list[int], wait: float) -> None:
    """Let the peers drain: every write buffer empty, the transports' and the
    kernel's (a row that writes to the sockets itself leaves nothing in the first),
    then ``wait`` seconds more: the same for every row, so that each starts from the
    same quiet (a longer pause before one row than before the others costs that row
    the wake-up of an idle machine: measured, ~40% at 1,000 connections)."""
    await _wait(lambda: all(t.get_write_buffer_size() == 0 for t in transports), 60)
    await _wait(lambda: _unsent(fds) == 0, 60)
    await asyncio.sleep(wait)


async def _rounds(
    calls: dict[str, Any], transports: list[Any], rounds: int, settle: float
) -> dict[str, list[float]]:
    """Time each call of ``calls`` (name: call) once per round, the rows interleaved
    round by round so that none gets the connections' first writes or a quieter
    stretch of the machine for itself; a first round warms up, untimed. After each
    call the peers drain (see ``_settle``)."""
    fds = [t.get_extra_info("socket").fileno() for t in transports]
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds + 1):
        for name, call in calls.items():
            started = time.perf_counter()
            result = call()
            if asyncio.iscoroutine(result):
                await result
            if r:
                times[name].append(time.perf_counter() - started)
            await _settle(transports, fds, settle)
    return times


async def fanout_blazews(n: int, deflate: bool, rounds: int, settle: float) -> dict[str, Any]:
    import blazews
    from blazews.sansio.broadcast import PreparedMessage

    async def hold(conn: Any) -> None:
        await conn.wait_closed()

    compression = "deflate" if deflate else None
    out: dict[str, Any] = {}
    async with blazews.serve(
        hold, "127.0.0.1", 0, compression=compression, ping_interval=None, backlog=4096
    ) as server:
        drainer = Drainer(server.port, n, deflate)
        try:
            await drainer.ready()
            await _wait(lambda: len(server.connections) == n)
            conns = list(server.connections)
            transports = [c.transport for c in conns]

            async def send_loop() -> None:
                for c in conns:
                    await c.send(MESSAGE)

            frame = PreparedMessage(MESSAGE).frame_for(conns[0].protocol)
            assert frame is not None
            # The connections' own sockets, not duplicates: 10,000 more descriptors
            # could pass the limit. Detached after, so that they are not closed here.
            socks = [socket.socket(fileno=t.get_extra_info("socket").fileno()) for t in transports]
            try:
                for s in socks:
                    s.setblocking(False)

                def floor() -> None:
                    for s in socks:
                        s.send(frame)

                def transport_write() -> None:
                    for t in transports:
                        t.write(frame)

                calls = {
                    "blazews.broadcast": lambda: blazews.broadcast(conns, MESSAGE),
                    "blazews send loop": send_loop,
                    "transport.write loop": transport_write,
                    "floor (socket.send)": floor,
                }
                out.update(await _rounds(calls, transports, rounds, settle))
            finally:
                for s in socks:
                    s.detach()
        finally:
            drainer.stop()
    return out


async def fanout_websockets(n: int, deflate: bool, rounds: int, settle: float) -> dict[str, Any]:
    from websockets.asyncio.server import broadcast, serve

    conns: set[Any] = set()

    async def hold(conn: Any) -> None:
        conns.add(conn)
        try:
            await conn.wait_closed()
        finally:
            conns.discard(conn)

    compression = "deflate" if deflate else None
    async with serve(
        hold, "127.0.0.1", 0, compression=compression, ping_interval=None, backlog=4096
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        drainer = Drainer(port, n, deflate)
        try:
            await drainer.ready()
            await _wait(lambda: len(conns) == n)
            listed = list(conns)
            transports = [c.transport for c in listed]
            calls = {"websockets.broadcast": lambda: broadcast(listed, MESSAGE)}
            times = await _rounds(calls, transports, rounds, settle)
        finally:
            drainer.stop()
    return times


async def scenario_fanout(sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for deflate in (False, True):
        for n in sizes:
            settle = max(0.02, n * 5e-6)
            measured = await fanout_blazews(n, deflate, rounds, settle)
            try:
                measured.update(await fanout_websockets(n, deflate, rounds, settle))
            except ImportError as exc:
                print(f"websockets rows skipped: {exc}", flush=True)
            for name, times in measured.items():
                median = statistics.median(times)
                row = {
                    "connections": n,
                    "compression": deflate,
                    "row": name,
                    "median_s": median,
                    "deliveries_per_s": n / median,
                }
                rows.append(row)
                print(
                    f"  fanout n={n:>6} deflate={deflate!s:5} {name:22} "
                    f"{n / median:>14,.0f} deliveries/s",
                    flush=True,
                )
    return rows


# -- redis ----------------------------------------------------------------------------


async def scenario_redis(subscribers: int, messages: int) -> dict[str, Any]:
    import blazews

    exe = shutil.which("redis-server")
    if exe is None:
        return {"skipped": "redis-server is not installed"}
    rport = free_port()
    redis = subprocess.Popen(
        [exe, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    nodes = []
    try:
        wait_for_port(rport, redis)
        url = f"redis://127.0.0.1:{rport}/0"
        for _ in range(2):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.fanout", "node", str(port), url], cwd=ROOT
            )
            wait_for_port(port, proc)
            nodes.append((proc, port))
        latencies: list[float] = []
        got = 0
        done = asyncio.get_running_loop().create_future()
        total = messages * subscribers * 2

        class Sub(blazews.Listener):
            def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
                nonlocal got
                now = time.monotonic_ns()
                latencies.append((now - int(bytes(payload[:20]))) / 1e9)
                got += 1
                if got == total and not done.done():
                    done.set_result(None)

        conns = []
        for _, port in nodes:
            for _ in range(subscribers):
                conn, _ = await blazews.connect_listener(Sub, f"ws://127.0.0.1:{port}/")
                conns.append(conn)
        for conn in conns:
            conn.send("sub")
        await asyncio.sleep(0.5)  # the subscriptions are made
        pub = await blazews.connect(f"ws://127.0.0.1:{nodes[0][1]}/")
        started = time.monotonic()
        await pub.send(f"pub {messages}")
        await asyncio.wait_for(done, 120)
        elapsed = time.monotonic() - started
        await pub.close()
        await asyncio.gather(*(conn.close() for conn in conns))
        latencies.sort()
        result = {
            "subscribers_per_node": subscribers,
            "messages": messages,
            "deliveries_per_s": total / elapsed,
            "latency_p50_ms": latencies[len(latencies) // 2] * 1e3,
            "latency_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
        }
        print(f"  redis {result}", flush=True)
        return result
    finally:
        for proc, _ in nodes:
            proc.terminate()
            proc.wait(10)
        redis.kill()
        redis.wait(10)


async def node(port: int, url: str) -> None:
    """A node of the redis scenario: ``sub`` subscribes to "ticks"; ``pub N``
    publishes N messages, each starting with its monotonic send time in ns."""
    import blazews

    hub = blazews.RedisHub(url, prefix="bench:")

    async def handler(conn: Any) -> None:
        async for message in conn:
            if message == "sub":
                hub.subscribe(conn, "ticks")
            elif isinstance(message, str) and message.startswith("pub "):
                pad = "x" * 236
                for _ in range(int(message[4:])):
                    await hub.publish("ticks", f"{time.monotonic_ns():020d}{pad}")

    async with hub, blazews.serve(handler, "127.0.0.1", port, ping_interval=None) as server:
        await server.serve_forever()


# -- workers --------------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _tree(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(p) for p in path.read_text().split()] if path.exists() else []
    return [pid, *children]


async def _echo_load(port: int, duration: float, clients: int, pids: list[int]) -> dict[str, Any]:
    """Echo 256 B over ``clients`` Listener connections, 16 in flight each, for
    ``duration`` seconds: echoes/s and the CPU seconds ``pids`` used meanwhile."""
    import blazews

    count = 0
    stop = False
    message = b"x" * 256

    class Echo(blazews.Listener):
        def on_connect(self, conn: Any) -> None:
            for _ in range(16):
                conn.send(message)

        def on_message(self, conn: Any, kind: Any, payload: memoryview) -> None:
            nonlocal count
            count += 1
            if not stop:
                conn.send(message)

    url = f"ws://127.0.0.1:{port}/"
    conns = [(await blazews.connect_listener(Echo, url))[0] for _ in range(clients)]
    await asyncio.sleep(min(0.5, duration / 4))
    cpu0, count0, t0 = _cpu_seconds(pids), count, time.monotonic()
    await asyncio.sleep(duration)
    cpu1, count1, t1 = _cpu_seconds(pids), count, time.monotonic()
    stop = True
    await asyncio.gather(*(conn.close() for conn in conns))
    messages = count1 - count0
    return {
        "echoes_per_s": messages / (t1 - t0),
        "server_cpu_us_per_message": (cpu1 - cpu0) / max(messages, 1) * 1e6,
    }


async def scenario_workers(duration: float, clients: int) -> list[dict[str, Any]]:
    rows = []
    for workers in (1, 2):
        port = free_port()
        args = ["echo", "--port", str(port), "--no-compression", "--listener"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "blazews", *args, "--workers", str(workers)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc)
            row = {"workers": workers}
            row.update(await _echo_load(port, duration, clients, _tree(proc.pid)))
            rows.append(row)
            print(f"  workers {row}", flush=True)
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)  # (the loop runs: closings finish)
    return rows


# -- report ---------------------------------------------------------------------------


def _plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Deliveries/s per row, one panel per compression setting; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = sorted({r["row"] for r in rows})
    sizes = sorted({r["connections"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, deflate in zip(axes, (False, True), strict=True):
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [
                next(
                    (
                        r["deliveries_per_s"]
                        for r in rows
                        if r["row"] == name
                        and r["connections"] == n
                        and r["compression"] is deflate
                    ),
                    0.0,
                )
                for n in sizes
            ]
            ax.bar([j + i * width for j in range(len(sizes))], values, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))])
        ax.set_xticklabels([f"{n:,} conns" for n in sizes])
        ax.set_title(f"256 B, compression {'on' if deflate else 'off'}")
        ax.set_ylabel("deliveries/s")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(data: dict[str, Any], output: Path) -> Path:
    lines = ["# Fan-out, hub and workers", ""]
    lines += [f"Run: {data['when']} ({data['mode']}, loop {data.get('loop')})", ""]
    info = data.get("machine")
    if info:  # (what every figure below was measured on)
        lines += [
            f"Machine: {info['cpu']} ({info['logical_cpus']} logical CPUs), {info['python']}, "
            f"blazews {info['blazews']} {info['implementation']}, SIMD level "
            f"{info['simd_level']}, loop {data.get('loop')} {info.get('uvloop') or ''}".rstrip()
            + f"; websockets {info['peers'].get('websockets')}, redis-py "
            f"{info.get('redis')}.",
            "",
        ]
    if data.get("fanout"):
        lines += ["## Fan-out of 256 B (deliveries/s; the sender's call, median)", ""]
        lines += ["| connections | compression | row | deliveries/s | vs floor |"]
        lines += ["|---|---|---|---|---|"]
        for r in data["fanout"]:
            floor = next(
                f["deliveries_per_s"]
                for f in data["fanout"]
                if f["row"].startswith("floor")
                and f["connections"] == r["connections"]
                and f["compression"] == r["compression"]
            )
            lines.append(
                f"| {r['connections']:,} | {'on' if r['compression'] else 'off'} | {r['row']} "
                f"| {r['deliveries_per_s']:,.0f} | {r['deliveries_per_s'] / floor:.2f}x |"
            )
        lines.append("")
    if data.get("redis"):
        lines += ["## Across processes through Redis (2 nodes, publish in one)", "", "```"]
        lines += [json.dumps(data["redis"], indent=1), "```", ""]
    if data.get("workers"):
        lines += ["## Workers: echo 256 B, Listener, 16 in flight per connection", ""]
        lines += ["| workers | echoes/s | server CPU us/message |", "|---|---|---|"]
        for r in data["workers"]:
            cpu = r["server_cpu_us_per_message"]
            lines.append(f"| {r['workers']} | {r['echoes_per_s']:,.0f} | {cpu:.1f} |")
        lines.append("")
    output.mkdir(parents=True, exist_ok=True)
    if data.get("fanout") and _plot(data["fanout"], output / "fanout.png"):
        lines += ["![fan-out](fanout.png)", ""]
    (output / "fanout.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    path = output / "fanout.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def run(ns: argparse.Namespace) -> dict[str, Any]:
    quick = ns.quick
    data: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "mode": "quick" if quick else "full",
    }
    _raise_nofile(25000)
    scenarios = ns.scenario or ["fanout", "redis", "workers"]
    if "fanout" in scenarios:
        sizes = ns.connections or ([50] if quick else [1000, 10000])
        data["fanout"] = await scenario_fanout(sizes, ns.rounds or (2 if quick else 15))
    if "redis" in scenarios:
        data["redis"] = await scenario_redis(5 if quick else 200, 20 if quick else 500)
    if "workers" in scenarios:
        data["workers"] = await scenario_workers(0.5 if quick else 5.0, 4 if quick else 32)
    return data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "drain":
        drain(int(argv[1]), int(argv[2]), "--deflate" in argv)
        return 0
    if argv and argv[0] == "node":
        asyncio.run(node(int(argv[1]), argv[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--scenario", action="append", choices=["fanout", "redis", "workers"])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--connections",
        type=lambda v: [int(n) for n in v.split(",")],
        help="fan-out connection counts, comma-separated (default 1000,10000)",
    )
    parser.add_argument("--rounds", type=int, help="fan-out rounds per row (default 15)")
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="event loop (uvloop)"
    )
    ns = parser.parse_args(argv)
    if ns.loop == "uvloop":
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            ns.loop = "asyncio"
    data = asyncio.run(run(ns))
    data["loop"] = ns.loop
    data["machine"] = {
        **machine_info(),
        "uvloop": package_version("uvloop") if ns.loop == "uvloop" else None,
        "redis": package_version("redis"),
    }
    path = report(data, ns.output)
    print(path.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
