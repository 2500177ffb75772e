"""Shared helpers for the benchmarks: machine description, timing loops, reports.

Every benchmark records where it ran (CPU, SIMD level, Python, load) next to its
numbers, times with ``timeit``-style generated loops (no extra Python call per
iteration), and reports the median of several repeats: absolute figures drift on a
shared machine, medians and ratios much less.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import timeit
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Timing",
    "cpu_model",
    "dump_json",
    "fmt_ns",
    "fmt_rate",
    "loadavg",
    "machine_info",
    "md_table",
    "package_version",
    "python_flags",
    "time_stmt",
    "write_atomic",
]


def cpu_model() -> str:
    """Return the CPU model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version(name: str) -> str | None:
    """Return an installed distribution's version, or ``None`` when it is missing."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def loadavg() -> list[float] | None:
    """Return the 1, 5 and 15 minute load averages, or ``None`` where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Describe the machine and the blazews build a run measures."""
    import blazews

    codec = blazews.implementation_report().get("sansio._protocol", "python")
    native: Any
    try:  # the levels the kernel benchmarks run, even when the core runs pure Python
        from blazews._native import _kernels as native
    except ImportError:
        native = None
    levels = list(native.available_levels()) if native is not None else []
    features = dict(native.cpu_features()) if native is not None else {}
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": python_flags(),
        "blazews": blazews.__version__,
        "implementation": blazews.IMPLEMENTATION,
        "codec": codec,
        "simd_level": native.simd_level() if native is not None else "python",
        "available_levels": levels,
        "cpu_features": sorted(name for name, on in features.items() if on),
        "peers": {name: package_version(name) for name in ("websockets", "aiohttp", "picows")},
        "loadavg_start": loadavg(),
    }


@dataclass
class Timing:
    """Per-operation times of one benchmark case, in nanoseconds.

    Attributes:
        samples: One per repeat: that repeat's total time divided by ``number``.
        number: Operations per repeat.
    """

    samples: list[float] = field(default_factory=list)
    number: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_ns": self.median,
            "min_ns": self.best,
            "samples_ns": self.samples,
            "number": self.number,
        }


def time_stmt(
    stmt: str,
    namespace: dict[str, Any],
    *,
    target: float,
    repeat: int,
    setup: str = "pass",
) -> Timing:
    """Time ``stmt`` like ``timeit``: calibrate a loop count, then repeat.

    The statement is compiled into ``timeit``'s loop, so an iteration costs the
    statement plus the loop's own few nanoseconds, no extra function call. ``timeit``
    turns the garbage collector off while it times.

    Args:
        stmt: The statement to time, e.g. ``"mask(key, buf)"``.
        namespace: The globals the statement sees.
        target: Seconds one repeat should take (the loop count is scaled to it).
        repeat: How many repeats; the report uses their median.
        setup: Run once before each repeat.

    Returns:
        The per-operation time of each repeat.
    """
    timer = timeit.Timer(stmt, setup=setup, globals=namespace)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target / 8 or number >= 1 << 30:
            break
        number *= 4 if elapsed < target / 64 else 2
    number = max(1, int(number * target / max(elapsed, 1e-9)))
    samples = [timer.timeit(number) / number * 1e9 for _ in range(repeat)]
    return Timing(samples, number)


def fmt_ns(ns: float) -> str:
    """Format a duration in nanoseconds with three significant figures."""
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"


def fmt_rate(nbytes: int, ns: float) -> str:
    """Format ``nbytes`` processed in ``ns`` nanoseconds as GB/s (10^9 bytes)."""
    return f"{nbytes / ns:.3g} GB/s" if ns > 0 else "-"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """Return a Markdown table."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a ``.tmp`` file, so no half report is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def dump_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def python_flags() -> str:
    """Return interpreter details that change timings (debug build, free threading)."""
    flags = []
    if hasattr(sys, "gettotalrefcount"):
        flags.append("debug build")
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        flags.append("free-threaded")
    return ", ".join(flags) or "release build"
