"""The reduced soak run of ``make test``: ``benchmarks.soak`` with its ``QUICK`` counts.

Each server front end, compression on or off, in its own process through the four
phases (messages through one connection, connect/close cycles, slow readers that never
read, clients that vanish mid-frame), driven from this one: its RSS, descriptors and
tracemalloc-traced memory at the end within the tolerances of a start taken after a
warm-up, and the server still echoing. ``make soak`` runs the full counts.
"""

from __future__ import annotations

import pytest
from benchmarks import soak

import blazews

# make test runs the unit tests once per build: each build takes every front end once,
# the compiled one without compression, the pure one with it (and the other way round
# for the Listener), so that the two runs cover the six combinations in ~35 s.
CONFIGS = [("asyncio", False), ("listener", True), ("sync", False)]
if blazews.IMPLEMENTATION == "python":
    CONFIGS = [("asyncio", True), ("listener", False), ("sync", True)]


@pytest.mark.parametrize(
    ("front_end", "compression"),
    CONFIGS,
    ids=[f"{f}-{'deflate' if c else 'plain'}" for f, c in CONFIGS],
)
def test_server_stays_flat(front_end: str, compression: bool) -> None:
    run = soak.soak(front_end, compression, soak.QUICK)
    assert run.ok, run.failures
    assert run.start is not None and run.end is not None
    assert run.end.fds == run.start.fds
    assert run.end.traced - run.start.traced <= soak.TRACED_TOLERANCE
    assert run.end.rss - run.start.rss <= soak.RSS_TOLERANCE
    assert run.start.traced > 0  # tracemalloc really ran in the server
    assert run.answering
    assert set(run.durations) == set(soak.PHASES)
