"""What the fuzz targets share: an input reader and a driver (atheris or plain random).

Each target is a script with a ``test_one_input(data: bytes)`` function and ends with
``main(test_one_input)``. With atheris installed, ``main`` hands it to libFuzzer
(coverage-guided; libFuzzer's flags apply: ``-runs=N``, ``-max_total_time=S``,
corpus folders, a crash file to reproduce). Without atheris, or with
``BLAZEWS_FUZZ_DRIVER=random``, a plain driver takes the same arguments and feeds
random inputs and mutations of the corpus files: no coverage guidance, but every
target runs and a crash is saved and reproducible the same way.

Inputs are decoded with :class:`Input`, not atheris' ``FuzzedDataProvider``, so that a
saved input means the same thing under both drivers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["Input", "instrumented", "main", "split"]

try:
    if os.environ.get("BLAZEWS_FUZZ_DRIVER", "") == "random":
        raise ImportError("random driver forced")
    import atheris
except ImportError:
    atheris = None


def instrumented() -> contextlib.AbstractContextManager[object]:
    """Instrument the modules imported in the block for coverage (with atheris)."""
    if atheris is None:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["blazews"], enable_loader_override=False)


class Input:
    """Reads structure from fuzz bytes; past the end every read gives zeros."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def num(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]`` from one byte (two when the range needs it)."""
        span = hi - lo + 1
        value = self.byte()
        if span > 256:
            value = value << 8 | self.byte()
        return lo + value % span

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def cuts(self, most: int, longest: int) -> list[int]:
        """Chunk lengths for :func:`split`: up to ``most``, each up to ``longest``."""
        return [self.num(0, longest) for _ in range(self.num(0, most))]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` into chunks of the given lengths, the rest as the last chunk."""
    chunks = []
    pos = 0
    for n in cuts:
        chunks.append(data[pos : pos + n])
        pos += n
    chunks.append(data[pos:])
    return chunks


# -- the plain random driver -------------------------------------------------------------


def _corpus(paths: list[Path]) -> list[bytes]:
    seeds = []
    for path in paths:
        if path.is_dir():
            seeds.extend(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())
    return seeds or [b""]


def _mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(7)
        if op == 0 or not data:
            data[rng.randint(0, len(data)) : 0] = rng.randbytes(rng.randint(1, 16))
        elif op == 1:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 3:
            i = rng.randrange(len(data))
            del data[i : i + rng.randint(1, 16)]
        elif op == 4:
            i = rng.randrange(len(data))
            data[i:i] = data[i : i + rng.randint(1, 64)]
        elif op == 5:
            other = rng.choice(seeds)
            data[rng.randint(0, len(data)) :] = other[rng.randint(0, len(other)) :]
        else:
            i = rng.randrange(len(data))
            data[i] = rng.choice((0x00, 0x7E, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0xC0, 0xED, 0xF4))
    return bytes(data)


def _inputs(rng: random.Random, seeds: list[bytes]) -> Iterator[bytes]:
    yield from seeds
    while True:
        if rng.random() < 0.1:
            yield rng.randbytes(rng.randint(0, 512))
        else:
            yield _mutate(rng, seeds)


def _random_main(target: Callable[[bytes], None], argv: list[str]) -> int:
    runs = -1
    max_time = 0.0
    seed = int(time.time())
    prefix = "./crash-"
    paths: list[Path] = []
    for arg in argv[1:]:
        if arg.startswith("-") and "=" in arg:
            name, _, value = arg[1:].partition("=")
            if name == "runs":
                runs = int(value)
            elif name == "max_total_time":
                max_time = float(value)
            elif name == "seed":
                seed = int(value)
            elif name == "artifact_prefix":
                prefix = value
            # other libFuzzer flags mean nothing here
        elif not arg.startswith("-"):
            paths.append(Path(arg))
    files = [p for p in paths if p.is_file()]
    if files:  # reproduce saved inputs, as libFuzzer does
        for path in files:
            print(f"running {path}")
            target(path.read_bytes())
        return 0
    rng = random.Random(seed)
    print(f"random driver: seed={seed} runs={runs} max_total_time={max_time}")
    deadline = time.monotonic() + max_time if max_time > 0 else None
    done = 0
    for data in _inputs(rng, _corpus(paths)):
        if done == runs or (deadline is not None and time.monotonic() > deadline):
            break
        try:
            target(data)
        except BaseException:
            traceback.print_exc()
            name = f"{prefix}{hashlib.sha1(data).hexdigest()}"
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_bytes(data)
            print(f"crash after {done} runs; input saved to {name}")
            return 1
        done += 1
    print(f"done: {done} runs, no crash")
    return 0


def main(target: Callable[[bytes], None]) -> None:
    """Fuzz ``target`` with the driver available, taking libFuzzer-style arguments."""
    if atheris is not None:
        atheris.Setup(sys.argv, target)
        atheris.Fuzz()
    else:
        sys.exit(_random_main(target, sys.argv))
