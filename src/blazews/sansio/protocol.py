"""The protocol core's public face: the compiled or the pure-Python implementation.

The state machine is written once, in ``_protocol_py.py``. Cython compiles that same
file into ``_protocol_c`` (see ``_protocol_c.pxd`` for the C types it adds). The
switch is the one of :mod:`blazews._impl`: ``BLAZEWS_NO_EXTENSIONS=1`` runs the pure
module; otherwise the compiled one when it was built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._impl import IMPLEMENTATION
from .states import Side, State

__all__ = [
    "CODEC",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FRAGMENT_OVERHEAD",
    "Message",
    "MessageCallback",
    "Ping",
    "Pong",
    "Protocol",
    "Side",
    "State",
]

if TYPE_CHECKING:
    from ._protocol_py import (
        DEFAULT_MAX_MESSAGE_SIZE,
        FRAGMENT_OVERHEAD,
        Message,
        MessageCallback,
        Ping,
        Pong,
        Protocol,
    )

    CODEC: str
elif IMPLEMENTATION == "compiled":
    try:
        from ._protocol_c import (
            DEFAULT_MAX_MESSAGE_SIZE,
            FRAGMENT_OVERHEAD,
            Message,
            MessageCallback,
            Ping,
            Pong,
            Protocol,
        )

        CODEC = "compiled"
    except ImportError:  # the kernels were built but not the codec
        from ._protocol_py import (
            DEFAULT_MAX_MESSAGE_SIZE,
            FRAGMENT_OVERHEAD,
            Message,
            MessageCallback,
            Ping,
            Pong,
            Protocol,
        )

        CODEC = "python"
else:
    from ._protocol_py import (
        DEFAULT_MAX_MESSAGE_SIZE,
        FRAGMENT_OVERHEAD,
        Message,
        MessageCallback,
        Ping,
        Pong,
        Protocol,
    )

    CODEC = "python"
