"""The reconnection policy: what retries and how long to wait, for every front end.

``async for conn in blazews.connect(url)``, ``async for conn, listener in
blazews.connect_listener(...)`` and ``for conn in blazews.sync.reconnect(url)`` each
keep one :class:`Reconnect`, which decides after every failed attempt and every lost
connection whether to try again, and after how long; the front end only sleeps and
connects. No I/O here: the clock and the random source are arguments, so tests drive
the backoff with fake ones.

What retries (:func:`default_process_exception`): ``OSError`` (refused, reset,
unreachable...), timeouts, an HTTP 5xx or 429 answer to the handshake (waiting at least
its ``Retry-After``), a proxy's transient failure (5xx, closed, a SOCKS
proxy that could not reach the server), and a connection lost with close code 1001 (going
away: what a restarting server says), 1006 (no close frame), 1011 (internal error), 1012
(service restart), 1013 (try again later) or 1014 (bad gateway). Anything else is raised
at once: another 4xx, an invalid URI, a failed negotiation, a redirect gone wrong, a
server certificate that fails verification. A
connection that ended with a normal close the server started (1000) ends the iteration.

The wait (exponential backoff with full jitter): after the n-th failure in a row
(n = 0, 1, ...), a uniformly random delay in ``[0, min(max_delay, initial_delay *
factor ** n)]``; a ``Retry-After`` raises it to at least that many seconds (up to
``max_delay``). A connection that stayed open ``reset_after`` seconds or more resets n
to 0.
"""

from __future__ import annotations

import calendar
import random
import re
import time
from collections.abc import Callable
from typing import Any

from ..exceptions import ConnectionClosed, ConnectionClosedOK, InvalidProxy, InvalidStatus

__all__ = [
    "RETRY_CLOSE_CODES",
    "ProcessException",
    "Reconnect",
    "default_process_exception",
    "retry_after",
]

RETRY_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes of a lost connection worth reconnecting after."""

ProcessException = Callable[[Exception], Exception | None]
"""``f(exc)`` returns ``None`` to retry, or the exception to raise (``exc`` itself
to stop on it)."""


def retry_after(exc: BaseException, now: float | None = None) -> float | None:
    """The seconds a ``429`` or ``503`` answer asks to wait (``Retry-After``), if any.

    Args:
        exc: The exception of a failed attempt.
        now: The wall-clock time (``time.time()``) an HTTP-date is counted from.

    Returns:
        The delay, at least 0; ``None`` without a valid header.
    """
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    # An HTTP-date (IMF-fixdate, RFC 9110 section 5.6.7); email.utils would parse it
    # but imports socket, which the sans-I/O modules may not.
    match = _HTTP_DATE.fullmatch(value)
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    fields = (int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute))
    try:
        when = calendar.timegm((*fields, int(second), 0, 0, 0))
    except (ValueError, OverflowError):  # pragma: no cover
        return None
    return max(0.0, when - (time.time() if now is None else now))


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_HTTP_DATE = re.compile(
    r"(?:[A-Z][a-z]{2}, )?(\d{1,2}) (" + "|".join(_MONTHS) + r") (\d{4}) "
    r"(\d{2}):(\d{2}):(\d{2}) GMT"
)


def default_process_exception(exc: Exception) -> Exception | None:
    """The default ``process_exception``: ``None`` (retry) for what is worth another
    attempt (see the module's docstring), else ``exc`` (raise it)."""
    if isinstance(exc, InvalidProxy):
        return None if exc.transient else exc
    if isinstance(exc, InvalidStatus):
        return None if exc.status >= 500 or exc.status == 429 else exc
    if isinstance(exc, ConnectionClosed):
        return None if exc.code in RETRY_CLOSE_CODES else exc
    if any(kind.__name__ == "SSLCertVerificationError" for kind in type(exc).__mro__):
        return exc  # a wrong certificate stays wrong (ssl, which imports socket, is not here)
    if isinstance(exc, (OSError, TimeoutError)):
        return None
    return exc


class Reconnect:
    """The state of one reconnecting client: failures in a row and the next delay.

    Args:
        initial_delay: The largest first delay, in seconds.
        max_delay: The largest delay.
        factor: The growth of the delay's bound per failure in a row.
        reset_after: A connection open this long resets the failure count.
        process_exception: Decides what retries (:func:`default_process_exception`).
        clock: A monotonic clock in seconds.
        rand: A random number in ``[0, 1)``.
    """

    def __init__(
        self,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        factor: float = 2.0,
        reset_after: float = 60.0,
        process_exception: ProcessException | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.factor = factor
        self.reset_after = reset_after
        self.process_exception = process_exception or default_process_exception
        self.clock = clock
        self.rand = rand
        self.failures = 0
        self._opened_at: float | None = None

    @classmethod
    def of(cls, options: Any, **kwargs: Any) -> Reconnect:
        """The policy set by a :class:`~blazews.ClientOptions`."""
        return cls(
            options.reconnect_initial_delay,
            options.reconnect_max_delay,
            options.reconnect_factor,
            options.reconnect_reset_after,
            options.process_exception,
            **kwargs,
        )

    def bound(self) -> float:
        """The upper bound of the next delay."""
        try:
            grown = self.initial_delay * self.factor**self.failures
        except OverflowError:
            grown = self.max_delay
        return min(self.max_delay, grown)

    def failed(self, exc: Exception) -> float:
        """An attempt failed, or a connection was lost, with ``exc``.

        Returns:
            The seconds to wait before the next attempt.

        Raises:
            Exception: What ``process_exception`` returned, when it says to stop.
        """
        self._lived()
        decision = self.process_exception(exc)
        if decision is not None:
            raise decision
        delay = self.rand() * self.bound()
        self.failures += 1
        wait = retry_after(exc)
        if wait is not None:
            delay = max(delay, min(wait, self.max_delay))
        return delay

    def opened(self) -> None:
        """A connection opened (its lifetime starts counting)."""
        self._opened_at = self.clock()

    def closed(self, exc: ConnectionClosed, by_us: bool) -> float | None:
        """The connection the last :meth:`opened` counted is closed.

        Args:
            exc: How it closed (``protocol.close_exc()``).
            by_us: Whether our side started the closing (the application closed it, or
                left the loop's body with it open): a reconnection it asked for.

        Returns:
            The seconds to wait before reconnecting, or ``None`` to end the iteration
            (the server closed normally, and ``process_exception`` let it go).

        Raises:
            Exception: What ``process_exception`` returned for the close, but a
                :class:`~blazews.ConnectionClosedOK`.
        """
        if by_us:
            self._lived()
            return self.rand() * self.bound()
        try:
            return self.failed(exc)
        except ConnectionClosedOK:
            return None

    def _lived(self) -> None:
        opened, self._opened_at = self._opened_at, None
        if opened is not None and self.clock() - opened >= self.reset_after:
            self.failures = 0
