"""Type aliases of the public API, for type checkers only (nothing here runs).

``Buffer`` is any object that exports a buffer (bytes, bytearray, memoryview, array,
numpy arrays): :class:`collections.abc.Buffer` on Python 3.12+, and its backport in
``typing_extensions`` (which type checkers ship with) before.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    if sys.version_info >= (3, 12):
        from collections.abc import Buffer as Buffer
    else:
        from typing_extensions import Buffer as Buffer
    from typing import TypeAlias

    Data: TypeAlias = "str | Buffer"
    """A message to send: ``str`` as text, any bytes-like object as binary."""
