"""The callback fast path: :class:`Listener`, :func:`serve_listener`, :func:`connect_listener`.

A :class:`Listener` gets each message as a call, ``on_message(conn, kind, payload)``,
with no queue, no future, no event object and no task per message: the parser hands
each message over as it parses it (:attr:`Protocol.message_sink`), inside the socket
read that brought it, and what the callbacks send during that read is written in one
go at its end. ``payload`` is borrowed: a ``memoryview`` of the receive buffer,
unmasked in place, valid during the call only. A connection holds no task at all
(without ``process_request``/``process_response`` hooks, not even for the handshake).
``conn`` is a :class:`ListenerConnection`, whose ``send``, ``ping`` and ``close`` are
plain calls that queue on the transport.

The connection underneath is the one :func:`~blazews.serve` and
:func:`~blazews.connect` use: same protocol core, same opening handshake
(``process_request``, ``process_response``, subprotocols, extensions), same limits,
timeouts and keepalive pings, same closing handshake.

An echo server::

    class Echo(blazews.Listener):
        def on_message(self, conn, kind, payload):
            conn.send(payload, kind)

    async with blazews.serve_listener(Echo, "127.0.0.1", 8765) as server:
        await server.serve_forever()

Flow control: a peer that reads slower than we send makes the transport's write buffer
grow past ``write_limit``; :attr:`ListenerConnection.is_writing_paused` then turns
true, and :meth:`Listener.on_writable` is called once it has drained below the low-water
mark. A listener that produces much should check the former after sending and wait for
the latter. Messages keep arriving meanwhile: nothing pauses reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ..buffers import _MASK_PIECE
from ..options import ClientKeywords, ClientOptions, ServerKeywords, ServerOptions
from ..sansio.client import ClientProtocol
from ..sansio.door import NO_PARAMS, Router
from ..sansio.frames import MessageType
from ..sansio.http11 import Headers, Request, Response
from ..sansio.protocol import (
    Message,
    MessageCallback,
    Ping,
    Pong,
    Protocol,
    State,
)
from ..sansio.server import ServerProtocol
from ._receive import SendHandle
from .base import BaseConnection
from .client import _ClientRole, connect
from .server import ServerConnection, _ServerRole, serve

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Listener", "ListenerConnection", "connect_listener", "serve_listener"]

logger = logging.getLogger("blazews")

_TYPES = (None, MessageType.TEXT, MessageType.BINARY)

L = TypeVar("L", bound="Listener")

# What the Listener entry points refuse: their connections deliver each message as it
# is parsed, with no queue.
_NO_QUEUE = {"max_queue": "a Listener has no queue"}


class Listener:
    """Receives a connection's events as calls; subclass it and override what you need.

    One instance serves one connection: :func:`serve_listener` and
    :func:`connect_listener` call the factory they are given (the class itself,
    typically) once per connection, when its opening handshake has succeeded. Every
    method runs in the event loop and must not block; none may be a coroutine (start a
    task for work that awaits). An exception out of a callback is logged and closes
    the connection with 1011 (internal error); the listener then gets no more calls
    but :meth:`on_close`. ``on_message`` is looked up once, right after
    :meth:`on_connect` returns (replacing it on the instance later has no effect).
    """

    def on_connect(self, conn: ListenerConnection) -> None:
        """The opening handshake succeeded; called before any other method.

        Args:
            conn: The connection: keep it to send outside the callbacks.
        """

    def on_message(self, conn: ListenerConnection, kind: MessageType, payload: memoryview) -> None:
        """A message arrived.

        Args:
            conn: The connection.
            kind: :attr:`MessageType.TEXT` (the payload is valid UTF-8, checked) or
                :attr:`MessageType.BINARY`.
            payload: The message, unmasked, borrowed from the receive buffer.

        Warning:
            ``payload`` is valid only during this call. It is a view of the
            connection's receive buffer, which the next read overwrites: it is
            released when the call returns, and using it afterwards raises
            ``ValueError``. To keep the message, copy it: ``bytes(payload)`` (or
            ``payload.tobytes()``, or into a buffer of your own). Views or arrays
            made from it (``payload[4:]``, ``numpy.frombuffer(payload)``) are not
            released: they stay usable but read whatever this connection receives
            next there (a buffer still exported is never given to another
            connection). ``conn.send(payload)`` is safe: it copies what it must.
        """

    def on_ping(self, conn: ListenerConnection, payload: bytes) -> None:
        """A ping arrived; the pong that answers it is already queued."""

    def on_pong(self, conn: ListenerConnection, payload: bytes) -> None:
        """A pong arrived (the futures of :meth:`ListenerConnection.ping` resolve first)."""

    def on_writable(self, conn: ListenerConnection) -> None:
        """The write buffer drained below its low-water mark after a pause.

        See :attr:`ListenerConnection.is_writing_paused`.
        """

    def on_close(self, conn: ListenerConnection, code: int, reason: str) -> None:
        """The TCP connection closed; called once, last, if :meth:`on_connect` was.

        Args:
            conn: The connection, closed.
            code: The close code received (1005 for a close frame without one); 1006
                if the connection closed without a close frame.
            reason: The close reason received, or ``""``.
        """


class ListenerConnection(SendHandle):
    """The connection a :class:`Listener` is given: send, ping, close, inspect.

    Not built directly. Every method is a plain call: ``send`` and ``ping`` queue on
    the transport and return at once.
    """

    # _conn and _protocol, and send, are SendHandle's (compiled, with the read path).
    __slots__ = ()

    if TYPE_CHECKING:
        _conn: _ListenerSide

    def ping(self, data: bytes | str | None = None) -> asyncio.Future[float]:
        """Send a ping; return a future of the round-trip time in seconds.

        Awaiting the future is optional. A pong answers its ping and every earlier
        one (RFC 6455 §5.5.3).

        Args:
            data: The payload (at most 125 bytes); four random bytes if ``None``.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            ConcurrencyError: A ping with the same payload is waiting for its pong.
        """
        return self._conn._send_ping(data)

    def close(self, code: int = 1000, reason: str = "") -> asyncio.Future[None]:
        """Start the closing handshake; return a future done once the TCP connection is.

        Awaiting the future is optional. The peer has ``close_timeout`` to answer,
        then the connection is dropped. On a closed or closing connection, only
        returns the future.

        Args:
            code: The close code (1000-1003, 1007-1014 or 3000-4999).
            reason: At most 123 bytes in UTF-8.

        Raises:
            ValueError: The code may not be sent, or the reason is too long.
        """
        conn = self._conn
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            conn._process()
        return asyncio.shield(conn._closed_future())

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await self._conn.wait_closed()

    def pause_reading(self) -> None:
        """Stop reading from the peer until :meth:`resume_reading`.

        For a listener that cannot keep up (work queued elsewhere): TCP then pushes
        back on the peer. Reading also stops on its own while the write buffer is
        above ``write_limit`` (a peer that does not read what it is sent), and
        resumes when it drains, unless paused here.
        """
        self._conn._reading_held = True
        self._conn._apply_reading()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading` (unless the write buffer is full)."""
        self._conn._reading_held = False
        self._conn._apply_reading()

    @property
    def is_writing_paused(self) -> bool:
        """Whether the write buffer is above its high-water mark (``write_limit``).

        Sending still works (the data is buffered), but a listener that produces
        much should stop until :meth:`Listener.on_writable`.
        """
        return self._rx._writing_paused

    @property
    def protocol(self) -> Protocol:
        """The sans-I/O protocol object underneath."""
        return self._protocol

    @property
    def state(self) -> State:
        """The connection's :class:`~blazews.State`."""
        return self._protocol.state

    @property
    def close_code(self) -> int | None:
        """As :attr:`blazews.Connection.close_code`."""
        return self._conn.close_code

    @property
    def close_reason(self) -> str | None:
        """As :attr:`blazews.Connection.close_reason`."""
        return self._conn.close_reason

    @property
    def latency(self) -> float:
        """The round-trip time of the last answered ping, in seconds (0 before)."""
        return self._conn.latency

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return self._conn.subprotocol

    @property
    def request(self) -> Request | None:
        """The opening handshake request."""
        return self._conn.request

    @property
    def username(self) -> str | None:
        """The user name the client authenticated with (a server's ``basic_auth``
        option), else ``None``."""
        return getattr(self._conn, "username", None)

    @property
    def path_params(self) -> Mapping[str, str]:
        """The parameters of the route that matched the request path (a server
        serving a :class:`~blazews.Router`); empty otherwise."""
        params: Mapping[str, str] = getattr(self._conn, "path_params", NO_PARAMS)
        return params

    @property
    def response(self) -> Response | None:
        """The opening handshake response."""
        return self._conn.response

    @property
    def request_headers(self) -> Headers | None:
        """The opening request's headers."""
        return self._conn.request_headers

    @property
    def response_headers(self) -> Headers | None:
        """The opening response's headers."""
        return self._conn.response_headers

    @property
    def local_address(self) -> Any:
        """The local socket address."""
        return self._conn.local_address

    @property
    def remote_address(self) -> Any:
        """The peer's socket address."""
        return self._conn.remote_address

    @property
    def transport(self) -> asyncio.Transport | None:
        """The asyncio transport."""
        return self._conn.transport

    def __repr__(self) -> str:
        return f"<ListenerConnection {self.state.name} {self.remote_address}>"


class _ListenerSide(BaseConnection):
    """A connection that delivers its events to a :class:`Listener`.

    Mixed in before a role (the server's or the client's handshake): keepalive and
    closing are the base connection's; each message goes to the listener as it is
    parsed, its payload borrowed, with no queue.
    """

    # Its attributes are slots of the concrete classes below (two bases that both
    # added slots could not be combined); this mixin adds none itself.
    __slots__ = ()

    _borrow = True
    _listener_factory: Callable[[], Listener]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listener: Listener | None = None
        self.handle = ListenerConnection(self)
        self._connected = False
        self._failed = False
        self._reading_held = False  # the listener paused reading

    def _connect_listener(self) -> None:
        """Make the listener and call ``on_connect``, once the handshake succeeded."""
        response = self.response
        if (
            self._connected
            or response is None
            or response.status_code != 101
            or getattr(self.protocol, "handshake_exc", None) is not None
        ):
            return
        self._connected = True
        try:
            listener = self.listener = self._listener_factory()
            listener.on_connect(self.handle)
        except Exception:
            self._callback_failed("on_connect")
            return
        # From now on the core hands each message straight to on_message as it parses
        # it, through compiled code: no event object, no Python frame of ours, and
        # each borrowed view is freed before the next one is made (a batch of views
        # alive at once would also wake the garbage collector).
        self.protocol.message_sink = MessageCallback(
            listener.on_message, self.handle, _TYPES, self._on_message_failed
        )

    def _on_message_failed(self) -> None:
        self._callback_failed("on_message")

    @property
    def buffer_updated(self) -> Callable[[int], None]:
        """The read path of a connection that lends each payload to a callback
        (``ReadPath._lend_read``, compiled): no read_message_into to wait in, no
        queue to lend views to."""
        return self._rx._lend_read

    def _callback_failed(self, name: str) -> None:
        # A listener that raised gets nothing more but on_close.
        self._failed = True
        self.protocol.message_sink = None
        self.logger.exception("listener %s failed", name)
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1011, "internal error")

    def _dispatch(self, events: list[Any]) -> None:
        # The events the core did not hand to the message sink: the handshake's, pings
        # and pongs, and messages that came after one of those in the same read.
        if not self._connected:
            self._connect_listener()
        handle = self.handle
        rx = self._rx
        batching = rx._batching
        rx._batching = True
        try:
            for event in events:
                kind = type(event)
                if kind is Message:
                    # Through the listener's sink, as the core would have: none once
                    # the listener failed (or before it exists): then only release.
                    sink = self.protocol.message_sink
                    if type(sink) is MessageCallback:
                        sink.deliver(event.type, event.data)
                    elif type(event.data) is memoryview:
                        event.data.release()
                elif kind is Ping:
                    if self.listener is not None and not self._failed:
                        try:
                            self.listener.on_ping(handle, event.data)
                        except Exception:
                            self._callback_failed("on_ping")
                elif kind is Pong:
                    self._pong(event.data)
                    if self.listener is not None and not self._failed:
                        try:
                            self.listener.on_pong(handle, event.data)
                        except Exception:
                            self._callback_failed("on_pong")
                else:
                    self._other_event(event)
                    if not self._connected:
                        self._connect_listener()
        finally:
            rx._batching = batching
            if not batching:
                rx._flush()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._apply_reading()  # no more reads to answer while the peer does not read

    def _apply_reading(self) -> None:
        """Read while neither the write buffer (above ``write_limit``) nor the listener
        (:meth:`ListenerConnection.pause_reading`) says to stop."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._draining:
            return
        if self._rx._writing_paused or self._reading_held:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._apply_reading()
        listener = self.listener
        if listener is not None and self._connected and not self._rx._writing_paused:
            try:
                listener.on_writable(self.handle)
            except Exception:
                self._callback_failed("on_writable")
                self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        listener = self.listener
        if listener is not None and self._connected:
            self._connected = False
            try:
                listener.on_close(self.handle, self.close_code or 1006, self.close_reason or "")
            except Exception:
                self.logger.exception("listener on_close failed")


_LISTENER_SLOTS = (
    "_connected",
    "_failed",
    "_listener_factory",
    "_reading_held",
    "handle",
    "listener",
)


class _ServerListenerConnection(_ListenerSide, _ServerRole):
    __slots__ = (*_LISTENER_SLOTS, "_open_timer", "_task", "path_params", "server", "username")

    def _route(self, target: Any) -> None:
        self._listener_factory = target

    def _opened(self) -> None:
        # The listener's callbacks do the work: no handler task to keep per connection.
        self._connect_listener()


class _ClientListenerConnection(_ListenerSide, _ClientRole):
    __slots__ = (*_LISTENER_SLOTS, "_handshake_done")

    # send returns at once: a payload masked later must not change after it.
    _kept_from = _MASK_PIECE + 1


async def _run_listener(conn: ServerConnection) -> None:  # pragma: no cover
    """The handler :func:`serve_listener` gives :func:`serve`; never called, since a
    listener connection runs no handler (see ``_ServerListenerConnection._opened``)."""
    raise AssertionError("a listener connection runs no handler")


def _unrouted_listener() -> Listener:  # pragma: no cover
    """The factory of a routed server: never called, each connection has its route's."""
    raise AssertionError("a routed connection uses its route's factory")


class serve_listener(serve):  # noqa: N801 (a function to its callers: await it or use async with)
    """Start a server whose connections deliver their events to :class:`Listener` objects.

    ``server = await serve_listener(...)`` or ``async with serve_listener(...)``; the
    :class:`~blazews.Server` is that of :func:`~blazews.serve`. Its ``connections``
    are the connections underneath, not the :class:`ListenerConnection` handles.

    Args:
        factory: Called with no argument for each connection whose handshake
            succeeded; returns its :class:`Listener` (pass the class itself). Or a
            :class:`~blazews.Router` of factories by path: an unknown path gets 404,
            a matched route's parameters are ``conn.path_params``.
        host, port, options, **keywords: As for :func:`blazews.serve`, but for
            ``max_queue``: there is no queue.
    """

    def __init__(
        self,
        factory: Callable[[], Listener] | Router[Callable[[], Listener]],
        host: str | None = None,
        port: int | None = None,
        *,
        options: ServerOptions | None = None,
        **keywords: Unpack[ServerKeywords],
    ) -> None:
        options = ServerOptions.of("serve_listener", options, keywords, _NO_QUEUE)
        if isinstance(factory, Router):
            self._setup(factory, host, port, options)
            self.listener_factory: Callable[[], Listener] = _unrouted_listener
        else:
            self._setup(_run_listener, host, port, options)
            self.listener_factory = factory

    def _factory(self) -> _ServerRole:
        conn = _ServerListenerConnection(
            ServerProtocol(**self.protocol_options), self.server, self.options
        )
        conn._listener_factory = self.listener_factory
        return conn


class _ListenerConnect(connect):
    listener_factory: Callable[[], Listener]
    _refused = _NO_QUEUE

    def _connection(self, protocol: ClientProtocol) -> _ClientRole:
        conn = _ClientListenerConnection(protocol, self.options)
        conn._listener_factory = self.listener_factory
        return conn


class connect_listener(Generic[L]):  # noqa: N801 (a function to its callers: await it or use async with)
    """Open a connection whose events go to a :class:`Listener`.

    ``conn, listener = await connect_listener(...)``, or ``async with
    connect_listener(...) as (conn, listener)``, which closes the connection on exit.
    ``listener.on_connect(conn)`` has run by then.

    ``async for conn, listener in connect_listener(...)`` reconnects: each pair is a new
    connection with a new listener; once the loop's body is done (it sets things up,
    e.g. sends a subscription, and returns), the next iteration waits until the
    connection is lost, then reconnects with the backoff and the retry rules of
    :func:`blazews.connect`'s ``async for`` (``reconnect_*`` and ``process_exception``
    options). A normal close (1000) the server started ends the loop.

    Args:
        factory: Called with no argument once the handshake succeeded; returns the
            :class:`Listener` (pass the class itself).
        uri, options, **keywords: As for :func:`blazews.connect`, but for
            ``max_queue``: there is no queue.

    Raises:
        InvalidURI: The URL is not a WebSocket URL.
        InvalidHandshake: The server refused or botched the handshake.
        TimeoutError: ``open_timeout`` elapsed.
        OSError: The TCP connection failed.
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
    """

    def __init__(
        self,
        factory: Callable[[], L],
        uri: str,
        *,
        options: ClientOptions | None = None,
        **keywords: Unpack[ClientKeywords],
    ) -> None:
        options = ClientOptions.of("connect_listener", options, keywords, _NO_QUEUE)
        self._connect = _ListenerConnect(uri, options=options)
        self._connect.listener_factory = factory

    async def _create(self) -> tuple[ListenerConnection, L]:
        conn = cast(_ClientListenerConnection, await self._connect._create())
        return conn.handle, cast(L, conn.listener)

    def __await__(self) -> Generator[Any, None, tuple[ListenerConnection, L]]:
        return self._create().__await__()

    async def __aiter__(self) -> AsyncIterator[tuple[ListenerConnection, L]]:
        async for conn in self._connect._reconnecting(wait=True):
            listener_conn = cast(_ClientListenerConnection, conn)
            yield listener_conn.handle, cast(L, listener_conn.listener)

    async def __aenter__(self) -> tuple[ListenerConnection, L]:
        return await self._create()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._connect.connection
        if conn is not None:
            await conn.close()
