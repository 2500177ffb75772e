"""Keepalive for every connection of an event loop on one timer.

A keepalive task per connection (sleep ``ping_interval``, ping, wait up to
``ping_timeout`` for the pong) cost each idle connection a task, its coroutine frame,
a sleeping future and a timer handle: about 2 KiB, more than the rest of an idle
Listener connection. Here an event loop keeps one :class:`Keepalive`: connections
due at about the same time share a bucket (a dict used as an ordered set), the
buckets' times sit in a heap, and one timer is set for the earliest. An idle
connection costs one entry in its bucket (~50 B), nothing else: no object of its own.

A bucket's time is the time a connection is due, rounded up to a grid of a 64th of
the delay it asked for (a power of two, 1/256 s to 1/4 s): a ping every 20 s comes
at most a quarter of a second late, and connections accepted together share a few
buckets. Nothing comes up more than ``_COALESCE`` early.

Each connection keeps its bucket (``_ka_token``; 0: none), so that a reschedule or a
cancel (``connection_lost``) takes it out at once: nothing stale piles up. A bucket
holds its connections strongly: one dropped without ``connection_lost`` is let go
when its bucket comes up. Nothing here holds the loop itself: a closed loop goes,
its schedule with it.

What a connection does when it comes up is its own business
(:meth:`~blazews.asyncio.base.BaseConnection._keepalive_due`): it pings and asks to
come back at the end of the ping timeout, or, at the end of the timeout with its ping
unanswered, fails with 1011. The pong reschedules it ``ping_interval`` later, as the
task did.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import weakref
from typing import Any, Protocol

__all__ = ["Keepalive", "keepalive_for"]

# A bucket that comes up within this many seconds is handled now: one wake-up for
# buckets due together, none of their connections more than this early.
_COALESCE = 0.005

# The grid of bucket times: a 64th of the delay, as a power of two in these bounds.
_FINEST = 1 / 256
_COARSEST = 1 / 4


def _grid(delay: float) -> float:
    if delay <= _FINEST * 64:
        return _FINEST
    return min(_COARSEST, 2.0 ** math.floor(math.log2(delay / 64)))


class _Due(Protocol):
    _ka_token: Any  # its bucket, or 0

    def _keepalive_due(self, wheel: Keepalive) -> None: ...


class Keepalive:
    """The keepalive schedule of one event loop (see the module docstring)."""

    __slots__ = ("__weakref__", "_buckets", "_live", "_loop", "_times", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # (weakly: the loop's entry in _WHEELS must not keep a closed loop alive)
        self._loop = weakref.proxy(loop)
        self._buckets: dict[float, dict[Any, None]] = {}  # time -> connections due then
        self._times: list[float] = []  # a heap of the buckets' times (some emptied)
        self._when = float("inf")  # when the earliest timer set goes off
        self._live = 0  # connections scheduled

    def __len__(self) -> int:
        """How many connections are scheduled."""
        return self._live

    def schedule(self, conn: _Due, delay: float) -> None:
        """Bring ``conn`` up in ``delay`` seconds, in place of its current entry."""
        self.cancel(conn)
        grid = _grid(delay)
        when = math.ceil((self._loop.time() + delay) / grid) * grid
        bucket = self._buckets.get(when)
        if bucket is None:
            bucket = self._buckets[when] = {}
            heapq.heappush(self._times, when)
            if when < self._when:
                self._arm(when)
        bucket[conn] = None
        conn._ka_token = bucket
        self._live += 1

    def cancel(self, conn: _Due) -> None:
        """Bring ``conn`` up no more (it is closing, or gone)."""
        bucket = conn._ka_token
        if bucket:
            conn._ka_token = 0
            del bucket[conn]
            self._live -= 1

    def _arm(self, when: float) -> None:
        # A later timer already set is left to go off and find nothing due: its handle
        # is not kept (it refers to the loop), so it cannot be cancelled.
        self._when = when
        self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        times = self._times
        until = self._loop.time() + _COALESCE
        if self._when <= until:  # the earliest timer is this one (or an earlier one)
            self._when = float("inf")
        due = []
        while times and times[0] <= until:
            bucket = self._buckets.pop(heapq.heappop(times), None)
            if bucket:  # (else emptied by reschedules and cancels)
                due.append(bucket)
                for conn in bucket:
                    conn._ka_token = 0  # (no entry until it asks again)
                self._live -= len(bucket)
        # (Buckets made while these run, however soon, wait for their own timer.)
        for bucket in due:
            for conn in bucket:
                try:
                    conn._keepalive_due(self)
                except Exception as exc:  # (one connection's failure stops no other's)
                    self._loop.call_exception_handler(
                        {"message": "keepalive failed", "exception": exc, "protocol": conn}
                    )
        while times and not self._buckets.get(times[0]):  # emptied: no wake-up for them
            self._buckets.pop(heapq.heappop(times), None)
        if times and times[0] < self._when:
            self._arm(times[0])


_WHEELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Keepalive]
_WHEELS = weakref.WeakKeyDictionary()


def keepalive_for(loop: asyncio.AbstractEventLoop) -> Keepalive:
    """The keepalive schedule of ``loop``, made on first use."""
    try:
        return _WHEELS[loop]
    except KeyError:
        wheel = _WHEELS[loop] = Keepalive(loop)
        return wheel
