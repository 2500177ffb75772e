"""Keepalive for every connection of an event loop on one timer.

A keepalive task per connection (sleep ``ping_interval``, ping, wait up to
``ping_timeout`` for the pong) cost each idle connection a task, its coroutine frame,
a sleeping future and a timer handle: about 2 KiB, more than the rest of an idle
Listener connection. Here an event loop keeps one :class:`Keepalive`: a heap of the
times at which connections are due (for their next ping, or for the end of their
ping's timeout), and one timer, set for the earliest. An idle connection costs
a heap entry and a weak reference to it.

Each connection keeps the token of its current entry (0: none; tokens are unique,
so that entries due at the same time are ordered by them, never by what else they
hold); an entry whose token is no longer the connection's is stale (the connection
was rescheduled, or lost) and is skipped when it comes up. A connection that is gone
leaves only its dead weak reference behind, and the heap is rebuilt without the stale
entries when they outnumber the live ones. Nothing here holds the loop itself: a
closed loop goes, its schedule with it.

What a connection does when it comes up is its own business
(:meth:`~blazews.asyncio.base.BaseConnection._keepalive_due`): it pings and asks to
come back at the end of the ping timeout, or, at the end of the timeout with its ping
unanswered, fails with 1011. The pong reschedules it ``ping_interval`` later, as the
task did.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from typing import Any, Protocol

__all__ = ["Keepalive", "keepalive_for"]

# Entries due within this many seconds of the one that fired are handled with it:
# one wake-up for connections that came up together (a server's first burst of
# connections pings in step), none of them more than this early.
_COALESCE = 0.005


class _Due(Protocol):
    _ka_token: int

    def _keepalive_due(self, wheel: Keepalive) -> None: ...


class Keepalive:
    """The keepalive schedule of one event loop (see the module docstring)."""

    __slots__ = ("__weakref__", "_heap", "_live", "_loop", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # (weakly: the loop's entry in _WHEELS must not keep a closed loop alive)
        self._loop = weakref.proxy(loop)
        self._heap: list[tuple[float, int, weakref.ref[Any]]] = []
        self._when = float("inf")  # when the earliest timer set goes off
        self._live = 0  # connections with a current entry

    def __len__(self) -> int:
        """How many connections are scheduled."""
        return self._live

    def schedule(self, conn: _Due, delay: float) -> None:
        """Bring ``conn`` up in ``delay`` seconds, in place of its current entry."""
        if not conn._ka_token:
            self._live += 1
        conn._ka_token = token = next(_TOKENS)
        when = self._loop.time() + delay
        heapq.heappush(self._heap, (when, token, weakref.ref(conn)))
        if when < self._when:
            self._arm(when)
        elif len(self._heap) > 2 * self._live + 64:
            self._compact()

    def cancel(self, conn: _Due) -> None:
        """Bring ``conn`` up no more (it is closing, or gone)."""
        if conn._ka_token:
            conn._ka_token = 0  # its entry is stale
            self._live -= 1

    def _arm(self, when: float) -> None:
        # A later timer already set is left to go off and find nothing due: its handle
        # is not kept (it refers to the loop), so it cannot be cancelled.
        self._when = when
        self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        heap = self._heap
        until = self._loop.time() + _COALESCE
        if self._when <= until:  # the earliest timer is this one (or an earlier one)
            self._when = float("inf")
        while heap and heap[0][0] <= until:
            _, token, ref = heapq.heappop(heap)
            conn = ref()
            if conn is not None and conn._ka_token == token:
                conn._ka_token = 0  # (no current entry until it asks again)
                self._live -= 1
                conn._keepalive_due(self)
        while heap:  # the stale entries on top go: no wake-up for them
            when, token, ref = heap[0]
            conn = ref()
            if conn is not None and conn._ka_token == token:
                if when < self._when:  # (a connection due may have set it already)
                    self._arm(when)
                return
            heapq.heappop(heap)

    def _compact(self) -> None:
        live = []
        for entry in self._heap:
            conn = entry[2]()
            if conn is not None and conn._ka_token == entry[1]:
                live.append(entry)
        heapq.heapify(live)
        self._heap = live


_TOKENS = itertools.count(1)

_WHEELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Keepalive]
_WHEELS = weakref.WeakKeyDictionary()


def keepalive_for(loop: asyncio.AbstractEventLoop) -> Keepalive:
    """The keepalive schedule of ``loop``, made on first use."""
    try:
        return _WHEELS[loop]
    except KeyError:
        wheel = _WHEELS[loop] = Keepalive(loop)
        return wheel
