"""The one place that chooses the compiled or the pure-Python implementation.

``BLAZEWS_NO_EXTENSIONS=1`` (any non-empty value other than ``0``) forces pure Python at
run time, as it does at build time. Otherwise each module runs compiled when it was
built, and pure Python when it was not: the C kernels (``_native._kernels``, else
``_kernels_py``), and the modules written once in Python and also compiled by Cython
(``x_py.py`` is built as the extension ``x_c``; :func:`select` picks). :func:`report`
says what runs, module by module; :func:`summary` sums it up (``blazews.IMPLEMENTATION``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "KERNELS",
    "Utf8Validator",
    "apply_mask",
    "cpu_features",
    "encode_frame",
    "frame_header",
    "frame_payload",
    "mask_bytes",
    "mask_into",
    "payload_buffer",
    "report",
    "select",
    "simd_level",
    "summary",
    "validate_utf8",
]

_REPORT: dict[str, str] = {}


def _no_extensions() -> bool:
    return os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0")


mask_bytes: Callable[..., None]
mask_into: Callable[..., None]
apply_mask: Callable[[Any, Any], bytes]
validate_utf8: Callable[[Any], bool]
frame_header: Callable[..., bytes]
encode_frame: Callable[..., bytes]
frame_payload: Callable[[Any, int, int, bool], bytes]
payload_buffer: Callable[[int], tuple[Any, memoryview]]
Utf8Validator: Any
KERNELS: str

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
        payload_buffer,
        validate_utf8,
    )

    KERNELS = "python"
else:
    mask_bytes = _native.mask_bytes
    mask_into = _native.mask_into
    apply_mask = _native.apply_mask
    validate_utf8 = _native.validate_utf8
    frame_header = _native.frame_header
    encode_frame = _native.encode_frame
    frame_payload = _native.frame_payload
    payload_buffer = _native.payload_buffer
    Utf8Validator = _native.Utf8Validator
    KERNELS = "compiled"
_REPORT["_native._kernels"] = KERNELS


def _compiled(module: ModuleType) -> bool:
    """Whether a module is an extension module, not Python source of the same name."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def select(stem: str, *, compiled: bool | None = None) -> ModuleType:
    """Import the compiled build of a one-source module, or its pure-Python source.

    Args:
        stem: The module's full name without its ``_c`` / ``_py`` ending, as
            ``"blazews.sansio._protocol"``.
        compiled: ``False`` takes the pure module whatever was built (a module that
            must match another one's choice); ``None``: the compiled one when it was
            built, is allowed, and really is an extension module.

    Returns:
        The module; :func:`report` records which one it was.
    """
    module = None
    if compiled is not False and KERNELS == "compiled":
        try:
            module = importlib.import_module(stem + "_c")
        except ImportError:  # not built (or what it cimports was not)
            module = None
        if module is not None and not _compiled(module):
            module = None
    if module is None:
        module = importlib.import_module(stem + "_py")
    _REPORT[stem.removeprefix("blazews.")] = "compiled" if _compiled(module) else "python"
    return module


def summary() -> str:
    """``"compiled"`` when every module of :func:`report` runs compiled, ``"python"``
    when none does, ``"partial"`` otherwise (a build that made some extensions only)."""
    kinds = set(_REPORT.values())
    return kinds.pop() if len(kinds) == 1 else "partial"


def report() -> dict[str, str]:
    """What runs, module by module: ``"compiled"`` or ``"python"`` for each module that
    has both builds and was imported so far (the kernels first)."""
    return dict(_REPORT)


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
