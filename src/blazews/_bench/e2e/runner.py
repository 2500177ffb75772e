"""The orchestrator: runs every scenario side by side, one process at a time.

Each server runs in its own subprocess, pinned to one CPU; the load generator (a
raw-socket sender, an echo client, a connection holder) runs in another, pinned to a
second CPU, with this process. Only one measurement runs at a time, and the rows of a
scenario are interleaved within each repeat (all libraries once, then all again), so
a slow spell on a shared machine spreads over every library instead of one.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blazews._bench.e2e import report
from blazews._bench.e2e.procs import Child, ChildError, cpu_plan, rss_kib
from blazews._bench.e2e.rows import (
    DEFLATE_INFLIGHTS,
    DEFLATE_MEMORY_SIZE,
    DEFLATE_ROWS,
    DEFLATE_SIZE,
    ECHO_ROWS,
    INFLIGHTS,
    INGEST_ROWS,
    INGEST_SIZES,
    MEMORY_ROWS,
    SCENARIOS,
    Row,
    availability,
)

__all__ = ["Config", "main"]

# In a source checkout, benchmarks/results (the report the README quotes); from an
# installed package, a folder in the working directory.
_CHECKOUT_RESULTS = Path(__file__).resolve().parents[4] / "benchmarks" / "results"
DEFAULT_OUTPUT = _CHECKOUT_RESULTS if _CHECKOUT_RESULTS.is_dir() else Path("blazews-bench-results")


@dataclass
class Config:
    """What one run measures, and how long."""

    scenarios: list[str]
    loops: list[str]
    repeats: int
    echo_repeats: int  # the echo scenario's (see parse_args)
    duration: float
    warmup: float
    connections: int
    settle: float
    output: Path
    quick: bool
    libs: list[str] | None
    sizes: list[int] = field(default_factory=lambda: list(INGEST_SIZES))
    inflights: list[int] = field(default_factory=lambda: list(INFLIGHTS))
    deflate_inflights: list[int] = field(default_factory=lambda: list(DEFLATE_INFLIGHTS))
    pin: bool = True

    def wants(self, row: Row) -> bool:
        return self.libs is None or row.key in self.libs or row.lib in self.libs


@dataclass
class Results:
    """Every sample of a run, and the rows that could not run, with why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # "scenario/row/loop" -> reason
    timings: dict[str, float] = field(default_factory=dict)  # scenario -> seconds
    started: float = field(default_factory=time.monotonic)  # (for the progress lines)

    def add(self, **record: Any) -> None:
        self.records.append(record)
        value = record.get("value")
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        where = (
            f"[{minutes:3}:{seconds:02}] "
            f"{record['scenario']:14} {record['loop']:7} {record['row']:17} {record['param']:>8}"
        )
        if "error" in record:
            print(f"  {where}  ERROR {record['error']}", flush=True)
        else:
            print(f"  {where}  {report.fmt(value)} {record['unit']}", flush=True)


class Runner:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.results = Results()
        self.server_cpu, self.load_cpu = cpu_plan(cfg.pin)
        self.sender: Child | None = None

    # -- processes -------------------------------------------------------------------

    def _cpu(self, cpu: int | None) -> list[str]:
        return [] if cpu is None else ["--cpu", str(cpu)]

    @contextmanager
    def server(
        self,
        lib: str,
        mode: str,
        loop: str,
        nofile: int = 1024,
        deflate: bool = False,
        env: dict[str, str] | None = None,
    ) -> Iterator[tuple[Child, str]]:
        """Start a server; yield it and its port once it listens; stop it after."""
        cfg = self.cfg
        args = ["--lib", lib, "--mode", mode, "--loop", loop, "--nofile", str(nofile)]
        args += ["--warmup", str(cfg.warmup), "--duration", str(cfg.duration)]
        args += self._cpu(self.server_cpu) + (["--deflate"] if deflate else [])
        with Child(f"{lib} server", "blazews._bench.e2e.server", args, env) as srv:
            port = str(srv.expect("READY", timeout=60)["port"])
            try:
                yield srv, port
            except ChildError as exc:
                raise ChildError(_blame(exc, srv)) from exc

    def loadgen(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        return Child(name, "blazews._bench.e2e.loadgen", args + self._cpu(self.load_cpu), env)

    def _rows(self, scenario: str, rows: tuple[Row, ...], loop: str | None) -> list[Row]:
        """The rows to run on ``loop`` (``None``: the rows that run once, on no loop),
        noting why the others cannot run."""
        runnable = []
        for row in rows:
            if not self.cfg.wants(row) or row.per_loop != (loop is not None):
                continue
            reason = availability(row.lib, loop)
            if reason is not None:
                self.results.skipped[f"{scenario}/{row.key}/{loop or '-'}"] = reason
                continue
            runnable.append(row)
        return runnable

    # -- ingest ----------------------------------------------------------------------

    def ingest(self, repeat: int) -> None:
        cfg = self.cfg
        try:
            for loop in cfg.loops:
                for row in self._rows("ingest", INGEST_ROWS, loop):
                    self._ingest_row(row, loop, loop, repeat)
            for row in self._rows("ingest", INGEST_ROWS, None):  # the raw socket ceiling
                self._ingest_row(row, "-", "asyncio", repeat)
        finally:
            self._stop_sender()

    def _sender(self) -> Child:
        """The raw-socket sender, started once and reused while it stays healthy."""
        if self.sender is None or not self.sender.alive():
            self._stop_sender()
            limit = self.cfg.warmup + self.cfg.duration + 30
            self.sender = self.loadgen("sender", ["send", "--limit", str(limit)])
        return self.sender

    def _stop_sender(self) -> None:
        if self.sender is not None:
            self.sender.stop()
            self.sender = None

    def _ingest_row(self, row: Row, loop: str, run_loop: str, repeat: int) -> None:
        cfg = self.cfg
        base = {
            "scenario": "ingest",
            "row": row.key,
            "loop": loop,
            "repeat": repeat,
            "unit": "msg/s",
        }
        timeout = cfg.warmup + cfg.duration + 30
        raw = "1" if row.lib == "raw" else "0"
        try:
            with self.server(row.lib, "ingest", run_loop) as (srv, port):
                for size in cfg.sizes:
                    sender = self._sender()
                    try:
                        sender.send(f"go {port} {size} {raw}")
                        sender.expect("STARTED", timeout=30, watch=(srv,))
                        res = srv.expect("RESULT", timeout=timeout, watch=(sender,))
                    except ChildError as exc:
                        self.results.add(**base, param=size, error=_blame(exc, srv))
                        self._stop_sender()
                        continue
                    try:
                        sender.send("stop")
                        sender.expect("STOPPED", timeout=10)
                    except (ChildError, OSError):
                        self._stop_sender()  # stuck: a fresh one next time
                    count, elapsed = res["count"], res["elapsed"]
                    if row.lib == "raw":  # bytes: as frames of this size on the wire
                        count /= size + _header_len(size)
                    rate = count / elapsed if elapsed > 0 else 0.0
                    self.results.add(
                        **base, param=size, value=rate, bytes_per_s=rate * size, elapsed=elapsed
                    )
        except ChildError as exc:
            for size in cfg.sizes:
                self.results.add(**base, param=size, error=str(exc))

    # -- echo ------------------------------------------------------------------------

    def echo(self, repeat: int) -> None:
        for loop in self.cfg.loops:
            for row in self._rows("echo", ECHO_ROWS, loop):
                self._echo_row("echo", row, loop, repeat, self.cfg.inflights)

    def _echo_row(
        self, scenario: str, row: Row, loop: str, repeat: int, inflights: list[int]
    ) -> None:
        """One server and its library's echo client, one result per window size; with
        compression (and the JSON message) in the ``deflate-echo`` scenario."""
        cfg = self.cfg
        deflate = scenario == "deflate-echo"
        base = {
            "scenario": scenario,
            "row": row.key,
            "loop": loop,
            "repeat": repeat,
            "unit": "msg/s",
        }
        env = dict(row.env)
        done: set[int] = set()
        try:
            with self.server(row.lib, "echo", loop, deflate=deflate, env=env) as (srv, port):
                args = ["echo", "--lib", row.lib, "--loop", loop, "--port", port]
                args += ["--warmup", str(cfg.warmup), "--duration", str(cfg.duration)]
                args += ["--inflight", *map(str, inflights)]
                if deflate:
                    args += ["--deflate", "--size", str(DEFLATE_SIZE)]
                with self.loadgen(f"{row.lib} echo client", args, env) as client:
                    for _ in inflights:
                        res = client.expect(
                            "RESULT", timeout=cfg.warmup + cfg.duration + 30, watch=(srv,)
                        )
                        rate = res["count"] / res["elapsed"] if res["elapsed"] > 0 else 0.0
                        extra: dict[str, Any] = {}
                        if deflate:
                            extra = {
                                "bytes_per_s": rate * DEFLATE_SIZE,
                                "extensions": res["extensions"],
                            }
                        self.results.add(
                            **base,
                            param=res["inflight"],
                            value=rate,
                            elapsed=res["elapsed"],
                            **extra,
                        )
                        done.add(res["inflight"])
                    if client.wait(15) != 0:
                        raise ChildError(f"echo client did not finish: {client.tail()}")
        except ChildError as exc:
            for inflight in inflights:
                if inflight not in done:
                    self.results.add(**base, param=inflight, error=str(exc))

    # -- memory ----------------------------------------------------------------------

    def _connections(self) -> tuple[int, int]:
        """The idle connections to open, and the open-file limit the server needs."""
        n = self.cfg.connections
        nofile = n + 256
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and nofile > hard:
            n = hard - 256
            nofile = hard
            print(f"  open-file limit {hard}: memory scenarios use {n} connections", flush=True)
        return n, nofile

    def memory(self, repeat: int) -> None:
        n, nofile = self._connections()
        for loop in self.cfg.loops:
            for row in self._rows("memory", MEMORY_ROWS, loop):
                self._memory_row("memory", row, loop, repeat, n, nofile)

    def _memory_row(
        self, scenario: str, row: Row, loop: str, repeat: int, n: int, nofile: int
    ) -> None:
        """Server RSS per idle connection; in the ``deflate-memory`` scenario, each
        connection negotiated permessage-deflate and exchanged one compressed message
        each way first."""
        cfg = self.cfg
        deflate = scenario == "deflate-memory"
        base = {
            "scenario": scenario,
            "row": row.key,
            "loop": loop,
            "repeat": repeat,
            "param": n,
            "unit": "B/conn",
        }
        env = dict(row.env)
        hold = ["--deflate", "--size", str(DEFLATE_MEMORY_SIZE)] if deflate else []
        try:
            with self.server(row.lib, "echo", loop, nofile, deflate, env) as (srv, port):
                # One short-lived batch first: lazy imports and first-connection
                # caches are start-up cost, not per-connection cost. With compression,
                # it also measures the compressed size of the larger echo message.
                probe = ["--probe", str(DEFLATE_SIZE)] if deflate else []
                args = ["hold", "--port", port, "--n", "8", *hold, *probe]
                with self.loadgen("warm-up client", args) as warm:
                    warmed = warm.expect("OPEN", timeout=60, watch=(srv,))
                time.sleep(cfg.settle / 2)
                before = rss_kib(srv.pid)
                args = ["hold", "--port", port, "--n", str(n), *hold]
                with self.loadgen("connection holder", args) as holder:
                    opened = holder.expect("OPEN", timeout=60 + n / 25, watch=(srv,))
                    time.sleep(cfg.settle)
                    after = rss_kib(srv.pid)
            per_conn = (after - before) * 1024 / n
            extra: dict[str, Any] = {}
            if deflate:
                extra = {
                    "extensions": opened["extensions"],
                    "reply_bytes": opened["reply_bytes"],
                    "probe_reply_bytes": warmed["probe_reply_bytes"],
                }
            self.results.add(
                **base, value=per_conn, rss_before_kib=before, rss_after_kib=after, **extra
            )
        except ChildError as exc:
            self.results.add(**base, error=str(exc))

    # -- deflate ---------------------------------------------------------------------

    def deflate(self, repeat: int) -> None:
        """permessage-deflate on: the compressed echo, then idle compressed connections."""
        for loop in self.cfg.loops:
            for row in self._rows("deflate-echo", DEFLATE_ROWS, loop):
                self._echo_row("deflate-echo", row, loop, repeat, self.cfg.deflate_inflights)
        n, nofile = self._connections()
        for loop in self.cfg.loops:
            for row in self._rows("deflate-memory", DEFLATE_ROWS, loop):
                self._memory_row("deflate-memory", row, loop, repeat, n, nofile)

    def run(self) -> Results:
        scenarios = self.cfg.scenarios
        for number, scenario in enumerate(scenarios, 1):
            started = time.monotonic()
            repeats = self.cfg.echo_repeats if scenario == "echo" else self.cfg.repeats
            for repeat in range(repeats):
                step = f"scenario {number}/{len(scenarios)}, repeat {repeat + 1}/{repeats}"
                print(f"{scenario} ({step})", flush=True)
                getattr(self, scenario)(repeat)
            self.results.timings[scenario] = round(time.monotonic() - started, 1)
        return self.results


def _blame(exc: ChildError, srv: Child) -> str:
    """The error, with the last words of the server, which often explain it."""
    if srv.name in str(exc):
        return str(exc)
    return f"{exc}; {srv.name}: {srv.tail() or 'no output'}"


def _header_len(size: int) -> int:
    return 2 + 4 + (0 if size < 126 else 2 if size < 65536 else 8)


# ---- command line -------------------------------------------------------------------

PROG = "python -m blazews bench"  # the command usage and error messages name by default


def parse_args(argv: list[str] | None, prog: str = PROG) -> Config:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="End-to-end benchmarks of blazews against websockets, aiohttp and picows.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: tiny durations, few connections"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    parser.add_argument(
        "--echo-repeats",
        type=int,
        help="repeats of the echo scenario (default: --repeats if given, else 9)",
    )
    parser.add_argument("--duration", type=float, help="seconds measured per run (default 2)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 0.5)")
    parser.add_argument(
        "--connections",
        type=int,
        help="idle connections in the memory and deflate scenarios (default 5000)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="report directory")
    parser.add_argument(
        "--libs", help="comma-separated row keys to run (blazews, websockets, aiohttp, ...)"
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated ingest message sizes in bytes (default 64,1024,16384,1048576)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ns = parser.parse_args(argv)
    quick = ns.quick
    duration = ns.duration if ns.duration is not None else (0.2 if quick else 2.0)
    warmup = ns.warmup if ns.warmup is not None else min(0.5, duration / 4)
    repeats = ns.repeats if ns.repeats is not None else (1 if quick else 3)
    # The 1-in-flight echo of two close libraries differs by a few percent, and one
    # 2 s repeat of it spreads by ±10% on a VM (wake-ups): 3 repeats cannot order
    # them. The other rows differ by far more than their spread.
    echo_repeats = ns.echo_repeats if ns.echo_repeats is not None else ns.repeats
    if echo_repeats is None:
        echo_repeats = 1 if quick else 9
    cfg = Config(
        scenarios=ns.scenario or list(SCENARIOS),
        loops=["uvloop", "asyncio"] if ns.loop == "both" else [ns.loop],
        repeats=repeats,
        echo_repeats=echo_repeats,
        duration=duration,
        warmup=warmup,
        connections=ns.connections if ns.connections is not None else (200 if quick else 5000),
        settle=0.2 if quick else 1.0,
        output=ns.output,
        quick=quick,
        libs=ns.libs.split(",") if ns.libs else None,
        pin=not ns.no_pin,
    )
    if ns.sizes:
        cfg.sizes = [int(s) for s in ns.sizes.split(",")]
    if min(cfg.repeats, cfg.echo_repeats) < 1 or cfg.duration <= 0 or cfg.connections < 1:
        parser.error("--repeats, --echo-repeats, --duration and --connections must be positive")
    return cfg


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Run the benchmarks; return the exit status (1 if a measurement failed)."""
    cfg = parse_args(argv, prog)
    runner = Runner(cfg)
    if runner.load_cpu is not None:
        os.sched_setaffinity(0, {runner.load_cpu})
    meta = report.run_info(cfg, runner.server_cpu, runner.load_cpu)
    print(report.header_text(meta), flush=True)
    started = time.monotonic()
    try:
        results = runner.run()
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", file=sys.stderr)
        results = runner.results
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["scenario_s"] = results.timings
    meta["loadavg_end"] = report.loadavg()
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    paths = report.write(cfg.output, meta, config, results.records, results.skipped)
    print()
    print(paths["markdown"].read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    failed = [r for r in results.records if "error" in r]
    if failed:
        print(f"{len(failed)} measurement(s) failed; see the report", file=sys.stderr)
        return 1
    return 0
