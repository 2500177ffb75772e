"""End-to-end benchmarks: ``python -m blazews._bench.e2e`` (``--help`` for the options).

blazews against websockets, aiohttp and picows, side by side in one run, with uvloop
and with the default event loop: ingest (messages/s delivered to application code,
beside raw loopback socket throughput), echo (round trips/s), memory (server RSS
per idle connection) and deflate (permessage-deflate on: compressed echo of JSON
messages, RSS per idle compressed connection). Each server runs in its own pinned
subprocess, apart from its load generator. Writes ``e2e.md``, ``e2e.json`` and ``e2e_*.png`` under
``benchmarks/results/`` (or ``--output``).

Entry point for other front ends (``make bench``, ``python -m blazews bench``):
``blazews._bench.e2e.main(argv, prog) -> exit status``.

Never part of the default test run; ``tests/tools/test_e2e_smoke.py`` only checks that the
harness runs every scenario and reports every row.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the end-to-end benchmarks with command-line ``argv``; return the exit status.

    ``prog`` is the command the usage and error messages name (by default
    ``python -m blazews bench``).

    Imported lazily: the benchmark's subprocesses import this package too, and should
    not pay for the orchestrator's imports.
    """
    from blazews._bench.e2e.runner import PROG
    from blazews._bench.e2e.runner import main as run

    return run(argv, prog or PROG)
