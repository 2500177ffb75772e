"""Fuzz UTF-8 validation: C kernels at every SIMD level, pure Python, ``bytes.decode``.

Each input becomes a buffer type (bytes, bytearray, memoryview, strided memoryview),
a SIMD level, cuts, and the text. Checked:

- ``validate_utf8`` gives ``bytes.decode("utf-8")``'s verdict, compiled at every
  level and pure; a non-contiguous buffer raises ``BufferError`` in each, as
  ``bytes.decode`` does;
- ``Utf8Validator`` fed the chunks, compiled (at the input's level) and pure, returns
  the same thing for every chunk, and that is whether the bytes so far can still be
  completed into valid UTF-8 (the validator fails as soon as they cannot, and stays
  failed); ``finish`` gives the one-shot verdict and leaves it ready for a new text.
  A non-contiguous chunk raises ``BufferError`` in both (a pure ``TypeError`` here was
  this target's first finding, kept in ``corpus/utf8/regression-*``);
  ``BLAZEWS_FUZZ_STRICT_ERRORS=0`` stops comparing the exception types.

Run ``python fuzzing/fuzz_utf8.py [corpus dirs] [-runs=N | -max_total_time=S]``.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _driver import Input, instrumented, main, split  # noqa: E402

with instrumented():
    from blazews import _kernels_py

try:
    from blazews._native import _kernels as native
except ImportError:
    native = None

LEVELS = list(native.available_levels()) if native is not None else []
STRICT_ERRORS = os.environ.get("BLAZEWS_FUZZ_STRICT_ERRORS", "1") == "1"

# Continuation bytes at the edges of the ranges RFC 3629 allows after each lead byte:
# enough to complete any sequence that can be completed.
_EDGES = (0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF)
_SUFFIXES = [b""] + [bytes(s) for n in (1, 2, 3) for s in itertools.product(_EDGES, repeat=n)]


def valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def completable(prefix: bytes) -> bool:
    """Whether some bytes appended to ``prefix`` make valid UTF-8."""
    if valid(prefix):
        return True
    for k in range(1, min(3, len(prefix)) + 1):
        if prefix[-k] >= 0xC0:  # the start of the last, unfinished character
            head, tail = prefix[:-k], prefix[-k:]
            return valid(head) and any(valid(tail + s) for s in _SUFFIXES)
    return False


def as_buffer(data: bytes, kind: int) -> Any:
    if kind == 0:
        return data
    if kind == 1:
        return bytearray(data)
    if kind == 2:
        return memoryview(data)
    doubled = bytearray(len(data) * 2)  # every other byte: a non-contiguous view
    doubled[::2] = data
    doubled[1::2] = b"\xff" * len(data)
    return memoryview(bytes(doubled))[::2]


def feed_all(validator: Any, chunks: list[Any]) -> list[bool]:
    return [bool(validator.feed(chunk)) for chunk in chunks]


def _error(call: Any, *args: Any) -> str:
    try:
        result = call(*args)
    except (TypeError, BufferError) as exc:
        return type(exc).__name__
    raise AssertionError(f"{call!r} accepted a non-contiguous buffer and said {result!r}")


def check_strided(text: bytes, flags: int) -> None:
    """A non-contiguous buffer is refused everywhere (not validated wrongly)."""
    buf = as_buffer(text, 3)
    assert _error(_kernels_py.validate_utf8, buf) == "BufferError"
    errors = {"pure": _error(_kernels_py.Utf8Validator().feed, buf)}
    for level in LEVELS:
        native._set_level(level)
        assert _error(native.validate_utf8, buf) == "BufferError", f"[{level}]"
        errors[level] = _error(native.Utf8Validator().feed, buf)
    if STRICT_ERRORS:
        assert len(set(errors.values())) == 1, f"Utf8Validator.feed raises {errors}"


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    kind = (flags >> 3) & 3
    cuts = inp.cuts(16, 64)
    text = inp.rest()
    if kind == 3:
        if len(text) >= 2:
            check_strided(text, flags)
            return
        kind = 2  # a strided view of one byte is neither here nor there: skip it
    expected = valid(text)
    buf = as_buffer(text, kind)

    assert _kernels_py.validate_utf8(buf) == expected, "pure validate_utf8 != bytes.decode"
    for level in LEVELS:
        native._set_level(level)
        got = native.validate_utf8(buf)
        assert got == expected, f"validate_utf8 [{level}] says {got}, bytes.decode {expected}"

    pieces = split(text, cuts)
    chunks = [as_buffer(piece, kind) for piece in pieces]
    prefixes = list(itertools.accumulate(pieces))
    oracle = [completable(p) for p in prefixes]

    pure = _kernels_py.Utf8Validator()
    pure_feeds = feed_all(pure, chunks)
    assert pure_feeds == oracle, f"pure Utf8Validator feeds {pure_feeds}, oracle {oracle}"
    assert pure.finish() == expected, "pure Utf8Validator.finish != bytes.decode"
    assert feed_all(pure, [buf]) == [completable(text)], "pure validator not reset by finish"

    if native is not None:
        native._set_level(LEVELS[flags % len(LEVELS)])
        compiled = native.Utf8Validator()
        feeds = feed_all(compiled, chunks)
        assert feeds == pure_feeds, f"compiled Utf8Validator feeds {feeds}, pure {pure_feeds}"
        assert compiled.finish() == expected, "compiled Utf8Validator.finish != bytes.decode"
        assert feed_all(compiled, [buf]) == [completable(text)], "compiled not reset by finish"
        compiled.reset()
        assert compiled.feed(b"ok") and compiled.finish(), "compiled validator not reset"


if __name__ == "__main__":
    main(test_one_input)
