"""The protocol core's public face: the compiled or the pure-Python implementation.

The state machine is written once, in ``_protocol_py.py``, and the events it hands
over in ``_events_py.py``. Cython compiles those same files into the extension modules
``_protocol_c`` and ``_events_c`` (see the ``.pxd`` files for the C types they add).
The switch is the one of :mod:`blazews._impl`: ``BLAZEWS_NO_EXTENSIONS=1`` runs the
pure modules; otherwise the compiled ones when they were built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._impl import select
from .states import Side, State

__all__ = [
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
else:
    _core = select("blazews.sansio._protocol")
    # Its events and its sending half are built with it: compiled, or pure.
    _events = select("blazews.sansio._events", compiled=None if _core._COMPILED else False)
    select("blazews.sansio._sending", compiled=None if _core._COMPILED else False)
    DEFAULT_MAX_MESSAGE_SIZE, FRAGMENT_OVERHEAD = (
        _core.DEFAULT_MAX_MESSAGE_SIZE,
        _core.FRAGMENT_OVERHEAD,
    )
    Protocol = _core.Protocol
    Message, MessageCallback, MessageQueue = (
        _events.Message,
        _events.MessageCallback,
        _events.MessageQueue,
    )
    Ping, Pong = _events.Ping, _events.Pong
