"""Native kernels (C): WebSocket masking and UTF-8 validation, dispatched by CPU.

Use them through ``blazews._impl``, which falls back to ``blazews._kernels_py``
when this package was not compiled.
"""
