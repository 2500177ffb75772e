"""The asyncio server: :func:`serve`, :class:`Server` and :class:`ServerConnection`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectionClosedError, ConnectionClosedOK
from ..options import (
    SEND_WAITS,
    MaybeAwaitable,
    ProcessRequest,
    ProcessResponse,
    ServerKeywords,
    ServerOptions,
)
from ..sansio.door import NO_PARAMS, Door, Router
from ..sansio.frames import COALESCE_MAX, Close
from ..sansio.http11 import Request, Response
from ..sansio.protocol import State
from ..sansio.server import ServerProtocol
from .base import BaseConnection
from .connection import Connection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Server", "ServerConnection", "serve"]

logger = logging.getLogger("blazews")

Handler = Callable[["ServerConnection"], Awaitable[None]]


class _ServerRole(BaseConnection):
    """The server's part of a connection: the opening handshake and its hooks, the
    open timeout, the server's bookkeeping. Mixed in before the connection class of
    an API: :class:`ServerConnection` (coroutines) or a Listener connection; their
    concrete classes hold its slots (two bases adding slots could not be combined)."""

    __slots__ = ()

    protocol: ServerProtocol
    server: Server
    username: str | None
    path_params: Mapping[str, str]
    _open_timer: asyncio.TimerHandle | None
    _task: asyncio.Task[None] | None

    _kept_from = COALESCE_MAX + 1  # (see BaseConnection)

    def __init__(self, protocol: ServerProtocol, server: Server, options: ServerOptions) -> None:
        super().__init__(protocol, options)
        self.server = server
        # What the door found: the user name (basic_auth), the route's parameters.
        self.username: str | None = None
        self.path_params: Mapping[str, str] = NO_PARAMS
        self._open_timer: asyncio.TimerHandle | None = None
        # The task of process_request/process_response while they run, then that of
        # the handler; None when neither runs (no hooks, or a Listener).
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._connections.add(self)
        if self.server.open_timeout is not None:
            self._open_timer = self.loop.call_later(self.server.open_timeout, self._open_expired)

    def _open_expired(self) -> None:
        if self.protocol.state is State.CONNECTING and self.transport is not None:
            self.logger.info("opening handshake timed out")
            self.transport.abort()

    def _other_event(self, event: Any) -> None:
        if isinstance(event, Request) and self.request is None:
            self.request = event
            server = self.server
            door = server.door
            if (
                server.process_request is None
                and server.process_response is None
                and (door is None or not door.may_wait)
            ):
                # Nothing to await: answer on the next turn of the loop, no task.
                self.loop.call_soon(self._open_now, event)
            else:
                self._task = self.loop.create_task(self._open_with_hooks(event))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        task = self._task
        if task is None or task.done():  # else the running task discards it when it ends
            self.server._connections.discard(self)

    def reject(
        self, status: int, body: bytes | str = b"", headers: Sequence[tuple[str, str]] | None = None
    ) -> Response:
        """Build a response that refuses the connection, for ``process_request``."""
        return self.protocol.reject(status, body, headers)

    async def _hook(self, result: MaybeAwaitable) -> Response | None:
        if inspect.isawaitable(result):
            result = await result
        return result

    def _accept(self, request: Request) -> Response:
        try:
            return self.protocol.accept(request)
        except Exception:
            self.logger.exception("accepting the opening handshake failed")
            return self.protocol.reject(500, "Failed to open a WebSocket connection.\n")

    def _open_now(self, request: Request) -> None:
        refusal = None
        door = self.server.door
        if door is not None:
            admission = door.admit(request)
            refusal = door.decide(admission, bool(door.verify(admission)))
            if refusal is None:
                self._admitted(admission.username, admission.path_params, admission.target)
        if self._respond(refusal or self._accept(request)):
            self._opened()

    async def _admit(self, door: Door, request: Request) -> Response | None:
        """Run the door (basic auth, routing); return its refusal, or ``None``."""
        admission = door.admit(request)
        ok = door.verify(admission)
        if inspect.isawaitable(ok):
            ok = await ok
        refusal = door.decide(admission, bool(ok))
        if refusal is None:
            self._admitted(admission.username, admission.path_params, admission.target)
        return refusal

    def _admitted(self, username: str | None, params: Mapping[str, str], target: Any) -> None:
        """The door let the client in: keep who it is and where it goes."""
        self.username = username
        self.path_params = params
        if target is not None:
            self._route(target)

    def _route(self, target: Any) -> None:
        """Serve the connection with its route's handler (or Listener factory)."""
        raise NotImplementedError

    async def _open_with_hooks(self, request: Request) -> None:
        server = self.server
        opened = False
        try:
            try:
                response: Response | None = None
                if server.door is not None:
                    response = await self._admit(server.door, request)
                if response is None and server.process_request is not None:
                    response = await self._hook(server.process_request(self, request))
                if response is None:
                    response = self._accept(request)
                    if server.process_response is not None and response.status_code == 101:
                        replaced = await self._hook(
                            server.process_response(self, request, response)
                        )
                        if replaced is not None:
                            response = replaced
            except Exception:
                self.logger.exception("process_request or process_response failed")
                response = self.protocol.reject(500, "Failed to open a WebSocket connection.\n")
            opened = self._respond(response)
        finally:
            if self._task is asyncio.current_task():
                self._task = None  # this task ends here; the handler, if any, has its own
            if opened:
                self._opened()
            elif self._task is None:
                server._connections.discard(self)

    def _respond(self, response: Response) -> bool:
        """Send the handshake response; return whether the connection is now open."""
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        if self.transport is None or self.transport.is_closing():
            self.server._connections.discard(self)
            return False
        self.response = response
        self.protocol.send_response(response)
        self._process()
        if response.status_code != 101:
            return False
        self._start_keepalive()
        return True

    def _opened(self) -> None:
        """The handshake succeeded: the API's class takes over."""
        raise NotImplementedError


class ServerConnection(_ServerRole, Connection):
    """The server end of a connection; see :class:`Connection` for its API.

    Attributes:
        server: The :class:`Server` it belongs to.
        username: The user name the client authenticated with (the ``basic_auth``
            option), else ``None``.
        path_params: The parameters of the route that matched the request path
            (serving a :class:`~blazews.Router`): ``{"id": "42"}`` for
            ``/feed/{id}``; empty otherwise.
    """

    __slots__ = ("_handler", "_open_timer", "_task", "path_params", "server", "username")

    def __init__(self, protocol: ServerProtocol, server: Server, options: ServerOptions) -> None:
        super().__init__(protocol, server, options)
        self._handler = server.handler

    def _route(self, target: Any) -> None:
        self._handler = target

    def _opened(self) -> None:
        """The handshake succeeded: run the handler in its task.

        The task runs the handler's coroutine itself, with no wrapping coroutine
        (a frame less on every connection, idle ones included): what follows the
        handler (a log line, the closing handshake) is done by a callback.
        """
        task = self._task = asyncio.ensure_future(self._handler(self), loop=self.loop)
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            if not task.cancelled():
                self._close_after_handler(1000, "")
        elif isinstance(exc, ConnectionClosedOK):  # the peer closed: not the handler's fault
            self.logger.debug("connection handler ended: %s", exc)
        elif isinstance(exc, ConnectionClosedError):
            self.logger.info("connection handler ended: %s", exc)
        else:
            self.logger.error("connection handler failed", exc_info=exc)
            self._close_after_handler(1011, "internal error")
        if self._transport_closed():
            self.server._connections.discard(self)  # (else connection_lost does)

    def _close_after_handler(self, code: int, reason: str) -> None:
        """Start the closing handshake, as :meth:`close` does, without waiting:
        the peer has ``close_timeout`` to answer, then the connection is dropped."""
        if self.protocol.state is not State.OPEN:
            return
        self.protocol.send_close(code, reason)
        self._process()
        if self.transport is not None:
            self._abort_later(self.transport)


class Server:
    """A running WebSocket server, as :func:`serve` returns it."""

    def __init__(
        self,
        handler: Handler,
        *,
        process_request: ProcessRequest | None,
        process_response: ProcessResponse | None,
        open_timeout: float | None,
        door: Door | None = None,
    ) -> None:
        self.handler = handler
        self.process_request = process_request
        self.process_response = process_response
        self.open_timeout = open_timeout
        self.door = door
        self.server: asyncio.Server | None = None
        self._connections: set[_ServerRole] = set()

    @property
    def connections(self) -> set[_ServerRole]:
        """The connections currently open or opening: :class:`ServerConnection`
        objects, or for :func:`~blazews.serve_listener` the connections underneath
        the :class:`~blazews.asyncio.listener.ListenerConnection` handles."""
        return set(self._connections)

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return () if self.server is None else tuple(self.server.sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (handy with ``port=0``)."""
        return int(self.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        """Serve until cancelled or until :meth:`close` is called."""
        assert self.server is not None
        try:
            await self.server.serve_forever()
        except asyncio.CancelledError:
            if self.server.is_serving():
                raise

    def close(
        self,
        close_connections: bool = True,
        *,
        code: int = 1001,
        reason: str = "server shutting down",
    ) -> None:
        """Stop listening, and start closing every open connection, if asked.

        :meth:`wait_closed` then waits until each has closed: within its
        ``close_timeout`` after the close frame, the TCP connection is dropped.

        Args:
            close_connections: Close the open connections (else they go on).
            code: The close code they get: 1001 (going away) by default; 1012 (service
                restart) tells well-behaved clients to reconnect.
            reason: The close reason (at most 123 bytes in UTF-8).

        Raises:
            ValueError: The code may not be sent, or the reason is too long.
        """
        Close.to_send(code, reason)  # (checked before anything is closed)
        if self.server is not None:
            self.server.close()
        if close_connections:
            for conn in list(self._connections):
                if conn.protocol.state is State.OPEN:
                    conn.loop.create_task(conn.close(code, reason))
                elif conn.protocol.state is State.CONNECTING and conn.transport is not None:
                    conn.transport.close()

    async def wait_closed(self) -> None:
        """Wait until the server stopped listening and every connection is closed."""
        tasks = [conn._task for conn in list(self._connections) if conn._task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self._connections):
            await conn.wait_closed()
        if self.server is not None:
            await self.server.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


async def _unrouted(conn: ServerConnection) -> None:  # pragma: no cover
    """The handler of a routed server: never run, each connection has its route's."""
    raise AssertionError("a routed connection runs its route's handler")


class serve:  # noqa: N801 (a function to its callers: await it or use async with)
    """Start a WebSocket server: ``server = await serve(...)`` or ``async with serve(...)``.

    Args:
        handler: Coroutine run for each connection, given its :class:`ServerConnection`;
            when it returns the connection is closed with 1000 (1011 if it raised).
            Or a :class:`~blazews.Router` of such coroutines by path: an unknown path
            gets 404, a matched route's parameters are ``conn.path_params``.
        host: Address to listen on (all interfaces if ``None``).
        port: Port to listen on (``0``: any free port, see :attr:`Server.port`).
        options: A :class:`~blazews.ServerOptions` to start from.
        **keywords: Any option of :class:`~blazews.ServerOptions` (``ssl``,
            ``subprotocols``, ``process_request``, ``ping_interval``,
            ``max_message_size``, ...), which documents each one and its default.
            With ``workers=N`` (N > 1), N forked processes serve the port and the
            server returned is their supervisor, a
            :class:`~blazews.asyncio.workers.WorkerPool`.

    Raises:
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
    """

    def __init__(
        self,
        handler: Handler | Router[Handler],
        host: str | None = None,
        port: int | None = None,
        *,
        options: ServerOptions | None = None,
        **keywords: Unpack[ServerKeywords],
    ) -> None:
        self._setup(handler, host, port, ServerOptions.of("serve", options, keywords, SEND_WAITS))

    def _setup(
        self, handler: Any, host: str | None, port: int | None, options: ServerOptions
    ) -> None:
        self.host, self.port, self.options = host, port, options
        self.handler = handler
        self.server = self._new_server()
        self.protocol_options = options.protocol_options()
        self._pool: Server | None = None  # the supervisor, with workers > 1

    def _new_server(self) -> Server:
        options = self.options
        handler = self.handler
        router = handler if isinstance(handler, Router) else None
        door = None
        if router is not None or options.basic_auth is not None:
            door = Door(options.basic_auth, router)
        return Server(
            _unrouted if router is not None else handler,
            process_request=options.process_request,
            process_response=options.process_response,
            open_timeout=options.open_timeout,
            door=door,
        )

    def _factory(self) -> _ServerRole:
        return ServerConnection(ServerProtocol(**self.protocol_options), self.server, self.options)

    async def _start(self) -> Server:
        if self.options.workers > 1:
            from .workers import WorkerPool

            pool = WorkerPool(self)
            self._pool = pool
            return await pool._start()
        return await self._start_one()

    async def _start_one(self) -> Server:
        loop = asyncio.get_running_loop()
        options = self.options
        where: dict[str, Any] = {"sock": options.sock, "ssl": options.ssl}
        where["backlog"] = options.backlog
        if options.path is not None:
            self.server.server = await loop.create_unix_server(self._factory, options.path, **where)
        else:
            where["reuse_port"] = options.reuse_port
            self.server.server = await loop.create_server(
                self._factory, self.host, self.port, **where
            )
        return self.server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server = self._pool or self.server
        server.close()
        await server.wait_closed()
