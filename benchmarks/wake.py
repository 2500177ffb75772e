"""The instructions of asyncio's smallest wake-up, counted by callgrind:
``python -m benchmarks.wake``.

What any coroutine API pays per message that its reader has to wait for, and a
callback API does not: a loop callback completes a Future that a task awaits, the task
wakes, and awaits the next Future. Here the callback is scheduled with ``call_soon``
(a protocol's ``data_received`` or ``buffer_updated`` is called by the loop the same
way, from its I/O callback); nothing else runs. Each run wakes the task N times and
N' times; the difference over N' - N leaves start-up out, as in
:mod:`benchmarks.instructions`. Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def wake(count: int, loop: str) -> None:
    """Wake a task ``count`` times (the measured program)."""

    async def main() -> None:
        running = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []

        def complete() -> None:
            waiting.pop().set_result(None)

        for _ in range(count):
            future = running.create_future()
            waiting.append(future)
            running.call_soon(complete)
            await future

    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def count_instructions(count: int, loop: str) -> int:
    """The instructions a process executes to wake a task ``count`` times."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        code = f"from benchmarks.wake import wake; wake({count}, {loop!r})"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, "-c", code]
        root = Path(__file__).resolve().parent.parent
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
        found = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError("no instruction count in callgrind's output")
        return int(found.group(1))


def per_wake(loop: str, short: int = 1_000, long: int = 11_000) -> float:
    """Instructions per wake-up: the difference of two runs, over their difference."""
    return (count_instructions(long, loop) - count_instructions(short, loop)) / (long - short)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    parser.add_argument("--wakes", type=int, default=10_000, help="wake-ups measured")
    ns = parser.parse_args(argv)
    value = per_wake(ns.loop, 1_000, 1_000 + ns.wakes)
    print(f"{ns.loop}: {value:,.0f} instructions per wake-up of a task awaiting a Future")


if __name__ == "__main__":
    main()
