"""The run's record: machine description, Markdown report, PNG plots and raw JSON."""

from __future__ import annotations

import datetime
import importlib.util
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from blazews._bench.common import dump_json, machine_info, md_table, package_version, write_atomic
from blazews._bench.e2e.deflate import window_bits
from blazews._bench.e2e.rows import (
    DEFLATE_MEMORY_SIZE,
    DEFLATE_ROWS,
    DEFLATE_SIZE,
    ECHO_ROWS,
    INGEST_ROWS,
    MEMORY_ROWS,
    Row,
    size_label,
)

__all__ = ["fmt", "header_text", "loadavg", "run_info", "write"]

Key = tuple[str, str, str, int]  # scenario, row, loop, param


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in ``/proc/cpuinfo``; ``None`` elsewhere."""
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not key and core:
                    cores.add((phys, core))
                    core = ""
    except OSError:
        return None
    if core:
        cores.add((phys, core))
    return len(cores) or None


def run_info(cfg: Any, server_cpu: int | None, load_cpu: int | None) -> dict[str, Any]:
    """Describe the machine, the build and the run's set-up."""
    info = machine_info()
    info["physical_cores"] = physical_cores()
    info["uvloop"] = package_version("uvloop")
    info["aiofastnet"] = package_version("aiofastnet")
    info["loops"] = cfg.loops
    info["pinning"] = (
        f"servers on CPU {server_cpu}, load generators on CPU {load_cpu}"
        if server_cpu is not None
        else "none"
    )
    info["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info["command"] = "python -m blazews bench " + " ".join(sys.argv[1:])
    info["deflate"] = deflate_backends()
    return info


def deflate_backends() -> dict[str, Any]:
    """The deflate implementations the libraries use here."""
    from blazews.sansio.extensions.permessage_deflate import available_backends

    found: dict[str, Any] = {"blazews": available_backends()}
    try:
        from aiohttp.compression_utils import ZLibBackend

        found["aiohttp"] = ZLibBackend.name
    except ImportError:
        found["aiohttp"] = None
    return found


def header_text(meta: dict[str, Any]) -> str:
    """The lines every run prints first, and the report repeats."""
    cores = meta.get("physical_cores")
    peers = ", ".join(f"{name} {ver or 'not installed'}" for name, ver in meta["peers"].items())
    loops = ", ".join(
        f"uvloop {meta['uvloop'] or 'not installed'}" if loop == "uvloop" else "asyncio (default)"
        for loop in meta["loops"]
    )
    return "\n".join(
        [
            f"machine: {meta['cpu']} ({meta['logical_cpus']} logical CPUs"
            + (f", {cores} physical cores" if cores else "")
            + f"), {meta['os']}",
            f"python: {meta['python']}",
            f"event loops: {loops}",
            f"blazews: {meta['blazews']}, IMPLEMENTATION={meta['implementation']}, "
            f"simd_level()={meta['simd_level']}",
            f"peers: {peers}",
            f"pinning: {meta['pinning']}; load average at start: {meta['loadavg_start']}",
        ]
    )


def fmt(value: float | None) -> str:
    """A rate or size with three significant figures and thousands separators."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


# ---- aggregation --------------------------------------------------------------------


class Table:
    """Samples grouped by (scenario, row, loop, param), with medians."""

    def __init__(self, records: list[dict[str, Any]], skipped: dict[str, str]) -> None:
        self.values: dict[Key, list[float]] = defaultdict(list)
        self.errors: dict[Key, list[str]] = defaultdict(list)
        self.extra: dict[Key, list[dict[str, Any]]] = defaultdict(list)
        self.skipped = skipped
        for r in records:
            key = (r["scenario"], r["row"], r["loop"], r["param"])
            if "error" in r:
                self.errors[key].append(r["error"])
            else:
                self.values[key].append(r["value"])
                self.extra[key].append(r)

    def median(self, key: Key) -> float | None:
        values = self.values.get(key)
        return statistics.median(values) if values else None

    def spread(self, key: Key) -> str:
        values = self.values.get(key) or []
        if len(values) < 2:
            return "-"
        mid = statistics.median(values)
        return f"±{(max(values) - min(values)) / 2 / mid * 100:.0f}%" if mid else "-"

    def status(self, scenario: str, row: Row, loop: str, key: Key) -> str | None:
        """Why a cell has no number: skipped, or every attempt failed."""
        reason = self.skipped.get(f"{scenario}/{row.key}/{loop}")
        if reason is None and not row.per_loop:
            reason = self.skipped.get(f"{scenario}/{row.key}/-")
        if reason is not None:
            return reason
        if key not in self.values and key in self.errors:
            return "error: " + _short(self.errors[key][0])
        if key not in self.values:
            return "not run"
        return None

    def ratio(self, key: Key, ref_row: str, ref_loop: str | None = None) -> str:
        """``key``'s median over ``ref_row``'s, on ``ref_loop`` (default: ``key``'s
        loop; a row that runs on no loop, as the raw socket and Go rows, is compared
        with the reference on the loop of its table)."""
        value = self.median(key)
        ref = self.median((key[0], ref_row, ref_loop or key[2], key[3]))
        if value is None or not ref:
            return "-"
        return f"{value / ref:.2f}×"


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loop_key(row: Row, loop: str) -> str:
    return loop if row.per_loop else "-"


def _ratios(t: Table, key: Key, loop: str | None = None) -> list[str]:
    return [t.ratio(key, "picows", loop), t.ratio(key, "websockets", loop)]


def _failures(t: Table, key: Key) -> str:
    n = len(t.errors.get(key, []))
    return f" ({n} failed)" if n and key in t.values else ""


# ---- Markdown -----------------------------------------------------------------------


def ingest_md(t: Table, cfg: dict[str, Any]) -> str:
    parts = [
        "## Ingest: messages/s delivered to application code",
        "",
        "A raw-socket sender (another process) blasts pre-masked binary frames, built "
        "once, at the server; the server's application code counts the messages it "
        "receives. The raw socket row is a plain socket server that `recv_into`s and "
        "counts bytes (shown as frames of that size per second): the loopback ceiling, "
        "the same in both tables. The Go row (where a Go toolchain and Debian's "
        "golang-github-gorilla-websocket-dev are installed) is gorilla/websocket on one "
        "OS thread (GOMAXPROCS=1), reading each message with NextReader into one reused "
        "buffer; it and the raw row run once, and are compared with the peers of each "
        "table's loop. Higher is better.",
    ]
    for loop in cfg["loops"]:
        rows = []
        for size in cfg["sizes"]:
            for row in INGEST_ROWS:
                key = ("ingest", row.key, _loop_key(row, loop), size)
                status = t.status("ingest", row, loop, key)
                if status is not None:
                    rows.append([row.label, size_label(size), status, "", "", "", ""])
                    continue
                med = t.median(key)
                assert med is not None
                mbps = f"{med * size / 1e6:,.1f}"
                rows.append(
                    [
                        row.label,
                        size_label(size),
                        fmt(med) + _failures(t, key),
                        mbps,
                        t.spread(key),
                        *_ratios(t, key, loop),
                    ]
                )
        parts += ["", f"### Event loop: {loop}", ""]
        headers = [
            "library: API",
            "size",
            "messages/s",
            "MB/s",
            "spread",
            "× picows",
            "× websockets",
        ]
        parts.append(md_table(headers, rows))
    return "\n".join(parts)


def echo_md(t: Table, cfg: dict[str, Any]) -> str:
    parts = [
        "## Echo: round trips/s, client and server of the same library",
        "",
        "256 B binary messages; with N in flight the client keeps a window of N "
        "messages (each reply sends the next). Higher is better.",
    ]
    for loop in cfg["loops"]:
        rows = []
        for inflight in cfg["inflights"]:
            for row in ECHO_ROWS:
                key = ("echo", row.key, loop, inflight)
                status = t.status("echo", row, loop, key)
                if status is not None:
                    rows.append([row.label, str(inflight), status, "", "", ""])
                    continue
                rows.append(
                    [
                        row.label,
                        str(inflight),
                        fmt(t.median(key)) + _failures(t, key),
                        t.spread(key),
                        *_ratios(t, key, loop),
                    ]
                )
        parts += ["", f"### Event loop: {loop}", ""]
        headers = [
            "library: API",
            "in flight",
            "round trips/s",
            "spread",
            "× picows",
            "× websockets",
        ]
        parts.append(md_table(headers, rows))
    return "\n".join(parts)


def memory_md(t: Table, cfg: dict[str, Any]) -> str:
    parts = [
        "## Memory: server RSS per idle connection",
        "",
        "A separate process opens the connections (raw sockets, handshake included) "
        "and holds them idle; the server's VmRSS before (after one warm-up batch) and "
        "after, divided by the connections. Each library's server is the echo server, "
        "its handler waiting for the next message. Lower is better (so are the ratios).",
    ]
    for loop in cfg["loops"]:
        rows = []
        for row in MEMORY_ROWS:
            keys = [k for k in {**t.values, **t.errors} if k[:3] == ("memory", row.key, loop)]
            key = keys[0] if keys else ("memory", row.key, loop, cfg["connections"])
            status = t.status("memory", row, loop, key)
            if status is not None:
                rows.append([row.label, str(key[3]), status, "", "", "", "", ""])
                continue
            rows.append([row.label, str(key[3]), *_memory_cells(t, row, key), *_ratios(t, key)])
        parts += ["", f"### Event loop: {loop}", ""]
        headers = [
            "server",
            "connections",
            "RSS before (MiB)",
            "RSS after (MiB)",
            "KiB per connection",
            "spread",
            "× picows",
            "× websockets",
        ]
        parts.append(md_table(headers, rows))
    return "\n".join(parts)


def _memory_cells(t: Table, row: Row, key: Key) -> list[str]:
    """RSS before and after (MiB), per connection (KiB) and spread of a memory row."""
    extra = t.extra[key]
    before = statistics.median(e["rss_before_kib"] for e in extra) / 1024
    after = statistics.median(e["rss_after_kib"] for e in extra) / 1024
    med = t.median(key)
    assert med is not None
    return [
        f"{before:.1f}",
        f"{after:.1f}",
        f"{med / 1024:.2f}" + _failures(t, key),
        t.spread(key),
    ]


def _seen(t: Table, scenario: str, row: Row, field: str) -> list[Any]:
    """The distinct values of an extra field over every sample of a row."""
    found: list[Any] = []
    for key, extra in t.extra.items():
        if key[:2] == (scenario, row.key):
            for e in extra:
                if field in e and e[field] not in found:
                    found.append(e[field])
    return found


def _wire(t: Table, row: Row, field: str, size: int) -> str:
    values = [
        e[field]
        for key, extra in t.extra.items()
        if key[:2] == ("deflate-memory", row.key)
        for e in extra
        if field in e
    ]
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:,.0f} ({size / med:.1f}×)"


def deflate_md(t: Table, cfg: dict[str, Any], meta: dict[str, Any]) -> str:
    backends = meta.get("deflate", {})
    blazews = backends.get("blazews") or ["?"]
    parts = [
        "## Compression: permessage-deflate",
        "",
        f"Compression on for client and server, each library's default settings: "
        f"blazews level 1, memLevel 5, windows 12 bits both ways, the server without "
        f"context takeover for what it sends (`server_no_context_takeover`: its "
        f"compressor is pooled between messages), deflate backend `auto` (here "
        f"{blazews[0]} to compress, {'zlib-ng' if 'zlib-ng' in blazews else 'zlib'} to "
        f"inflate; installed: {', '.join(blazews)}) or stdlib zlib "
        f"(`BLAZEWS_DEFLATE_BACKEND=zlib`, the backend the others use); websockets "
        f'`compression="deflate"`: zlib\'s default level (6), memLevel 5, windows of '
        f"12 bits, context takeover both ways, and in a second row blazews' settings "
        f"(`BENCH_DEFLATE_SETTINGS=blazews`: level 1, `server_no_context_takeover`); "
        f"aiohttp `WebSocketResponse(compress=True)` and "
        f"`ws_connect(compress=15)`: level 1, memLevel 8, 15-bit windows, zlib backend "
        f"`{backends.get('aiohttp')}`. The messages are JSON text (a list of order "
        f"records: repeated keys, numbers, short strings), sent as binary messages, the "
        f"same bytes for every library.",
        "",
        "### Negotiated settings",
        "",
        "The `Sec-WebSocket-Extensions` response each server gave its own library's "
        "client (echo), and the one it gave a raw-socket client offering what browsers "
        f"offer, `permessage-deflate; client_max_window_bits` (idle connections). Then "
        f"the size on the wire (frame header included) of the server's compressed echo "
        f"of a {size_label(DEFLATE_MEMORY_SIZE)} message (each idle connection's only "
        f"message) and of a {size_label(DEFLATE_SIZE)} one sent after it on one "
        f"connection, with the compression ratio.",
        "",
    ]
    rows = []
    for row in DEFLATE_ROWS:
        own = " / ".join(f"`{h}`" for h in _seen(t, "deflate-echo", row, "extensions")) or "-"
        offer = " / ".join(f"`{h}`" for h in _seen(t, "deflate-memory", row, "extensions"))
        rows.append(
            [
                row.label,
                own,
                offer or "-",
                _wire(t, row, "reply_bytes", DEFLATE_MEMORY_SIZE),
                _wire(t, row, "probe_reply_bytes", DEFLATE_SIZE),
            ]
        )
    headers = [
        "library",
        "response to its own client",
        "response to the browser offer",
        f"echo of {size_label(DEFLATE_MEMORY_SIZE)}, bytes",
        f"echo of {size_label(DEFLATE_SIZE)}, bytes",
    ]
    parts.append(md_table(headers, rows))
    ours = {h for r in DEFLATE_ROWS[:2] for h in _seen(t, "deflate-memory", r, "extensions")}
    theirs = set(_seen(t, "deflate-memory", DEFLATE_ROWS[2], "extensions"))
    if ours and theirs:
        same = {window_bits(h) for h in ours} == {window_bits(h) for h in theirs}
        parts += [
            "",
            "blazews and websockets negotiate "
            + ("the same window bits" if same else "different window bits: compare with care")
            + " with their default policies; websockets keeps context takeover both ways, "
            "blazews' server answers with `server_no_context_takeover` (its compressor is "
            "pooled between messages). The row with blazews' settings runs websockets "
            "with that policy and level 1 too.",
        ]
    parts += [
        "",
        "### Compressed echo",
        "",
        f"{size_label(DEFLATE_SIZE)} JSON messages, the client of each library against "
        f"its server; the client cycles through 8 different messages (a single message "
        f"repeated would be found whole in a 32 KiB window). N in flight as in the echo "
        f"scenario. MB/s counts the uncompressed payload one way. Higher is better.",
    ]
    for loop in cfg["loops"]:
        rows = []
        for inflight in cfg["deflate_inflights"]:
            for row in DEFLATE_ROWS:
                key = ("deflate-echo", row.key, loop, inflight)
                status = t.status("deflate-echo", row, loop, key)
                if status is not None:
                    rows.append([row.label, str(inflight), status, "", "", ""])
                    continue
                med = t.median(key)
                assert med is not None
                rows.append(
                    [
                        row.label,
                        str(inflight),
                        fmt(med) + _failures(t, key),
                        f"{med * DEFLATE_SIZE / 1e6:,.1f}",
                        t.spread(key),
                        t.ratio(key, "websockets"),
                    ]
                )
        parts += ["", f"#### Compressed echo, event loop: {loop}", ""]
        headers = ["library", "in flight", "messages/s", "MB/s", "spread", "× websockets"]
        parts.append(md_table(headers, rows))
    parts += [
        "",
        "### Idle compressed connections: server RSS per connection",
        "",
        f"As the memory scenario, but every connection negotiated permessage-deflate "
        f"(the browser offer above) and exchanged one compressed "
        f"{size_label(DEFLATE_MEMORY_SIZE)} JSON message each way before going idle, so "
        f"the compression streams a library creates lazily exist. Lower is better (so "
        f"are the ratios).",
    ]
    for loop in cfg["loops"]:
        rows = []
        for row in DEFLATE_ROWS:
            keys = [
                k for k in {**t.values, **t.errors} if k[:3] == ("deflate-memory", row.key, loop)
            ]
            key = keys[0] if keys else ("deflate-memory", row.key, loop, cfg["connections"])
            status = t.status("deflate-memory", row, loop, key)
            if status is not None:
                rows.append([row.label, str(key[3]), status, "", "", "", ""])
                continue
            rows.append(
                [row.label, str(key[3]), *_memory_cells(t, row, key), t.ratio(key, "websockets")]
            )
        parts += ["", f"#### Idle compressed connections, event loop: {loop}", ""]
        headers = [
            "server",
            "connections",
            "RSS before (MiB)",
            "RSS after (MiB)",
            "KiB per connection",
            "spread",
            "× websockets",
        ]
        parts.append(md_table(headers, rows))
    return "\n".join(parts)


def markdown(
    meta: dict[str, Any], cfg: dict[str, Any], t: Table, plots: dict[str, Path], note: str
) -> str:
    mode = "quick smoke run: numbers are not meaningful" if cfg["quick"] else "full run"
    parts = [
        "# blazews end-to-end benchmarks",
        "",
        f"{meta['date']}, {mode}; {cfg['repeats']} repeat(s) "
        f"({cfg.get('echo_repeats', cfg['repeats'])} for echo) of {cfg['duration']} s "
        f"after {cfg['warmup']} s of warm-up; medians of the repeats, spread is half "
        f"the range over the median. Took {meta.get('elapsed_s', '?')} s "
        f"({', '.join(f'{k} {v} s' for k, v in meta.get('scenario_s', {}).items())}).",
        "",
        "```",
        header_text(meta),
        f"load average at end: {meta.get('loadavg_end')}",
        "```",
        "",
        "Every server runs in its own process, pinned to one CPU; the load generator "
        "runs in another process on another CPU; one measurement runs at a time. "
        "Keepalive pings are off everywhere, and so is compression except in the "
        "Compression section. Ratios compare a row "
        "with picows and with websockets in the same table (same loop, same size).",
    ]
    if meta.get("aiofastnet"):
        parts.append(
            f"picows runs on aiofastnet {meta['aiofastnet']} transports, its default when "
            "that package is installed (a picows dependency)."
        )
    if note:
        parts += ["", note]
    renders = (
        ("ingest", ingest_md),
        ("echo", echo_md),
        ("memory", memory_md),
        ("deflate", lambda t, cfg: deflate_md(t, cfg, meta)),
    )
    for scenario, render in renders:
        if scenario in cfg["scenarios"]:
            parts += ["", render(t, cfg)]
            if scenario in plots:
                parts += ["", f"![{scenario}]({plots[scenario].name})"]
    return "\n".join(parts) + "\n"


# ---- plots --------------------------------------------------------------------------


Series = list[tuple[str, list[float | None], Any]]  # label, one value per group, colour


def _series(rows: tuple[Row, ...], values: dict[str, list[list[float | None]]]) -> list[Series]:
    """Per panel, the bars of every row that has data in some panel, each row keeping
    its colour and its slot in every panel (missing values draw no bar)."""
    kept = [row for row in rows if any(v is not None for p in values[row.key] for v in p)]
    # matplotlib's default colour cycle (10 colours), or its 20-colour map for more
    # rows than that: no two rows drawn in one colour.
    palette: list[Any] = [f"C{i}" for i in range(10)]
    if len(kept) > len(palette):
        import matplotlib

        tab20 = matplotlib.colormaps["tab20"]
        palette = [tab20(i) for i in range(20)]
    panels = len(next(iter(values.values()), []))
    return [
        [
            (row.label, values[row.key][panel], palette[i % len(palette)])
            for i, row in enumerate(kept)
        ]
        for panel in range(panels)
    ]


def _bars(ax: Any, groups: list[str], series: Series) -> None:
    width = 0.8 / max(1, len(series))
    for i, (label, values, colour) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        xs = [g + offset for g, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=label, color=colour)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.grid(axis="y", alpha=0.3)


def _legend(fig: Any, axes: list[Any]) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)


def plot(outdir: Path, cfg: dict[str, Any], t: Table) -> dict[str, Path]:
    """Draw ``e2e_ingest.png``, ``e2e_echo.png``, ``e2e_memory.png`` and
    ``e2e_deflate.png`` (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    loops = cfg["loops"]
    if "ingest" in cfg["scenarios"]:
        values = {
            row.key: [
                [t.median(("ingest", row.key, _loop_key(row, loop), s)) for s in cfg["sizes"]]
                for loop in loops
            ]
            for row in INGEST_ROWS
        }
        fig, axes = plt.subplots(1, len(loops), figsize=(7 * len(loops), 5.2), squeeze=False)
        for ax, loop, series in zip(axes[0], loops, _series(INGEST_ROWS, values), strict=True):
            _bars(ax, [size_label(s) for s in cfg["sizes"]], series)
            ax.set_yscale("log")
            ax.set_title(f"ingest: messages/s to application code, {loop}")
            ax.set_ylabel("messages/s (log scale)")
            ax.set_xlabel("message size")
        _legend(fig, list(axes[0]))
        fig.subplots_adjust(bottom=0.22)
        paths["ingest"] = _save(fig, outdir / "e2e_ingest.png", plt)
    if "echo" in cfg["scenarios"]:
        values = {
            row.key: [
                [t.median(("echo", row.key, loop, n)) for n in cfg["inflights"]] for loop in loops
            ]
            for row in ECHO_ROWS
        }
        fig, axes = plt.subplots(1, len(loops), figsize=(6 * len(loops), 4.8), squeeze=False)
        for ax, loop, series in zip(axes[0], loops, _series(ECHO_ROWS, values), strict=True):
            _bars(ax, [f"{n} in flight" for n in cfg["inflights"]], series)
            ax.set_title(f"echo, 256 B: round trips/s, {loop}")
            ax.set_ylabel("round trips/s")
        _legend(fig, list(axes[0]))
        fig.subplots_adjust(bottom=0.2)
        paths["echo"] = _save(fig, outdir / "e2e_echo.png", plt)
    if "memory" in cfg["scenarios"]:
        values = {}
        for row in MEMORY_ROWS:
            per_loop: list[float | None] = []
            for loop in loops:
                keys = [k for k in t.values if k[:3] == ("memory", row.key, loop)]
                med = t.median(keys[0]) if keys else None
                per_loop.append(med / 1024 if med is not None else None)
            values[row.key] = [per_loop]
        fig, ax = plt.subplots(figsize=(8, 5))
        _bars(ax, list(loops), _series(MEMORY_ROWS, values)[0])
        ax.set_title(f"server memory per idle connection ({cfg['connections']} connections)")
        ax.set_ylabel("KiB per connection")
        _legend(fig, [ax])
        fig.subplots_adjust(bottom=0.24)
        paths["memory"] = _save(fig, outdir / "e2e_memory.png", plt)
    if "deflate" in cfg["scenarios"]:
        paths["deflate"] = _plot_deflate(outdir, cfg, t, plt)
    return paths


def _plot_deflate(outdir: Path, cfg: dict[str, Any], t: Table, plt: Any) -> Path:
    """Compressed echo (left) and memory per idle compressed connection (right)."""
    loops, inflights = cfg["loops"], cfg["deflate_inflights"]
    echo = {
        row.key: [
            [t.median(("deflate-echo", row.key, loop, n)) for loop in loops for n in inflights]
        ]
        for row in DEFLATE_ROWS
    }
    memory: dict[str, list[list[float | None]]] = {}
    for row in DEFLATE_ROWS:
        per_loop: list[float | None] = []
        for loop in loops:
            keys = [k for k in t.values if k[:3] == ("deflate-memory", row.key, loop)]
            med = t.median(keys[0]) if keys else None
            per_loop.append(med / 1024 if med is not None else None)
        memory[row.key] = [per_loop]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    _bars(
        axes[0],
        [f"{loop}\n{n} in flight" for loop in loops for n in inflights],
        _series(DEFLATE_ROWS, echo)[0],
    )
    axes[0].set_title(f"compressed echo, {size_label(DEFLATE_SIZE)} JSON: messages/s")
    axes[0].set_ylabel("messages/s")
    _bars(axes[1], list(loops), _series(DEFLATE_ROWS, memory)[0])
    axes[1].set_title(f"server memory per idle compressed connection, {cfg['connections']} conns")
    axes[1].set_ylabel("KiB per connection")
    _legend(fig, list(axes))
    fig.subplots_adjust(bottom=0.24)
    return _save(fig, outdir / "e2e_deflate.png", plt)


def _save(fig: Any, path: Path, plt: Any) -> Path:
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")  # (the legend below the axes too)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write(
    outdir: Path,
    meta: dict[str, Any],
    cfg: dict[str, Any],
    records: list[dict[str, Any]],
    skipped: dict[str, str],
) -> dict[str, Path]:
    """Write ``e2e.json``, the plots and ``e2e.md`` into ``outdir``; return their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    t = Table(records, skipped)
    note = ""
    plots: dict[str, Path] = {}
    if importlib.util.find_spec("matplotlib") is None:
        note = "matplotlib is not installed: no plots."
    else:
        plots = plot(outdir, cfg, t)
    json_path = outdir / "e2e.json"
    dump_json(json_path, {"machine": meta, "config": cfg, "skipped": skipped, "records": records})
    md_path = outdir / "e2e.md"
    write_atomic(md_path, markdown(meta, cfg, t, plots, note))
    return {"markdown": md_path, "json": json_path, **{f"plot {k}": v for k, v in plots.items()}}
