"""The loggers of connections: ``blazews.client`` and ``blazews.server``.

Every record a connection logs goes through :class:`ConnectionLog`, which tags it
with the connection's id (``[7] keepalive ping timed out``, and ``record.websocket_id``
for filters and structured formatters). The ``logger`` option replaces the role's
logger (a :class:`logging.Logger` or a :class:`logging.LoggerAdapter`, whose own
context is kept). At ``DEBUG``, a connection also traces the bytes it exchanges
(:mod:`blazews.sansio.trace`): ``< `` what it received, ``> `` what it sent: the
handshake's HTTP lines (credentials masked) and each frame's opcode, flags and length.
Whether to trace is decided once per connection, when it is made: nothing is checked
per read or per frame, and a connection made while ``DEBUG`` was off stays untraced.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import MutableMapping
from typing import Any

from .sansio.protocol import Side
from .sansio.trace import StreamTracer

__all__ = ["CLIENT_LOGGER", "SERVER_LOGGER", "ConnectionLog", "debug_tracers", "next_id"]

CLIENT_LOGGER = logging.getLogger("blazews.client")
SERVER_LOGGER = logging.getLogger("blazews.server")

_ids = itertools.count(1)

LoggerLike = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]


def next_id() -> int:
    """A new connection id: 1, 2, 3... in this process."""
    return next(_ids)


class ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A connection's logger: records are prefixed with ``[id]`` and carry
    ``websocket_id``. Over a :class:`logging.LoggerAdapter`, that adapter's
    ``process`` runs too (its ``extra`` is merged, not lost)."""

    def __init__(self, logger: LoggerLike, connection_id: int) -> None:
        adapters = []
        while isinstance(logger, logging.LoggerAdapter):
            adapters.append(logger)
            logger = logger.logger
        super().__init__(logger, {"websocket_id": connection_id})
        self.adapters = adapters
        self.connection_id = connection_id

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        msg = f"[{self.connection_id}] {msg}"
        extra = dict(kwargs.get("extra") or {})
        for adapter in self.adapters:
            msg, kwargs = adapter.process(msg, kwargs)
            extra.update(kwargs.get("extra") or {})
        extra["websocket_id"] = self.connection_id
        kwargs["extra"] = extra
        return msg, kwargs


def base_logger(logger: LoggerLike | None, side: Side) -> LoggerLike:
    """The ``logger`` option, or the role's logger."""
    if logger is not None:
        return logger
    return CLIENT_LOGGER if side is Side.CLIENT else SERVER_LOGGER


def debug_tracers(
    logger: LoggerLike | None, side: Side, connection_id: int
) -> tuple[StreamTracer, StreamTracer] | None:
    """The tracers of what a connection receives and sends, if its logger is enabled
    for ``DEBUG``; else ``None`` (the usual case: one cached level check)."""
    base = base_logger(logger, side)
    if not base.isEnabledFor(logging.DEBUG):
        return None
    log = ConnectionLog(base, connection_id)
    return (
        StreamTracer(lambda line: log.debug("< %s", line)),
        StreamTracer(lambda line: log.debug("> %s", line)),
    )


def safe_feed(tracer: StreamTracer, data: Any) -> None:
    """Trace ``data``; tracing never breaks a connection (nor logs more than once)."""
    if tracer.report is _silent:
        return
    try:
        tracer.feed(data)
    except Exception:
        logging.getLogger("blazews").exception("debug tracing failed; stopped")
        tracer.report = _silent


def _silent(line: str) -> None:
    """A stopped tracer's report."""
