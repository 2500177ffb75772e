"""The protocol core's public face: the compiled or the pure-Python implementation.

The state machine is written once, in ``_protocol_py.py``, and the events it hands
over in ``_events_py.py``. Cython compiles those same files into ``_protocol_c`` and
``_events_c`` (see the ``.pxd`` files for the C types they add). The
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
    "MessageQueue",
    "Ping",
    "Pong",
    "Protocol",
    "Side",
    "State",
]

if TYPE_CHECKING:
    from ._events_py import Message, MessageCallback, MessageQueue, Ping, Pong
    from ._protocol_py import DEFAULT_MAX_MESSAGE_SIZE, FRAGMENT_OVERHEAD, Protocol

    CODEC: str
elif IMPLEMENTATION == "compiled":
    try:
        from ._events_c import Message, MessageCallback, MessageQueue, Ping, Pong
        from ._protocol_c import DEFAULT_MAX_MESSAGE_SIZE, FRAGMENT_OVERHEAD, Protocol

        CODEC = "compiled"
    except ImportError:  # the kernels were built but not the codec
        from ._events_py import Message, MessageCallback, MessageQueue, Ping, Pong
        from ._protocol_py import DEFAULT_MAX_MESSAGE_SIZE, FRAGMENT_OVERHEAD, Protocol

        CODEC = "python"
else:
    from ._events_py import Message, MessageCallback, MessageQueue, Ping, Pong
    from ._protocol_py import DEFAULT_MAX_MESSAGE_SIZE, FRAGMENT_OVERHEAD, Protocol

    CODEC = "python"
