"""What every asyncio connection shares: the transport, the core's glue, closing.

:class:`BaseConnection` is the :class:`asyncio.BufferedProtocol` a transport calls.
It owns its read path (``_rx``, a :class:`~blazews.asyncio._receive.ReceiveBuffer`:
the receive buffer, the transport, what waits to be written, and, compiled, the
common case of every read and write: :mod:`._readpath_py`); its ``get_buffer`` goes
straight there. It answers pings, keeps the connection alive and closes it; it
has no message API. What happens to received messages is its subclasses' business
(``buffer_updated`` and ``_dispatch``): :class:`~blazews.asyncio.Connection` queues
them for ``recv`` and ``async for``; a Listener connection
(:mod:`blazews.asyncio.listener`) hands each to its listener's callbacks as it is
parsed. The roles (:mod:`.server`, :mod:`.client`) add the opening handshake.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, cast

from .._inspect import ConnectionInfo
from .._logging import debug_tracers, next_id
from ..exceptions import ConcurrencyError
from ..options import ConnectionOptions
from ..sansio.http11 import Request, Response
from ..sansio.protocol import Protocol, State
from ._keepalive import Keepalive, keepalive_for
from ._receive import ReceiveBuffer
from ._trace import TracedProtocol, TracedTransport

__all__ = ["BaseConnection"]

logger = logging.getLogger("blazews")

_DEFAULTS = ConnectionOptions()


class BaseConnection(ConnectionInfo, asyncio.BufferedProtocol):
    """An asyncio connection without a message API: see :class:`~blazews.Connection`.

    Built with ``__slots__`` (its attributes cost no per-instance dictionary, ~1.4 KiB
    saved on every idle connection); an application's own attributes still work
    (``conn.user = ...``): a dictionary is made for them on first use.
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_close_timer",
        "_closed",
        "_draining",
        "_ka_ping",
        "_ka_token",
        "_lost",
        "_pings",
        "_rx",
        "id",
        "latency",
        "loop",
        "options",
        "protocol",
        "request",
        "response",
    )

    def __init__(self, protocol: Protocol, options: ConnectionOptions = _DEFAULTS) -> None:
        self.protocol = protocol
        self.loop = loop = asyncio.get_running_loop()
        # The read path: the receive buffer, the transport, what waits to be written.
        self._rx = ReceiveBuffer(self, protocol, loop, options.max_write_buffer or 0)
        self.options = options  # shared by every connection of a server or client call
        self.id = next_id()  # in its log records
        self.request: Request | None = None
        self.response: Response | None = None
        self.latency = 0.0
        # Pings waiting for their pong: a future each, none for a keepalive ping. No
        # dictionary while none waits (most of an idle connection's life).
        self._pings: dict[bytes, tuple[asyncio.Future[float] | None, float]] | None = None
        # The TCP connection is gone (connection_lost ran); the future that says so is
        # made only for someone who waits for it (_closed_future): ~150 B an idle
        # connection does not hold.
        self._lost = False
        self._closed: asyncio.Future[None] | None = None
        self._ka_token = 0  # this connection's place in the loop's Keepalive
        self._ka_ping: bytes | None = None  # the keepalive ping waiting for its pong
        self._close_timer: asyncio.TimerHandle | None = None
        self._draining = False  # our FIN is sent: reading to the peer's (see _closing)

    # Whether the core lends single-frame payloads as views of the receive buffer;
    # only front ends that are done with them when dispatching returns may set it.
    _borrow = False

    # Whether a large payload (64 KiB or more still to come) is read by the loop
    # straight into the bytes object it becomes, then queued (the coroutine API).
    _direct_queue = False

    # The payload size from which what send is given goes to the transport as itself
    # (so it is copied first unless it is bytes; see _send.stable): 0, never. A
    # server's large payloads go beside their header; a client's large ones are
    # masked from the caller's buffer while send waits.
    _kept_from = 0

    @property
    def transport(self) -> asyncio.Transport | None:
        """The transport, once connected (its read path's)."""
        return self._rx.transport

    @transport.setter
    def transport(self, transport: asyncio.Transport | None) -> None:
        self._rx.transport = transport

    # -- asyncio.Protocol -------------------------------------------------------------

    # What the transport calls on a read are the read path's own methods: uvloop
    # takes them once, when the protocol is set, and calls them with nothing of the
    # connection's in between (the default loop looks them up on each read).
    @property
    def get_buffer(self) -> Callable[[int], memoryview]:
        """The read path's ``get_buffer``: where the loop reads next."""
        return self._rx.get_buffer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        limit = self.options.write_limit
        high, low = (limit, None) if isinstance(limit, int) else limit
        self.transport.set_write_buffer_limits(high, low)
        self._rx._watch_socket(transport)
        tracers = debug_tracers(self.options.logger, self.protocol.side, self.id)
        if tracers is not None:  # DEBUG logging: see blazews._logging
            transport.set_protocol(TracedProtocol(self, tracers[0]))
            self.transport = cast(asyncio.Transport, TracedTransport(self.transport, tracers[1]))

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        rx = self._rx
        rx._direct = None
        self.protocol.receive_eof()
        rx._process()
        rx._lost()
        if self._ka_token:
            keepalive_for(self.loop).cancel(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._lost = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        for pong, _ in (self._pings or {}).values():
            if pong is not None and not pong.done():
                pong.set_exception(self.protocol.close_exc())
                pong.exception()  # nobody may be waiting: mark it retrieved
        self._pings = None

    def pause_writing(self) -> None:
        self._rx._writing_paused = True

    def resume_writing(self) -> None:
        rx = self._rx
        rx._writing_paused = False
        if rx._out is not None:
            rx._pump()
        self._drained()

    def _drained(self) -> None:
        """Writing may go on: the transport resumed, or the outbox was written out.
        The coroutine API wakes the sends waiting for it."""

    def _dispatch(self, events: list[Any]) -> None:
        """Take the events of a read that no message sink took (the read path's
        ``_process`` hands them over): the subclass's business."""
        raise NotImplementedError

    # -- core glue -------------------------------------------------------------------

    def _process(self) -> None:
        """Write what the core produced, dispatch its events, close when it says so
        (the read path's ``_process``)."""
        self._rx._process()

    def _flush(self) -> None:
        """Write what the core produced (the read path's ``_flush``)."""
        self._rx._flush()

    def _other_event(self, event: Any) -> None:
        """Handle a handshake event; the client and server subclasses override it."""

    def _closing(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._draining:
            return
        if self.protocol.close_transport():
            if self._rx._out is not None:
                # The close frame waits in the outbox: _pump comes back here once it
                # is written, and a peer that stops reading gets close_timeout.
                self._abort_later(transport)
                return
            self._shut_down(transport)
        else:  # a client waits for the server to close the TCP connection, within bounds
            self._abort_later(transport)

    def _check_write_cap(self) -> None:
        """A send left data buffered while writing is paused: past ``max_write_buffer``
        (a peer that does not read, a sender that does not wait), fail with 1008."""
        transport = self.transport
        if (
            transport is not None
            and self.protocol.state is State.OPEN
            and transport.get_write_buffer_size() > self._rx._write_cap
        ):
            self.logger.info("write buffer over max_write_buffer; closing the connection")
            self.protocol.fail(1008, "write buffer over max_write_buffer: the peer does not read")
            self._process()

    def _shut_down(self, transport: asyncio.Transport) -> None:
        """Close the TCP connection without a reset.

        Closing a socket that still has unread bytes makes the kernel send RST, and a
        peer whose stack then drops what it had not read yet never sees the close
        frame. So on plain TCP the connection half-closes (FIN after the close frame),
        reads and discards (the core parses nothing more) until the peer's FIN or
        ``close_timeout``, and only then closes. TLS transports cannot half-close:
        they close at once, as before.
        """
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        try:
            half_close = transport.can_write_eof()
        except NotImplementedError:  # (a transport that does not say: as if it cannot)
            half_close = False
        if half_close:
            self._draining = True
            transport.write_eof()
            transport.resume_reading()  # (a full queue may have paused it)
        else:
            transport.close()
        self._abort_later(transport)

    def _abort_later(self, transport: asyncio.Transport) -> None:
        """Drop the connection ``close_timeout`` from now, unless it is gone by then.

        ``transport.close()`` waits for the write buffer to go out: a peer that reads
        nothing would keep a closing connection, and what is buffered for it, for
        ever. So every way a connection closes ends with this bound.
        """
        timeout = self.options.close_timeout
        if timeout is not None and self._close_timer is None:
            self._close_timer = self.loop.call_later(timeout, transport.abort)

    # -- pings and keepalive -----------------------------------------------------------

    def _send_ping(self, data: bytes | str | None) -> asyncio.Future[float]:
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._ping(data, waiter)
        return waiter

    def _ping(self, data: bytes | str | None, waiter: asyncio.Future[float] | None) -> bytes:
        """Send a ping (a random payload if ``data`` is None) that ``waiter`` waits
        for (None: the keepalive's); return its payload."""
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        if data is None:
            payload = os.urandom(4)
            while payload in pings:
                payload = os.urandom(4)
        else:
            payload = data.encode() if isinstance(data, str) else bytes(data)
            if payload in pings:
                raise ConcurrencyError("a ping with the same payload is already waiting")
        self.protocol.send_ping(payload)
        pings[payload] = (waiter, time.monotonic())
        self._process()
        return payload

    def _pong(self, data: bytes) -> None:
        pings = self._pings
        if pings is None or data not in pings:
            return
        now = time.monotonic()
        for payload in list(pings):  # a pong answers its ping and every earlier one
            waiter, sent = pings.pop(payload)
            if waiter is None:  # the keepalive ping
                self._ka_ping = None
                options = self.options
                if options.ping_timeout is not None and self.protocol.state is State.OPEN:
                    assert options.ping_interval is not None
                    keepalive_for(self.loop).schedule(self, options.ping_interval)
            elif not waiter.done():
                waiter.set_result(now - sent)
            if payload == data:
                self.latency = now - sent
                break
        if not pings:
            self._pings = None

    def _start_keepalive(self) -> None:
        """Ping every ``ping_interval``, on the loop's one keepalive timer."""
        if self.options.ping_interval is not None:
            keepalive_for(self.loop).schedule(self, self.options.ping_interval)

    def _keepalive_due(self, wheel: Keepalive) -> None:
        """Called by the loop's :class:`~blazews.asyncio._keepalive.Keepalive` when a
        ping is due, or when the keepalive ping's timeout is over."""
        if self.protocol.state is not State.OPEN:
            return
        options = self.options
        if self._ka_ping is not None and options.ping_timeout is None:
            if self._pings is not None:  # (unanswered, no deadline: forget it)
                self._pings.pop(self._ka_ping, None)
        elif self._ka_ping is not None:  # its pong has not come within ping_timeout
            self.logger.info("keepalive ping timed out; closing the connection")
            self.protocol.fail(1011, "keepalive ping timeout")
            self._process()
            transport = self.transport
            if transport is not None:
                transport.close()  # a peer that stopped answering: no FIN to wait for
                self._abort_later(transport)
            return
        self._ka_ping = self._ping(None, None)
        assert options.ping_interval is not None
        if options.ping_timeout is None:
            wheel.schedule(self, options.ping_interval)  # the next one, pong or not
        else:  # back at the deadline, unless the pong comes first (_pong)
            wheel.schedule(self, options.ping_timeout)

    # -- closing ---------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and wait for the TCP connection to close.

        Waits at most ``close_timeout`` for the peer, then drops the connection.
        Calling it on a closed connection does nothing.
        """
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._process()
        await self._wait_closed_within_timeout()

    async def _wait_closed_within_timeout(self) -> None:
        closed = self._closed_future()
        try:
            await asyncio.wait_for(asyncio.shield(closed), self.options.close_timeout)
        except asyncio.TimeoutError:
            if self.transport is not None:
                self.transport.abort()
            await closed

    def _closed_future(self) -> asyncio.Future[None]:
        """A future done once the TCP connection is closed (made on first use)."""
        closed = self._closed
        if closed is None:
            closed = self._closed = self.loop.create_future()
            if self._lost:
                closed.set_result(None)
        return closed

    def _transport_closed(self) -> bool:
        return self._lost

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        if not self._lost:
            await asyncio.shield(self._closed_future())

    @property
    def local_address(self) -> Any:
        """The local socket address."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's socket address."""
        return None if self.transport is None else self.transport.get_extra_info("peername")
