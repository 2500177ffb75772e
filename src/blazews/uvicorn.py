"""ASGI WebSocket endpoints (FastAPI, Starlette...) on blazews, under uvicorn.

uvicorn loads any WebSocket protocol class named on its command line, so one option
switches an app to blazews, with no change to the app or to uvicorn::

    uvicorn app:app --ws blazews.uvicorn:WebSocketProtocol

or ``uvicorn.Config(app, ws=WebSocketProtocol)`` / ``uvicorn.run(app, ws=...)``.

uvicorn's HTTP protocol parses the request, sees the upgrade, builds this class with
``cls(config=, server_state=, app_state=)``, switches the transport to it and hands
it the request head through ``data_received``. From then on the connection is a
blazews :class:`~blazews.asyncio.Connection`: the event loop reads into its pooled
receive buffer, the compiled read path parses every frame in place, all messages of
one read are queued in one go and the application's task is woken once; ``send``
builds its frame in the core and writes it at once. There is no task per message:
one per connection, the application's.

uvicorn's options map to blazews' limits (see :func:`options_for`): ``--ws-max-size``
is ``max_message_size`` (1009 beyond it), ``--ws-max-queue`` is ``max_queue``
(reading pauses while that many messages wait for the application),
``--ws-ping-interval`` / ``--ws-ping-timeout`` the keepalive (1011 on a missing
pong), ``--ws-per-message-deflate`` turns permessage-deflate on or off (blazews'
memory-lean default policy). ``--root-path``, ``--proxy-headers``, the access log
and the ``Server``/``Date`` headers behave as with uvicorn's own classes.

Importing this module without uvicorn installed raises :class:`ImportError`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

try:
    from uvicorn.config import Config
    from uvicorn.logging import TRACE_LOG_LEVEL
    from uvicorn.protocols.utils import (
        ClientDisconnected,
        get_client_addr,
        get_local_addr,
        get_path_with_query_string,
        get_remote_addr,
        is_ssl,
    )
    from uvicorn.server import ServerState
except ImportError as exc:  # pragma: no cover (uvicorn is in the test extras)
    raise ImportError(
        "blazews.uvicorn needs uvicorn, which is not installed: pip install uvicorn"
    ) from exc

from .asyncio._keepalive import Keepalive, keepalive_for
from .asyncio._receive import _done_with, completed
from .asyncio._receive import write_soon as _write_soon
from .asyncio.connection import Connection, _raise
from .exceptions import ConnectionClosed
from .options import ServerOptions
from .sansio.extensions import ServerExtensionFactory
from .sansio.frames import COALESCE_MAX
from .sansio.handshake import parse_subprotocol_header
from .sansio.http11 import Headers, Request, Response
from .sansio.protocol import Message, State
from .sansio.server import ServerProtocol

__all__ = ["WebSocketProtocol", "options_for"]

logger = logging.getLogger("uvicorn.error")

_CONNECTING, _ACCEPTED, _DENYING, _RESPONDED = 0, 1, 2, 3  # where the handshake is

# The ASGI scope's headers, as (lowercase name, value) latin-1 pairs: pairs most
# requests repeat (Upgrade, Connection, the version, the Host) are encoded once and
# shared by every connection's scope (tuples of bytes are immutable): ~0.6 KiB less
# per idle connection. The caches stop growing at _SHARED entries, so a client
# sending made-up headers cannot grow them; a key is never kept (unique by design).
_SHARED = 256
_NAMES: dict[str, bytes] = {}
_PAIRS: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def _header(name: str, value: str) -> tuple[bytes, bytes]:
    """The ASGI form of one request header."""
    key = (name, value)
    pair = _PAIRS.get(key)
    if pair is not None:
        return pair
    raw = _NAMES.get(name)
    if raw is None:
        raw = name.lower().encode("latin-1")
        if len(_NAMES) < _SHARED:
            _NAMES[name] = raw
    pair = (raw, value.encode("latin-1"))
    if len(value) <= 64 and len(_PAIRS) < _SHARED and raw != b"sec-websocket-key":
        _PAIRS[key] = pair
    return pair


_Known = tuple[ServerOptions, dict[str, Any]]
_OPTIONS: weakref.WeakKeyDictionary[Config, dict[type, _Known]] = weakref.WeakKeyDictionary()


def options_for(config: Config, cls: type[WebSocketProtocol] | None = None) -> ServerOptions:
    """The blazews options a uvicorn ``Config`` stands for.

    ``ws_max_size`` -> ``max_message_size``, ``ws_max_queue`` -> ``max_queue``,
    ``ws_ping_interval`` -> ``ping_interval`` (0 or ``None``: no keepalive),
    ``ws_ping_timeout`` -> ``ping_timeout``, ``ws_per_message_deflate`` ->
    ``compression`` (``"deflate"`` or ``None``), with the extension factories of
    ``cls.extensions`` if it has some. The rest are blazews' defaults.
    """
    return _options(config, cls or WebSocketProtocol)[0]


def _options(config: Config, cls: type[WebSocketProtocol]) -> _Known:
    per_class = _OPTIONS.get(config)
    if per_class is None:
        per_class = _OPTIONS[config] = {}
    known = per_class.get(cls)
    if known is None:
        interval = config.ws_ping_interval
        deflate = config.ws_per_message_deflate
        options = ServerOptions(
            max_message_size=config.ws_max_size,
            max_queue=config.ws_max_queue,
            ping_interval=interval if interval else None,
            ping_timeout=config.ws_ping_timeout,
            compression="deflate" if deflate else None,
            extensions=tuple(cls.extensions or ()) if deflate else (),
        )
        known = per_class[cls] = (options, options.protocol_options())
    return known


class _Site:
    """What every connection of one uvicorn server shares, held once (not by each
    connection): its config and application, the lifespan state, the server state."""

    __slots__ = ("__weakref__", "app", "app_state", "config", "root_path", "state")

    def __init__(self, config: Config, state: ServerState, app_state: dict[str, Any]) -> None:
        self.config = config
        self.app = config.loaded_app
        self.root_path = config.root_path
        self.state = state
        self.app_state = app_state


_SITES: weakref.WeakKeyDictionary[ServerState, _Site] = weakref.WeakKeyDictionary()


def _site_of(config: Config, state: ServerState, app_state: dict[str, Any]) -> _Site:
    site = _SITES.get(state)
    if site is None or site.config is not config or site.app_state is not app_state:
        site = _SITES[state] = _Site(config, state, app_state)
    return site


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class WebSocketProtocol(Connection):
    """A uvicorn WebSocket protocol running the ASGI ``websocket`` scope on blazews.

    Built by uvicorn (``--ws blazews.uvicorn:WebSocketProtocol``), never by hand.
    It follows uvicorn's own classes (see the README for the few differences): a
    ``websocket.close`` or an exception before ``websocket.accept`` answers 403 or 500,
    ``websocket.http.response.start``/``.body`` send a denial response, an exception
    after accepting closes with 1011, a ``send`` after the client left raises
    ``uvicorn.protocols.utils.ClientDisconnected`` (an :class:`OSError`), and
    uvicorn's shutdown closes open connections with 1012.

    Attributes:
        scope: The ASGI scope, once the request arrived.
        close_timeout: Seconds the closing handshake may take (10).
        ping_sent_at: The loop time of the last keepalive ping (0.0 before).
    """

    __slots__ = (
        "_app_closed",
        "_connect_given",
        "_denial",
        "_disconnect",
        "_phase",
        "_response",
        "_site",
        "_task",
        "close_timeout",
        "ping_sent_at",
        "scope",
    )

    protocol: ServerProtocol

    _kept_from = COALESCE_MAX + 1  # (see BaseConnection: large bytes go beside their header)

    extensions: Sequence[ServerExtensionFactory] | None = None
    """A subclass's own extension factories, used while ``--ws-per-message-deflate`` is
    on, e.g. ``[ServerPerMessageDeflateFactory(compression_level=6)]``; ``None``:
    blazews' default permessage-deflate policy."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()  # pragma: no cover (uvicorn loads it first)
        options, protocol_options = _options(config, type(self))
        super().__init__(ServerProtocol(**protocol_options), options)
        self._site = _site_of(config, server_state, app_state)
        self.close_timeout: float | None = options.close_timeout
        self.scope: dict[str, Any] = {}
        self.ping_sent_at = 0.0
        self._phase = _CONNECTING
        self._connect_given = False
        self._app_closed = False  # websocket.close sent (or the server shut down)
        self._disconnect: dict[str, Any] | None = None  # the websocket.disconnect event
        self._response: Response | None = None  # the 101 the app's accept sends
        self._denial: tuple[int, list[tuple[str, str]], bytes] | None = None
        self._task: asyncio.Task[None] | None = None  # the application's, while it runs

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        self.transport = t
        if hasattr(t, "set_write_buffer_limits"):
            limit = self.options.write_limit
            high, low = (limit, None) if isinstance(limit, int) else limit
            t.set_write_buffer_limits(high, low)
        self._rx._watch_socket(t)
        self._site.state.connections.add(self)  # type: ignore[arg-type]
        if logger.level <= TRACE_LOG_LEVEL:
            logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", self._prefix())

    def data_received(self, data: bytes) -> None:
        """Take bytes from a transport that is not reading into the receive buffer:
        the request head uvicorn's HTTP protocol hands over, or a transport that
        only knows ``data_received``."""
        self.protocol.receive_data(data)
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        state = self._site.state
        state.connections.discard(self)
        task = self._task
        if task is not None and task.done():  # (cancelled before _run_asgi ran)
            state.tasks.discard(task)
            self._task = None
        if logger.level <= TRACE_LOG_LEVEL:
            logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", self._prefix())

    def shutdown(self) -> None:
        """uvicorn is shutting down: close with 1012 (service restart), or answer a
        handshake still waiting for the application with 500."""
        transport = self.transport
        if transport is None:
            return
        protocol = self.protocol
        if self._phase == _ACCEPTED and protocol.state is State.OPEN and not self._app_closed:
            self._app_closed = True
            if self._disconnect is None:
                self._disconnect = {"type": "websocket.disconnect", "code": 1012}
            self._wake_reader()
            protocol.send_close(1012)
            self._process()
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self._shut_down(transport)
            return
        if self._phase == _CONNECTING:
            self._respond(self._error_response())
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        transport.close()

    # -- the core's events -------------------------------------------------------------

    def _other_event(self, event: Any) -> None:
        if not isinstance(event, Request) or self.scope:
            return
        response = self.protocol.accept(event)
        if response.status_code != 101:  # refused as the native server refuses it
            self._phase = _RESPONDED
            self._respond(response)
            return
        self._response = response
        raw_path, _, query = event.path.partition("?")
        site = self._site
        root = site.root_path
        transport: Any = self.transport
        self.scope = {
            "type": "websocket",
            "asgi": {"version": site.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(transport) else "ws",
            "server": get_local_addr(transport),
            "client": get_remote_addr(transport),
            "root_path": root,
            "path": root + unquote(raw_path),
            "raw_path": root.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": [_header(name, value) for name, value in event.headers.items()],
            "subprotocols": parse_subprotocol_header(
                event.headers.get_all("Sec-WebSocket-Protocol")
            ),
            "state": site.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        # uvicorn waits for server_state.tasks at shutdown: the task leaves it when
        # _run_asgi ends (no done callback, ~130 B less per connection), or when the
        # connection is lost after a task cancelled before it ran.
        task = self._task = self.loop.create_task(self._run_asgi())
        site.state.tasks.add(task)

    # uvicorn's own protocols pause reading as soon as ws_max_queue messages wait
    # (its test suite checks it right after the read): so does this one.
    _full_reads = 1

    def _dispatch(self, events: list[Any]) -> None:
        if self._app_closed:  # past websocket.close: messages are dropped, unread
            events = [e for e in events if type(e) is not Message]
            if not events:
                return
        Connection._dispatch(self, events)

    def _closing(self) -> None:
        self._wake_reader()  # (the application may wait for websocket.disconnect)
        transport = self.transport
        if transport is None or transport.is_closing() or self._draining:
            return
        if self.protocol.close_transport():
            self._shut_down(transport)
        elif self._close_timer is None and self.close_timeout is not None:
            # Our close frame went: the peer has close_timeout to answer it.
            self._close_timer = self.loop.call_later(self.close_timeout, self._give_up)

    def _give_up(self) -> None:
        self._close_timer = None
        if self.transport is not None:
            self.transport.close()

    def _shut_down(self, transport: asyncio.Transport) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        sent = self.protocol.close_sent
        if (sent is not None and sent.code == 1009) or not hasattr(transport, "can_write_eof"):
            # A message over --ws-max-size: not read to its end to drain the
            # connection (uvicorn's classes close it too). Or a transport that
            # cannot say whether it half-closes.
            transport.close()
            return
        super()._shut_down(transport)

    @property
    def close_timer(self) -> asyncio.TimerHandle | None:
        """The timer that drops the connection if the closing handshake lasts too long."""
        return self._close_timer

    # -- ASGI ------------------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self._site.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            logger.exception("Exception in ASGI application\n")
            self._app_failed()
        else:
            if self._phase == _CONNECTING:
                logger.error("ASGI callable returned without completing handshake.")
                self._respond(self._error_response())
            elif result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
        finally:
            self._site.state.tasks.discard(self._task)
            self._task = None
        self._app_done()

    def _app_failed(self) -> None:
        phase = self._phase
        if phase == _CONNECTING:
            self._respond(self._error_response())
        elif phase == _ACCEPTED and self.protocol.state is State.OPEN and not self._app_closed:
            self._app_closed = True
            self.protocol.send_close(1011, "internal error")
            self._process()

    def _app_done(self) -> None:
        """The application returned: finish what it left open."""
        if self._phase == _DENYING:  # a denial response without its last body part
            self._send_denial()
        transport = self.transport
        if (
            transport is not None
            and self._close_timer is None
            and not self._draining
            and not transport.is_closing()
        ):
            transport.close()  # (an open connection the application left: as uvicorn)

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive`` callable."""
        queue = self._queue
        if not self._connect_given:
            self._connect_given = True
            return {"type": "websocket.connect"}
        while not queue:
            event = self._disconnect_event()
            if event is not None:
                return event
            # (the future awaited here, not in a coroutine of its own: one frame less
            # held by every idle connection)
            if self._recv_waiter is not None:
                raise RuntimeError("another coroutine is already waiting in receive()")
            waiter = self._recv_waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._recv_waiter = None
        message = queue.take()
        lent: Any = message.data  # bytes, or a view lent by a large receive buffer
        data: bytes = _done_with(lent) if type(lent) is memoryview else lent
        if message.type == 1:
            return {"type": "websocket.receive", "text": data.decode()}
        return {"type": "websocket.receive", "bytes": data}

    def _disconnect_event(self) -> dict[str, Any] | None:
        event = self._disconnect
        if event is not None:
            return dict(event)
        lost = self._lost
        if self._phase != _ACCEPTED:
            if not lost:
                return None
            event = {"type": "websocket.disconnect", "code": 1006}
        elif not lost and self.protocol.receiving:
            return None
        else:
            close = self.protocol.close_rcvd or self.protocol.close_sent
            if close is None:
                event = {"type": "websocket.disconnect", "code": 1006}
            else:
                event = {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        self._disconnect = event
        return dict(event)

    def send(self, message: dict[str, Any]) -> Awaitable[None]:  # type: ignore[override]
        """The ASGI ``send`` callable.

        A ``websocket.send`` that need not wait (the common case) returns a completed
        awaitable (compiled: no coroutine frame, no turn of the loop); anything else
        returns a coroutine. As with a coroutine, errors are raised by the ``await``.
        While received messages are still queued, the frames sent are written
        together (see :meth:`blazews.Connection.send`).

        Raises:
            ClientDisconnected: The client is gone (an :class:`OSError`).
            RuntimeError: The message is not one the ASGI spec allows now.
        """
        if (
            self._phase == _ACCEPTED
            and not self._app_closed
            and not self._rx._writing_paused
            and not self._lost
            and self._send_chain is None
        ):
            try:
                if message["type"] == "websocket.send":
                    data = message.get("bytes")
                    if data is None:
                        data = message.get("text")
                    elif type(data) is not bytes:
                        data = bytes(data)
                    if data is not None:
                        if self._deflate is not False and self._offloads(data):
                            return self._send_event(message)  # (compressed in a thread)
                        self.protocol.send_data(data)
                        if self._queue:  # more to answer: at the end of this turn
                            _write_soon(self, len(data))
                        else:
                            self._rx._flush()
                    done: Awaitable[None] = completed(None)
                    return done
            except ConnectionClosed:
                return _raise(ClientDisconnected())
            except Exception as exc:  # (raised by the await, as by a coroutine)
                return _raise(exc)
        return self._send_event(message)

    async def _send_event(self, message: dict[str, Any]) -> None:
        """``send`` beyond its common case."""
        if self._rx._writing_paused:
            await self._drain()
        if self._lost:
            raise ClientDisconnected
        kind = message["type"]
        if self._phase == _ACCEPTED and not self._app_closed:
            if kind == "websocket.send":
                data = message.get("bytes")
                if data is None:
                    data = message.get("text")
                    if data is None:
                        return
                elif type(data) is not bytes:
                    data = bytes(data)
                if self._send_chain is not None or self._offloads(data):
                    try:
                        await Connection.send(self, data)
                    except ConnectionClosed:
                        raise ClientDisconnected from None
                    return
                try:
                    self.protocol.send_data(data)
                except ConnectionClosed:
                    raise ClientDisconnected from None
                self._flush()
            elif kind == "websocket.close":
                self._close_by_app(message.get("code") or 1000, message.get("reason") or "")
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif self._phase == _CONNECTING:
            self._handshake_message(kind, message)
        elif self._phase == _DENYING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
                )
            status, headers, body = self._denial  # type: ignore[misc]
            self._denial = (status, headers, body + bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self._send_denial()
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    def _handshake_message(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._log(403)
            self._phase = _RESPONDED
            self._app_closed = True
            self._disconnect = {"type": "websocket.disconnect", "code": 1006}
            self._respond(self._build(403, [], b""))
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
            self._log(status)
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
            ]
            self._denial = (status, headers, b"")
            self._phase = _DENYING
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' "
                f"or 'websocket.http.response.start' but got '{kind}'."
            )

    def _accept(self, message: dict[str, Any]) -> None:
        response = self._response
        assert response is not None
        headers = response.headers
        del headers["Server"]  # (uvicorn's own Server header comes with the defaults)
        defaults = self._site.state.default_headers  # (uvicorn renews its Date each second)
        for name, value in [*defaults, *message.get("headers", ())]:
            headers.add(name.decode("latin-1").lower(), value.decode("latin-1"))
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.add("Sec-WebSocket-Protocol", subprotocol)
            self.protocol.agree_subprotocol(subprotocol)
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientDisconnected
        logger.info(
            '%s - "WebSocket %s" [accepted]',
            get_client_addr(self.scope),  # type: ignore[arg-type]
            get_path_with_query_string(self.scope),  # type: ignore[arg-type]
        )
        self._phase = _ACCEPTED
        self._response = None
        self._respond(response)
        self._start_keepalive()

    def _close_by_app(self, code: int, reason: str) -> None:
        self._app_closed = True
        self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        queue = self._queue
        if queue.paused:  # reading must go on, for the peer's close frame
            queue.paused = False
            queue.on_resume = None
            if self.transport is not None:
                self.transport.resume_reading()
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._process()

    def _send_denial(self) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        self._denial = None
        self._phase = _RESPONDED
        self._app_closed = True
        self._disconnect = {"type": "websocket.disconnect", "code": 1006}
        self._respond(self._build(status, headers, body, defaults=False))

    def _error_response(self) -> Response:
        plain = [("Content-Type", "text/plain; charset=utf-8")]
        return self._build(500, plain, b"Internal Server Error")

    def _build(
        self, status: int, headers: list[tuple[str, str]], body: bytes, defaults: bool = True
    ) -> Response:
        """A response refusing the connection: ``headers``, then the server's default
        headers (with ``defaults``) and the ones a response needs, where missing."""
        out = Headers(headers)
        if defaults:
            for raw_name, raw_value in self._site.state.default_headers:
                if raw_name.decode("latin-1") not in out:
                    out.add(raw_name.decode("latin-1"), raw_value.decode("latin-1"))
        elif "Date" not in out:
            for raw_name, raw_value in self._site.state.default_headers:
                if raw_name.lower() == b"date":
                    out.add("date", raw_value.decode("latin-1"))
        for name, value in (
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ):
            if name not in out:
                out.add(name, value)
        return Response(status, _phrase(status), out, body)

    def _respond(self, response: Response) -> None:
        """Send the handshake's response (a refusal closes the connection)."""
        if self._phase == _CONNECTING:
            self._phase = _RESPONDED
        transport = self.transport
        if (
            transport is None
            or transport.is_closing()
            or self._draining
            or self.protocol.state is not State.CONNECTING  # (the core answered already)
        ):
            return
        if response.status_code != 101:
            self._app_closed = True
            self.response = response
        self.protocol.send_response(response)
        if response.status_code == 101:
            # The application has the scope: the request and the 101 are not kept
            # (~1.3 KiB an idle connection does not hold).
            self.protocol.request = self.protocol.response = None
        self._process()

    def _log(self, status: int) -> None:
        logger.info(
            '%s - "WebSocket %s" %d',
            get_client_addr(self.scope),  # type: ignore[arg-type]
            get_path_with_query_string(self.scope),  # type: ignore[arg-type]
            status,
        )

    def _prefix(self) -> str:
        client = self.scope.get("client") or (
            None if self.transport is None else get_remote_addr(self.transport)
        )
        return f"{client[0]}:{client[1]} - " if client else ""

    # -- keepalive: the loop's one timer (see blazews.asyncio._keepalive) -----------------

    def _keepalive_due(self, wheel: Keepalive) -> None:
        sent = self._ka_ping
        super()._keepalive_due(wheel)
        if self._ka_ping is not None and self._ka_ping is not sent:
            self.ping_sent_at = self.loop.time()

    @property
    def ping_timer(self) -> Keepalive | None:
        """The loop's keepalive timer while this connection has a ping scheduled
        (``None`` without keepalive); uvicorn's classes have a timer of their own."""
        return keepalive_for(self.loop) if self._ka_token else None
