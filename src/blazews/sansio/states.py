"""Which end a protocol object plays, and the connection states."""

from __future__ import annotations

import enum

__all__ = ["Side", "State"]


class Side(enum.IntEnum):
    """Which end of the connection this protocol object plays."""

    SERVER = 0
    CLIENT = 1


class State(enum.IntEnum):
    """Connection states of RFC 6455 §4 and §7."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3
