"""Kernel benchmarks: masking and UTF-8 validation, per SIMD level, beside the peers.

Masking is timed in place (``mask_bytes`` on a bytearray, as aiohttp's Cython mask
works) and allocating (``apply_mask`` returns new bytes, as websockets' does), next to
a plain in-place copy of the same size (``memoryview(dst)[:] = src``), the memory
bandwidth a mask cannot beat. UTF-8 validation is timed on four kinds of text next to
``bytes.decode("utf-8")``, CPython's own validating decoder (which also builds a str).

Each SIMD level is selected in-process with ``blazews._native._kernels._set_level``;
the level chosen at import is restored at the end.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from blazews._bench.common import Timing, time_stmt

__all__ = [
    "MASK_SIZES",
    "UTF8_KINDS",
    "UTF8_SIZES",
    "bench_mask",
    "bench_utf8",
    "native_kernels",
    "utf8_text",
]

MASK_SIZES = [16, 125, 1024, 16384, 1 << 20]
UTF8_SIZES = [1024, 1 << 20]
UTF8_KINDS = ["ascii", "latin-1", "cjk", "emoji"]

KEY = b"\x37\xfa\x21\x3d"


def native_kernels() -> Any:
    """Return the compiled kernel module, or ``None`` when it was not built.

    Imported directly, so per-level rows exist even when ``BLAZEWS_NO_EXTENSIONS``
    makes the core run pure Python.
    """
    try:
        from blazews._native import _kernels
    except ImportError:
        return None
    return _kernels


@contextmanager
def simd_level(native: Any, level: str) -> Iterator[None]:
    """Run the block with the compiled kernels forced to ``level``."""
    previous = native.simd_level()
    native._set_level(level)
    try:
        yield
    finally:
        native._set_level(previous)


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _peer_masks() -> list[tuple[str, str, Callable[[int], dict[str, Any]]]]:
    """The peers' masking functions that are installed: (label, stmt, namespace)."""
    peers: list[tuple[str, str, Callable[[int], dict[str, Any]]]] = []
    ws_mask: Any = None
    try:
        from websockets.speedups import apply_mask as ws_mask

        ws_label = "websockets.speedups.apply_mask (C, alloc)"
    except ImportError:
        try:
            from websockets.frames import apply_mask as ws_mask

            ws_label = "websockets.frames.apply_mask (pure, alloc)"
        except ImportError:
            ws_mask = None
    if ws_mask is not None:
        peers.append(
            (ws_label, "f(src, key)", lambda n, f=ws_mask: {"f": f, "src": _payload(n), "key": KEY})
        )
    aio_mask: Any = None
    try:
        from aiohttp._websocket.mask import _websocket_mask_cython as aio_mask

        aio_label = "aiohttp _websocket_mask_cython (in place)"
    except ImportError:
        try:
            from aiohttp._websocket.helpers import websocket_mask as aio_mask

            aio_label = "aiohttp websocket_mask (pure, in place)"
        except ImportError:
            aio_mask = None
    if aio_mask is not None:
        peers.append(
            (
                aio_label,
                "f(key, buf)",
                lambda n, f=aio_mask: {"f": f, "buf": bytearray(_payload(n)), "key": KEY},
            )
        )
    return peers


def mask_cases(native: Any) -> list[dict[str, Any]]:
    """List the masking rows: label, statement, namespace factory, SIMD level."""
    from blazews import _kernels_py

    cases: list[dict[str, Any]] = []
    levels = list(native.available_levels()) if native is not None else []
    default = native.simd_level() if native is not None else None
    for level in levels:
        tag = f"{level}, default" if level == default else level
        cases.append(
            {
                "label": f"blazews mask_bytes [{tag}] (in place)",
                "impl": "blazews.mask_bytes",
                "level": level,
                "stmt": "f(key, buf)",
                "out": "buf",
                "ns": lambda n, f=native.mask_bytes: {
                    "f": f,
                    "buf": bytearray(_payload(n)),
                    "key": KEY,
                },
            }
        )
        cases.append(
            {
                "label": f"blazews apply_mask [{tag}] (alloc)",
                "impl": "blazews.apply_mask",
                "level": level,
                "stmt": "f(src, key)",
                "out": None,
                "ns": lambda n, f=native.apply_mask: {"f": f, "src": _payload(n), "key": KEY},
            }
        )
    cases.append(
        {
            "label": "blazews mask_bytes [pure Python] (in place)",
            "impl": "blazews._kernels_py.mask_bytes",
            "level": None,
            "stmt": "f(key, buf)",
            "out": "buf",
            "ns": lambda n: {
                "f": _kernels_py.mask_bytes,
                "buf": bytearray(_payload(n)),
                "key": KEY,
            },
        }
    )
    cases.append(
        {
            "label": "blazews apply_mask [pure Python] (alloc)",
            "impl": "blazews._kernels_py.apply_mask",
            "level": None,
            "stmt": "f(src, key)",
            "out": None,
            "ns": lambda n: {"f": _kernels_py.apply_mask, "src": _payload(n), "key": KEY},
        }
    )
    for label, stmt, ns in _peer_masks():
        out = "buf" if "buf" in stmt else None
        cases.append(
            {"label": label, "impl": label, "level": None, "stmt": stmt, "out": out, "ns": ns}
        )
    cases.append(
        {
            "label": "reference: in-place copy (memoryview(dst)[:] = src)",
            "impl": "copy",
            "level": None,
            "stmt": "dst[:] = src",
            "out": "dst",
            "expect": "copy",
            "ns": lambda n: {"dst": memoryview(bytearray(n)), "src": _payload(n)},
        }
    )
    return cases


def _run(
    case: dict[str, Any], native: Any, ns: dict[str, Any], target: float, repeat: int
) -> Timing:
    if case["level"] is None:
        return time_stmt(case["stmt"], ns, target=target, repeat=repeat)
    with simd_level(native, case["level"]):
        return time_stmt(case["stmt"], ns, target=target, repeat=repeat)


def _eval(case: dict[str, Any], native: Any, ns: dict[str, Any]) -> Any:
    """Run a row's statement once (our own statement strings) and return its value."""
    code = compile(
        f"_result = {case['stmt']}" if "=" not in case["stmt"] else case["stmt"], "<bench>", "exec"
    )
    if case["level"] is None:
        exec(code, ns)
    else:
        with simd_level(native, case["level"]):
            exec(code, ns)
    return ns.pop("_result", None)


def verify_mask(case: dict[str, Any], native: Any) -> None:
    """Check a masking row computes the right bytes before it is timed.

    Raises:
        AssertionError: The row's function gives a wrong result.
    """
    from blazews import _kernels_py

    for size in (0, 1, 7, 125, 1027):
        ns = case["ns"](size)
        ret = _eval(case, native, ns)
        got = bytes(ret if case["out"] is None else ns[case["out"]])
        src = _payload(size)
        want = src if case.get("expect") == "copy" else _kernels_py.apply_mask(src, KEY)
        assert got == want, f"{case['label']} gives a wrong result at {size} bytes"


def bench_mask(
    native: Any, *, target: float, repeat: int, sizes: list[int] | None = None
) -> list[dict[str, Any]]:
    """Time every masking row at every size; return one result per (row, size)."""
    results = []
    for case in mask_cases(native):
        verify_mask(case, native)
        for size in sizes or MASK_SIZES:
            timing = _run(case, native, case["ns"](size), target, repeat)
            results.append(
                {
                    "label": case["label"],
                    "impl": case["impl"],
                    "level": case["level"],
                    "size": size,
                    **timing.as_dict(),
                    "gb_per_s": size / timing.median,
                }
            )
    return results


# Characters for each kind of text: ASCII letters and punctuation; U+00A0-U+00FF
# (two-byte sequences) mixed with ASCII as in Western European text; CJK ideographs
# and kana (three bytes); emoji (four bytes) with some ASCII spaces.
_ALPHABETS = {
    "ascii": [chr(c) for c in range(0x20, 0x7F)],
    "latin-1": [chr(c) for c in range(0xA0, 0x100)] + list("etaoin shrdlu ETAOIN"),
    "cjk": [chr(c) for c in range(0x4E00, 0x4E00 + 2000)] + [chr(c) for c in range(0x3041, 0x3097)],
    "emoji": [chr(c) for c in range(0x1F600, 0x1F650)]
    + [chr(c) for c in range(0x1F300, 0x1F3FF)]
    + [" "],
}


@functools.cache
def utf8_text(kind: str, size: int) -> bytes:
    """Return exactly ``size`` bytes of valid UTF-8 text of the given kind.

    Characters are drawn with a fixed seed; the text is cut on a character boundary
    and padded with ASCII spaces to the exact size.
    """
    rng = random.Random(f"{kind}-{size}")
    alphabet = _ALPHABETS[kind]
    # Draw a few kilobytes of text and repeat it: as hard for a validator as fresh
    # text (no validator caches), and quick to build at 1 MiB.
    chunk = "".join(rng.choices(alphabet, k=max(1, min(size, 4096)))).encode()
    data = (chunk * (size // len(chunk) + 1))[:size]
    cut = len(data)
    while cut and (data[cut - 1] & 0xC0) == 0x80:  # back off a cut character
        cut -= 1
    if cut and data[cut - 1] >= 0xC0:
        cut -= 1
    data = data[:cut] + b" " * (size - cut)
    assert len(data) == size
    data.decode("utf-8")  # raises if the cut went wrong
    return data


def utf8_cases(native: Any) -> list[dict[str, Any]]:
    """List the UTF-8 rows: label, statement, SIMD level, function."""
    from blazews import _kernels_py

    cases: list[dict[str, Any]] = []
    levels = list(native.available_levels()) if native is not None else []
    default = native.simd_level() if native is not None else None
    for level in levels:
        tag = f"{level}, default" if level == default else level
        cases.append(
            {
                "label": f"blazews validate_utf8 [{tag}]",
                "impl": "blazews.validate_utf8",
                "level": level,
                "stmt": "f(data)",
                "f": native.validate_utf8,
            }
        )
    cases.append(
        {
            "label": "blazews validate_utf8 [pure Python]",
            "impl": "blazews._kernels_py.validate_utf8",
            "level": None,
            "stmt": "f(data)",
            "f": _kernels_py.validate_utf8,
        }
    )
    cases.append(
        {
            "label": "bytes.decode('utf-8') (builds a str)",
            "impl": "bytes.decode",
            "level": None,
            "stmt": "data.decode('utf-8')",
            "f": None,
        }
    )
    return cases


def bench_utf8(
    native: Any, *, target: float, repeat: int, sizes: list[int] | None = None
) -> list[dict[str, Any]]:
    """Time every UTF-8 row on every kind of text and size."""
    results = []
    for case in utf8_cases(native):
        for kind in UTF8_KINDS:
            for size in sizes or UTF8_SIZES:
                data = utf8_text(kind, size)
                ns = {"f": case["f"], "data": data}
                assert _eval(case, native, ns), f"{case['label']} rejects valid {kind} text"
                timing = _run(case, native, ns, target, repeat)
                results.append(
                    {
                        "label": case["label"],
                        "impl": case["impl"],
                        "level": case["level"],
                        "kind": kind,
                        "size": size,
                        **timing.as_dict(),
                        "gb_per_s": size / timing.median,
                    }
                )
    return results
