"""``python -m benchmarks.micro [--quick] [--output DIR] [--only SECTION ...]``.

Runs, side by side in one process: masking and UTF-8 validation per SIMD level beside
websockets, aiohttp and a memory copy; the seed table (read_message vs
read_message_into, with allocations); the buffer pool against ``bytearray``; clients
sending large messages (blazews's blocking and asyncio clients beside websockets's and
aiohttp's). Prints
where it ran, then the tables; writes ``micro.md`` and ``micro.json`` to the output
folder (``benchmarks/results`` by default).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any

from blazews._bench.common import dump_json, loadavg, machine_info, write_atomic
from benchmarks.micro import kernels, report, seed, send

SECTIONS = ("mask", "utf8", "seed", "pool", "send")
RESULTS = Path(__file__).resolve().parent.parent / "results"

# (seconds per repeat, repeats, messages in the seed stream)
FULL = (0.05, 7, 1024)
QUICK = (0.002, 3, 128)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: every row, few and short repeats"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="folder for micro.md and micro.json"
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument("--repeat", type=int, help="repeats per case (median reported)")
    parser.add_argument("--target", type=float, help="seconds per repeat")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target, repeat, frames = QUICK if args.quick else FULL
    if args.repeat is not None:
        repeat = args.repeat
    if args.target is not None:
        target = args.target
    sections = args.only or list(SECTIONS)

    machine = machine_info()
    print(f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical CPUs)")
    print(
        f"SIMD level: {machine['simd_level']} "
        f"(available: {', '.join(machine['available_levels']) or 'none'})"
    )
    print(f"Python: {machine['python']} ({machine['python_build']})")
    print(f"blazews: kernels {machine['implementation']}, core {machine['codec']}")
    print(f"load average: {machine['loadavg_start']}")
    sys.stdout.flush()

    started = time.perf_counter()
    data: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "params": {"quick": args.quick, "target": target, "repeat": repeat, "frames": frames},
        "machine": machine,
    }
    native = kernels.native_kernels()
    for section in SECTIONS:
        if section not in sections:
            continue
        t0 = time.perf_counter()
        if section == "mask":
            data["mask"] = kernels.bench_mask(native, target=target, repeat=repeat)
        elif section == "utf8":
            data["utf8"] = kernels.bench_utf8(native, target=target, repeat=repeat)
        elif section == "seed":
            data["seed"] = seed.bench_seed(target=target, repeat=repeat, frames=frames)
        elif section == "pool":
            data["pool"] = seed.bench_pool(target=target, repeat=repeat)
        else:
            sizes = (send.SIZES[0] + 1, 4 << 20) if args.quick else send.SIZES
            data["send"] = send.bench_send(target=target * 4, repeat=repeat, sizes=sizes)
        print(f"[{section}] {len(data[section])} results in {time.perf_counter() - t0:.1f} s")
        sys.stdout.flush()
    data["elapsed_s"] = time.perf_counter() - started
    machine["loadavg_end"] = loadavg()

    text = report.render(data)
    args.output.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output / "micro.md", text)
    dump_json(args.output / "micro.json", data)
    print()
    print(text)
    print(f"wrote {args.output / 'micro.md'} and {args.output / 'micro.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
