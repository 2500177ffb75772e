"""Instructions per echoed message, counted by callgrind: ``python -m benchmarks.instructions``.

1-in-flight echo is a round trip of tens of microseconds, mostly kernel and wake-ups;
what a library does per message is a few microseconds of it, and a shared machine's
noise (often +-20% between runs) hides differences of a few percent between libraries.
This benchmark counts instead what the wall clock cannot resolve: the instructions
the server's process executes per message it echoes, under valgrind's callgrind
(user space only: the system calls themselves are not counted; every server here
makes the same three per message, ``epoll_wait``, a read and a write).

Each server is the e2e benchmark's (``blazews._bench.e2e.server --mode echo``) with 256 B
messages, on the loop asked for. A neutral blocking client in this process makes the
round trips, one at a time. Each server runs twice, for ``--messages`` round trips
and for ten times as many; the difference, divided by the difference in messages,
leaves start-up and shutdown out. Counts are deterministic to about 0.1% between
runs. Needs ``valgrind`` (Debian package ``valgrind``); slow (about a minute per
library).
"""

from __future__ import annotations

import argparse
import base64
import functools
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from blazews._bench.common import machine_info, md_table, package_version, write_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LIBS = ["blazews-listener", "blazews", "blazews-iter", "picows", "websockets", "aiohttp"]
CODES = ["blazews", "picows", "websockets", "aiohttp", "aiofastnet", "uvloop", "CPython"]
CODES += ["libc", "other"]
SIZE = 256


def round_trips(port: int, count: int, size: int = SIZE) -> None:
    """Open a WebSocket connection to ``port`` and make ``count`` echo round trips."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head.splitlines()[0]!r}")
    # A masked binary frame (key 0: the payload goes as is) and the reply's length.
    frame = bytes([0x82, 0x80 | 126, size >> 8, size & 0xFF, 0, 0, 0, 0]) + b"x" * size
    reply = 4 + size
    pending = head.split(b"\r\n\r\n", 1)[1]
    buf = bytearray(reply)
    for _ in range(count):
        sock.sendall(frame)
        got = len(pending)
        buf[:got] = pending
        pending = b""
        while got < reply:
            n = sock.recv_into(memoryview(buf)[got:])
            if not n:
                raise ConnectionError("the server closed during the echo")
            got += n
        if buf[0] != 0x82 or buf[4:] != frame[8:]:
            raise ConnectionError(f"unexpected reply {bytes(buf[:8])!r}")
    sock.close()


def count_instructions(lib: str, loop: str, messages: int) -> Counter[str]:
    """Run ``lib``'s echo server under callgrind for ``messages`` round trips (after
    10 of warm-up); return the instructions its process executed, in all (``""``) and
    by the code they ran in (see :func:`code_of`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "blazews._bench.e2e.server",
            f"--lib={lib}",
            "--mode=echo",
            f"--loop={loop}",
        ]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("READY "):
                raise RuntimeError(f"{lib}: server did not start ({line!r})")
            port = json.loads(line.split(" ", 1)[1])["port"]
            round_trips(port, 10 + messages)
        finally:
            proc.send_signal(signal.SIGTERM)  # callgrind writes its counts on the way out
            proc.wait(120)
        text = out.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{lib}: no instruction count in callgrind's output")
    counts = by_object(text)
    if sum(counts.values()) != int(found.group(1)):
        raise RuntimeError(f"{lib}: callgrind's output not understood (counts do not add up)")
    counts[""] = int(found.group(1))
    return counts


def by_object(text: str) -> Counter[str]:
    """Sum the instructions of a callgrind output file by the code they ran in.

    Its format: ``ob=`` names the object file of the lines that follow (``(n) name``
    the first time, ``(n)`` after; ``cob=`` lines name the callee's and may come
    first); a line that starts with a number, ``+``, ``-`` or ``*`` is a position
    and its cost, except the one after ``calls=``: a call's inclusive cost.
    """
    names: dict[str, str] = {}
    obj = "?"
    after_call = False
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        first = line[:1]
        if first.isdigit() or first in "+-*":
            if after_call:
                after_call = False
            elif len(fields := line.split()) >= 2:
                counts[code_of(obj)] += int(fields[1])
        elif line.startswith(("ob=", "cob=")):
            named = re.match(r"c?ob=(\(\d+\))?\s*(.*)", line)
            assert named is not None
            key, name = named.group(1), named.group(2)
            if key and name:
                names[key] = name
            if first == "o":
                obj = name or names.get(key or "", "?")
        elif line.startswith("calls="):
            after_call = True
    return counts


LIBRARIES = ("blazews", "picows", "aiofastnet", "websockets", "aiohttp", "uvloop")


@functools.cache
def package_dirs() -> dict[str, str]:
    """Each installed library's own package directory, resolved, ending in a separator.

    Found without importing the libraries. Matching on these, not on a path fragment
    such as ``/blazews/``, keeps a checkout named ``blazews`` (the name ``git clone``
    gives) from claiming every object file of the ``.venv`` inside it.
    """
    dirs: dict[str, str] = {}
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                dirs[name] = os.path.join(os.path.realpath(location), "")
                break
    return dirs


@functools.cache
def code_of(path: str) -> str:
    """Name the code an object file belongs to: a library, the interpreter, libc."""
    real = os.path.realpath(path)
    for name, directory in package_dirs().items():
        if real.startswith(directory):
            return name
    base = os.path.basename(path)
    if base.startswith("libpython") or base.startswith("python"):
        return "CPython"
    if base.startswith(("libc.", "libc-", "ld-linux", "libm.")):
        return "libc"
    return "other"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated servers")
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    parser.add_argument("--messages", type=int, default=1000, help="round trips of the short run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="report directory")
    ns = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("needs valgrind (apt-get install valgrind)")
    libs = [lib for lib in ns.libs.split(",") if lib]
    short, long = ns.messages, 10 * ns.messages
    per: dict[str, float] = {}
    by_code: dict[str, dict[str, float]] = {}
    for lib in libs:
        a = count_instructions(lib, ns.loop, short)
        b = count_instructions(lib, ns.loop, long)
        per[lib] = (b[""] - a[""]) / (long - short)
        by_code[lib] = {k: (b[k] - a[k]) / (long - short) for k in b.keys() | a.keys() if k}
        print(f"{lib:18} {per[lib]:9,.0f} instructions per message", flush=True)
    info: dict[str, Any] = machine_info()
    info.update(loop=ns.loop, uvloop=package_version("uvloop"), picows=package_version("picows"))
    ref = per.get("picows")
    rows = [[lib, f"{n:,.0f}", f"{n / ref:.3f}x" if ref else "-"] for lib, n in per.items()]
    report = [
        "# Instructions per echoed message (server side, callgrind)",
        "",
        f"256 B binary messages, 1 in flight, {ns.loop}; differences of runs of {short:,} "
        f"and {long:,} round trips. Lower is better; ratios are to picows.",
        "",
        md_table(["server", "instructions per message", "vs picows"], rows),
        "",
        "By the code they ran in (the object file of each instruction; uvloop includes its",
        "transports; libc includes the GIL's locks; other: the standard library's extension",
        "modules and the rest):",
        "",
        md_table(
            ["server", *CODES],
            [[lib] + [f"{by_code[lib].get(c, 0):,.0f}" for c in CODES] for lib in by_code],
        ),
        "",
        "```",
        json.dumps(info, indent=1, sort_keys=True),
        "```",
        "",
    ]
    ns.output.mkdir(parents=True, exist_ok=True)
    write_atomic(ns.output / "instructions.md", "\n".join(report))
    write_atomic(
        ns.output / "instructions.json",
        json.dumps({"machine": info, "per_message": per, "by_code": by_code}, indent=1),
    )
    print(f"markdown: {ns.output / 'instructions.md'}")


if __name__ == "__main__":
    main()
