"""The Markdown report of ``python -m benchmarks.micro``."""

from __future__ import annotations

from typing import Any

from blazews._bench.common import fmt_ns, md_table
from benchmarks.micro.kernels import MASK_SIZES, UTF8_KINDS, UTF8_SIZES
from benchmarks.micro.seed import GO_POOL, GO_SEED, MESSAGE_SIZE

__all__ = ["render", "size_label"]


def size_label(size: int) -> str:
    """Return ``16 B``, ``1 KiB``, ``1 MiB``..."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def _grouped(results: list[dict[str, Any]]) -> dict[str, dict[Any, dict[str, Any]]]:
    """Index results by label, then by their column key, keeping row order."""
    rows: dict[str, dict[Any, dict[str, Any]]] = {}
    for r in results:
        key = (r["kind"], r["size"]) if "kind" in r else r["size"]
        rows.setdefault(r["label"], {})[key] = r
    return rows


def mask_table(results: list[dict[str, Any]]) -> str:
    headers = ["implementation"] + [size_label(s) for s in MASK_SIZES]
    rows = []
    for label, cells in _grouped(results).items():
        row = [label]
        for size in MASK_SIZES:
            r = cells.get(size)
            row.append("-" if r is None else f"{fmt_ns(r['median_ns'])} · {r['gb_per_s']:.3g} GB/s")
        rows.append(row)
    return md_table(headers, rows)


def utf8_table(results: list[dict[str, Any]]) -> str:
    columns = [(kind, size) for kind in UTF8_KINDS for size in UTF8_SIZES]
    headers = ["implementation"] + [f"{kind} {size_label(size)}" for kind, size in columns]
    rows = []
    for label, cells in _grouped(results).items():
        row = [label]
        for col in columns:
            r = cells.get(col)
            row.append("-" if r is None else f"{r['gb_per_s']:.3g} GB/s")
        rows.append(row)
    return md_table(headers, rows)


def _int(x: float) -> str:
    return f"{x:,.0f}"


def seed_table(results: list[dict[str, Any]]) -> str:
    headers = ["row", "ns/op", "MB/s", "retained B/op", "retained blocks/op", "peak B/op"]
    rows = [
        [
            r["label"],
            _int(r["median_ns"]),
            f"{r['mb_per_s']:,.1f}",
            _int(r["retained_bytes"]),
            f"{r['retained_blocks']:.1f}",
            _int(r["peak_bytes"]),
        ]
        for r in results
    ]
    for go in GO_SEED:
        rows.append(
            [
                go["label"],
                _int(go["ns_per_op"]),
                f"{go['mb_per_s']:,.1f}",
                f"{_int(go['bytes_per_op'])} (all allocations)",
                f"{go['allocs_per_op']} (all allocations)",
                "-",
            ]
        )
    return md_table(headers, rows)


def pool_table(results: list[dict[str, Any]]) -> str:
    headers = ["row", "ns/op", "retained B/op", "retained blocks/op", "peak B/op"]
    rows = []
    for r in results:
        if not r.get("available", True):
            rows.append([r["label"], "not available yet", "-", "-", "-"])
            continue
        rows.append(
            [
                r["label"],
                _int(r["median_ns"]),
                _int(r["retained_bytes"]),
                f"{r['retained_blocks']:.1f}",
                _int(r["peak_bytes"]),
            ]
        )
    for go in GO_POOL:
        rows.append(
            [
                go["label"],
                _int(go["ns_per_op"]),
                f"{_int(go['bytes_per_op'])} (all allocations)",
                f"{go['allocs_per_op']} (all allocations)",
                "-",
            ]
        )
    return md_table(headers, rows)


def send_table(results: list[dict[str, Any]]) -> str:
    headers = ["client", "loop", "message", "GB/s", "peak traced memory per send"]
    rows = [
        [
            r["label"],
            r.get("loop", "-"),
            size_label(r["size"]),
            f"{r['gb_per_s']:.2f}",
            f"{r['peak_bytes'] / (1 << 20):.2f} MiB",
        ]
        for r in results
    ]
    return md_table(headers, rows)


def render(data: dict[str, Any]) -> str:
    """Return the whole report as Markdown."""
    m = data["machine"]
    p = data["params"]
    lines = [
        "# blazews micro-benchmarks",
        "",
        f"- CPU: {m['cpu']} ({m['logical_cpus']} logical CPUs, {m['machine']})",
        f"- OS: {m['os']}",
        f"- Python: {m['python']} ({m['python_build']})",
        f"- blazews {m['blazews']}: kernels {m['implementation']}, core {m['codec']}; "
        f"SIMD level at import: {m['simd_level']}; levels available: "
        f"{', '.join(m['available_levels']) or 'none (pure Python)'}",
        f"- CPU features: {', '.join(m['cpu_features']) or '-'}",
        "- peers: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in m["peers"].items()),
        f"- load average at start / end: {m['loadavg_start']} / {m['loadavg_end']}",
        f"- run: {data['started']}, {'quick (smoke)' if p['quick'] else 'full'}; "
        f"every figure is the median of {p['repeat']} repeats of ~{p['target'] * 1e3:g} ms; "
        f"took {data['elapsed_s']:.0f} s",
        "",
        "Absolute figures drift on a shared machine: compare ratios within one run. "
        "Raw samples are in the JSON file beside this report.",
        "",
    ]
    if "mask" in data:
        lines += [
            "## Masking (time per call · GB/s)",
            "",
            "`mask_bytes` and aiohttp's mask work in place on a bytearray; `apply_mask` "
            "and websockets' return new bytes. The copy row is the memory bandwidth "
            "reference: an in-place mask does the same reads and writes.",
            "",
            mask_table(data["mask"]),
            "",
        ]
    if "utf8" in data:
        lines += [
            "## UTF-8 validation (GB/s)",
            "",
            "ascii: printable ASCII; latin-1: U+00A0-U+00FF (2 bytes) mixed with ASCII; "
            "cjk: CJK ideographs and kana (3 bytes); emoji: 4-byte emoji with spaces. "
            "`bytes.decode` also builds the str.",
            "",
            utf8_table(data["utf8"]),
            "",
        ]
    if "seed" in data:
        lines += [
            f"## Seed table: read_message vs read_message_into ({size_label(MESSAGE_SIZE)} "
            "messages, in-memory stream)",
            "",
            "Each row reads masked single-frame binary messages from `io.BytesIO`, but "
            "the last, whose messages come in 4 frames of 256 B: the core copies the "
            "fragments into the bytes object it returns (compiled): its memory is "
            "that of a single-frame message, with no bytes per frame, list or join. "
            "The FrameReader rows are the public API of `blazews.sync.FrameReader`: "
            "`read_message()` returns bytes (the seed's ReadMessage), "
            "`read_message_into(buf)` unmasks straight into the caller's buffer (the "
            "seed's ReadMessageInto); `[pure Python]` rows run the same code uncompiled "
            "(with the compiled kernels). `blazews.sync.Connection` needs a socket and a "
            "reader thread, so the `sans-I/O core` rows run its data path "
            "single-threaded (64 KiB reads, feed the core, queue, take).",
            "",
            "Allocations come from tracemalloc, which sees only live memory: retained = "
            "what each operation leaves alive (results kept), blocks = tracemalloc blocks "
            "retained; peak = the mean high-water of traced memory above each operation's "
            "start (temporaries included). Go's -benchmem counts every allocation, freed "
            "or not, so its columns are not the same measure.",
            "",
            seed_table(data["seed"]),
            "",
        ]
    if "pool" in data:
        lines += [
            "## Buffer pool vs allocation (1 KiB)",
            "",
            pool_table(data["pool"]),
            "",
        ]
    if "send" in data:
        lines += [
            "## Clients sending large messages",
            "",
            "To a sink in another process, one message at a time, each send awaited (or "
            "returned) before the next; the asyncio clients on one event loop (the "
            "'loop' column). blazews masks a payload over 1 MiB on its way out, in "
            "1 MiB pieces through a pooled buffer; its 'whole masked copy' rows turn "
            "that off (a whole masked copy per message, as websockets and aiohttp do; "
            "a payload of exactly 1 MiB is copied whole in all blazews rows). Peak: "
            "tracemalloc's high-water above the start of one send. Throughput is a "
            "median over the repeats (each ~4x the target).",
            "",
            send_table(data["send"]),
            "",
        ]
    return "\n".join(lines)
