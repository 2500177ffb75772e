"""The one place that chooses the compiled or the pure-Python implementation.

``BLAZEWS_NO_EXTENSIONS=1`` (any non-empty value other than ``0``) forces pure Python at
run time, as it does at build time. Otherwise the compiled kernels are used when they
were built, and pure Python when they were not. ``IMPLEMENTATION`` says which runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "IMPLEMENTATION",
    "Utf8Validator",
    "apply_mask",
    "cpu_features",
    "encode_frame",
    "frame_header",
    "frame_payload",
    "mask_bytes",
    "mask_into",
    "simd_level",
    "validate_utf8",
]


def _no_extensions() -> bool:
    return os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0")


mask_bytes: Callable[..., None]
mask_into: Callable[..., None]
apply_mask: Callable[[Any, Any], bytes]
validate_utf8: Callable[[Any], bool]
frame_header: Callable[..., bytes]
encode_frame: Callable[..., bytes]
frame_payload: Callable[[Any, int, int, bool], bytes]
Utf8Validator: Any
IMPLEMENTATION: str

if _no_extensions():
    _native: Any = None
else:
    try:
        from ._native import _kernels as _native
    except ImportError:
        _native = None

if _native is None:
    from ._kernels_py import (
        Utf8Validator,
        apply_mask,
        encode_frame,
        frame_header,
        frame_payload,
        mask_bytes,
        mask_into,
        validate_utf8,
    )

    IMPLEMENTATION = "python"
else:
    mask_bytes = _native.mask_bytes
    mask_into = _native.mask_into
    apply_mask = _native.apply_mask
    validate_utf8 = _native.validate_utf8
    frame_header = _native.frame_header
    encode_frame = _native.encode_frame
    frame_payload = _native.frame_payload
    Utf8Validator = _native.Utf8Validator
    IMPLEMENTATION = "compiled"


def simd_level() -> str:
    """Return the SIMD level the kernels run at: ``"python"``, ``"scalar"``, ``"avx2"``..."""
    if _native is None:
        return "python"
    return str(_native.simd_level())


def cpu_features() -> dict[str, bool]:
    """Return the CPU features detected at import (empty when running pure Python)."""
    if _native is None:
        return {}
    return dict(_native.cpu_features())
