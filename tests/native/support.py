"""Shared helpers for the kernel tests: every implementation, every SIMD level.

``IMPLS`` names each way the kernels can run here: ``"python"`` (the pure module),
then one entry per SIMD level of the compiled module that this build includes and
this CPU runs. ``use(name)`` switches the compiled module to that level for the
duration and returns a namespace with the kernels.
"""

from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Iterator
from typing import Any

from blazews import _kernels_py


def no_extensions() -> bool:
    return os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0")


def load_native() -> Any:
    """The compiled module, or None when it is switched off or was not built."""
    if no_extensions():
        return None
    try:
        from blazews._native import _kernels
    except ImportError:
        return None
    return _kernels


native = load_native()

IMPLS: list[str] = ["python"] + ([] if native is None else list(native.available_levels()))


def _namespace(module: Any, name: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        name=name,
        compiled=module is not _kernels_py,
        mask_bytes=module.mask_bytes,
        mask_into=module.mask_into,
        apply_mask=module.apply_mask,
        validate_utf8=module.validate_utf8,
        frame_header=module.frame_header,
        encode_frame=module.encode_frame,
        frame_payload=module.frame_payload,
        Utf8Validator=module.Utf8Validator,
    )


@contextlib.contextmanager
def use(name: str) -> Iterator[types.SimpleNamespace]:
    """Run the kernels as ``name`` (``"python"`` or a SIMD level) inside the block."""
    if name == "python":
        yield _namespace(_kernels_py, name)
        return
    assert native is not None
    before = native.simd_level()
    native._set_level(name)
    try:
        assert native.simd_level() == name
        yield _namespace(native, name)
    finally:
        native._set_level(before)
