"""What every benchmark subprocess shares: pinning, file limits, loops, meters, output.

A child talks to the orchestrator through single lines on stdout, ``TAG {json}``
(``READY``, ``RESULT``, ``OPEN``); everything else it has to say goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = [
    "HOST",
    "LOOPS",
    "Meter",
    "emit",
    "pin",
    "raise_nofile",
    "run",
]

HOST = "127.0.0.1"
LOOPS = ("uvloop", "asyncio")


def emit(tag: str, **data: Any) -> None:
    """Send one line to the orchestrator."""
    sys.stdout.write(f"{tag} {json.dumps(data)}\n")
    sys.stdout.flush()


def pin(cpu: int | None) -> None:
    """Run this process on one CPU only (nothing happens where that is unsupported)."""
    if cpu is None or cpu < 0 or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        print(f"cannot pin to CPU {cpu}: {exc}", file=sys.stderr)


def raise_nofile(needed: int) -> int:
    """Raise the soft open-file limit towards ``needed`` (capped by the hard limit).

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def run(main: Callable[[], Coroutine[Any, Any, None]], loop: str) -> None:
    """Run ``main()`` on the named event loop: ``"uvloop"`` or ``"asyncio"`` (default)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    elif loop == "asyncio":
        asyncio.run(main())
    else:
        raise ValueError(f"unknown event loop: {loop!r}")


class Meter:
    """Counts events and times a window of them: ``warmup`` seconds, then ``duration``.

    The code under test only does ``meter.count += 1``; timers on the event loop take
    the snapshots, so measuring costs the measured code nothing else. ``done`` turns
    true when the window closed, and ``on_done(count, elapsed)`` is called once.
    """

    __slots__ = ("_c0", "_duration", "_loop", "_on_done", "_t0", "count", "done")

    def __init__(self) -> None:
        self.count = 0
        self.done = False
        self._t0 = 0.0
        self._c0 = 0
        self._duration = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_done: Callable[[int, float], None] | None = None

    def start(self, warmup: float, duration: float, on_done: Callable[[int, float], None]) -> Meter:
        """Schedule the window on the running loop; return ``self``."""
        self._loop = asyncio.get_running_loop()
        self._duration = duration
        self._on_done = on_done
        self._loop.call_later(warmup, self._begin)
        return self

    def _begin(self) -> None:
        self._c0 = self.count
        self._t0 = time.perf_counter()
        assert self._loop is not None
        self._loop.call_later(self._duration, self._end)

    def _end(self) -> None:
        elapsed = time.perf_counter() - self._t0
        counted = self.count - self._c0
        self.done = True
        if self._on_done is not None:
            self._on_done(counted, elapsed)
