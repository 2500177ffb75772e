"""The blocking server: :func:`serve`, :class:`Server` and :class:`ServerConnection`.

One thread per connection runs the opening handshake (TLS included), then the
handler; each open connection also has its reader thread (see
:mod:`blazews.sync.connection`).
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectionClosedError, ConnectionClosedOK
from ..options import MaybeAwaitable, ServerKeywords, ServerOptions
from ..sansio.door import NO_PARAMS, Door, Router
from ..sansio.frames import Close
from ..sansio.http11 import Request, Response
from ..sansio.protocol import State
from ..sansio.server import ServerProtocol
from .connection import SYNC_REFUSED, Connection, _deadline, _remaining

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Server", "ServerConnection", "serve"]

logger = logging.getLogger("blazews")

Handler = Callable[["ServerConnection"], None]

_SERVE_REFUSED = {
    **SYNC_REFUSED,
    "reuse_port": "blazews.sync serves from one process",
    "workers": "blazews.sync serves from one process",
}


def _plain(result: MaybeAwaitable, hook: str) -> Response | None:
    """A hook's result, which must be a response or ``None`` here, not an awaitable."""
    if result is None or isinstance(result, Response):
        return result
    close = getattr(result, "close", None)
    if close is not None:
        close()  # a coroutine: no "never awaited" warning on top of the error
    raise TypeError(f"{hook} returned {result!r}; blazews.sync runs plain functions")


class ServerConnection(Connection):
    """The server end of a connection; see :class:`Connection` for its API.

    Attributes:
        server: The :class:`Server` it belongs to.
        username: The user name the client authenticated with (the ``basic_auth``
            option), else ``None``.
        path_params: The parameters of the route that matched the request path
            (serving a :class:`~blazews.Router`): ``{"id": "42"}`` for
            ``/feed/{id}``; empty otherwise.
    """

    protocol: ServerProtocol

    def __init__(
        self, sock: socket.socket, protocol: ServerProtocol, server: Server, options: ServerOptions
    ) -> None:
        super().__init__(sock, protocol, options)
        self.server = server
        self.username: str | None = None
        self.path_params: Mapping[str, str] = NO_PARAMS
        self.handler: Handler = server.handler

    def reject(
        self, status: int, body: bytes | str = b"", headers: Sequence[tuple[str, str]] | None = None
    ) -> Response:
        """Build a response that refuses the connection, for ``process_request``."""
        return self.protocol.reject(status, body, headers)

    def _handshake(self, deadline: float | None) -> bool:
        """Read the request, run the hooks, send the response.

        Returns:
            Whether the connection is open (a 101 was sent).

        Raises:
            TimeoutError: The deadline passed.
        """
        server = self.server
        request = self._read_handshake(deadline)
        if not isinstance(request, Request):
            return False  # EOF, or a malformed request (the core already answered it)
        self.request = request
        try:
            response: Response | None = None
            if server.door is not None:
                response = self._admit(server.door, request)
            if response is None and server.process_request is not None:
                response = _plain(server.process_request(self, request), "process_request")
            if response is None:
                response = self.protocol.accept(request)
                if server.process_response is not None and response.status_code == 101:
                    replaced = _plain(
                        server.process_response(self, request, response), "process_response"
                    )
                    if replaced is not None:
                        response = replaced
        except Exception:
            self.logger.exception("process_request or process_response failed")
            response = self.protocol.reject(500, "Failed to open a WebSocket connection.\n")
        self.response = response
        self.socket.settimeout(_remaining(deadline))
        with self._cond:
            self.protocol.send_response(response)
            self._absorb()
            self._flush_locked()
        return response.status_code == 101 and self._write_error is None

    def _admit(self, door: Door, request: Request) -> Response | None:
        """Run the door (basic auth, routing); return its refusal, or ``None``."""
        admission = door.admit(request)
        ok = door.verify(admission)
        if not isinstance(ok, bool):
            ok = _plain_bool(ok)
        refusal = door.decide(admission, ok)
        if refusal is None:
            self.username = admission.username
            self.path_params = admission.path_params
            if admission.target is not None:
                self.handler = admission.target
        return refusal


def _plain_bool(result: Any) -> bool:
    """A check function's result, which must not be an awaitable here."""
    close = getattr(result, "close", None)
    if close is not None and hasattr(result, "send"):
        close()  # a coroutine: no "never awaited" warning on top of the error
        raise TypeError("the basic_auth check returned a coroutine; blazews.sync runs functions")
    return bool(result)


def _unrouted(conn: ServerConnection) -> None:  # pragma: no cover
    """The handler of a routed server: never run, each connection has its route's."""
    raise AssertionError("a routed connection runs its route's handler")


class Server:
    """A running WebSocket server, as :func:`serve` returns it.

    Use it as a context manager, or call :meth:`shutdown` when done.

    Attributes:
        socket: The listening socket.
    """

    def __init__(
        self, sock: socket.socket, handler: Handler | Router[Handler], options: ServerOptions
    ) -> None:
        self.socket = sock
        router = handler if isinstance(handler, Router) else None
        self.handler: Handler = handler if not isinstance(handler, Router) else _unrouted
        self.door: Door | None = None
        if router is not None or options.basic_auth is not None:
            self.door = Door(options.basic_auth, router)
        self.options = options
        self.process_request = options.process_request
        self.process_response = options.process_response
        self.protocol_options = options.protocol_options()
        self._lock = threading.Lock()
        self._connections: set[ServerConnection] = set()
        self._opening: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = False
        self._serving = False
        self._serving_thread: int | None = None
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()

    @property
    def port(self) -> int:
        """The port of the listening socket (handy with ``port=0``)."""
        return int(self.socket.getsockname()[1])

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections currently open."""
        with self._lock:
            return set(self._connections)

    def serve_forever(self, timeout: float | None = None) -> None:
        """Accept connections until :meth:`shutdown` is called, or ``timeout`` passed.

        :meth:`shutdown` may be called from another thread, or from a signal handler
        in this one (``signal.signal(signal.SIGTERM, lambda *_: server.shutdown())``):
        either way this returns once the server is shut down. After ``timeout``
        seconds without a shutdown, it returns with the server still listening (the
        connections it opened go on; clients that call meanwhile wait in the
        backlog): call it again, or :meth:`shutdown`.

        Args:
            timeout: Seconds to serve, or ``None``: until :meth:`shutdown`.
        """
        with self._lock:
            if self._stopping or self._serving:
                return
            self._serving = True
            self._serving_thread = threading.get_ident()
        deadline = _deadline(timeout)
        with selectors.DefaultSelector() as selector:
            try:
                self.socket.setblocking(False)  # a client may vanish between select and accept
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping:
                    remaining = _remaining(deadline)
                    if remaining == 0.0:
                        break
                    ready = selector.select(remaining)
                    if self._stopping:
                        break
                    if not any(key.fileobj is self.socket for key, _ in ready):
                        continue
                    try:
                        sock, _ = self.socket.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue
                    except OSError:
                        if self._stopping:
                            break
                        raise
                    self._spawn(sock)
            finally:
                with self._lock:
                    self._serving = False
                    self._serving_thread = None
                    stopping = self._stopping
                if stopping:
                    self._stopped.set()
                    self._close_wake()

    def _spawn(self, sock: socket.socket) -> None:
        thread = threading.Thread(
            target=self._handle, args=(sock,), name="blazews-conn", daemon=True
        )
        with self._lock:
            if self._stopping:
                sock.close()
                return
            self._threads.add(thread)
            self._opening.add(sock)
        thread.start()

    def _handle(self, sock: socket.socket) -> None:
        conn: ServerConnection | None = None
        raw = sock
        try:
            deadline = _deadline(self.options.open_timeout)
            sock.settimeout(_remaining(deadline))
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.options.ssl is not None:
                sock = self.options.ssl.wrap_socket(sock, server_side=True)
            conn = ServerConnection(
                sock, ServerProtocol(**self.protocol_options), self, self.options
            )
            if not conn._handshake(deadline):
                return
            with self._lock:
                self._opening.discard(raw)
                if self._stopping:
                    # Raced with shutdown(): it no longer sees this connection.
                    self._connections.add(conn)
                    conn._start()
                    conn.close(1001, "server shutting down")
                    return
                self._connections.add(conn)
                conn._start()
            try:
                conn.handler(conn)
            except ConnectionClosedOK as exc:  # the peer closed: not the handler's fault
                conn.logger.debug("connection handler ended: %s", exc)
                conn.close()
            except ConnectionClosedError as exc:
                conn.logger.info("connection handler ended: %s", exc)
                conn.close()
            except Exception:
                conn.logger.exception("connection handler failed")
                if conn.protocol.state is State.OPEN:
                    conn.close(1011, "internal error")
                else:
                    conn.close()
            else:
                conn.close()
        except TimeoutError:
            logger.info("opening handshake timed out")
        except (OSError, ValueError) as exc:
            logger.info("opening handshake failed: %s", exc)
        except Exception:  # pragma: no cover - a bug
            logger.exception("connection thread failed")
        finally:
            with self._lock:
                self._opening.discard(raw)
                if conn is not None:
                    self._connections.discard(conn)
                self._threads.discard(threading.current_thread())
            if conn is None or conn._reader is None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def shutdown(
        self,
        timeout: float | None = None,
        *,
        code: int = 1001,
        reason: str = "server shutting down",
    ) -> None:
        """Stop accepting, close open connections, and wait for the connection threads.

        Safe from any thread, and from a signal handler in :meth:`serve_forever`'s
        thread: that call shuts the server down, and ``serve_forever`` returns after
        the handler.

        Args:
            timeout: Seconds to wait for connection threads (handlers) to finish;
                ``close_timeout`` if ``None``. Handlers still running then are left
                to finish on their own (their threads are daemon threads).
            code: The close code the open connections get: 1001 (going away) by
                default; 1012 (service restart) tells clients to reconnect.
            reason: The close reason (at most 123 bytes in UTF-8).

        Raises:
            ValueError: The code may not be sent, or the reason is too long.
        """
        Close.to_send(code, reason)  # (checked before anything is closed)
        with self._lock:
            already = self._stopping
            self._stopping = True
            serving = self._serving
            in_serve_forever = self._serving_thread == threading.get_ident()
            connections = list(self._connections)
            opening = list(self._opening)
            threads = list(self._threads)
        if not already:
            try:
                self._wake_w.send(b"x")
            except OSError:  # pragma: no cover
                pass
        if serving and not in_serve_forever:
            self._stopped.wait()
        # (From serve_forever's thread, the listening socket closes under its select,
        # which the wake-up byte ends once the signal handler returns.)
        self.socket.close()
        for sock in opening:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        closers = [
            threading.Thread(target=conn.close, args=(code, reason), daemon=True)
            for conn in connections
        ]
        for closer in closers:
            closer.start()
        if timeout is None:
            timeout = self.options.close_timeout
        deadline = _deadline(timeout)
        for thread in closers + threads:
            if thread is not threading.current_thread():
                thread.join(_remaining(deadline))
        if not already and not serving:
            self._close_wake()  # else serve_forever closes it when it returns

    def _close_wake(self) -> None:
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _listen(
    host: str | None, port: int | None, path: str | None, sock: socket.socket | None, backlog: int
) -> socket.socket:
    if sock is not None:
        sock.listen(backlog)
        return sock
    if path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock
    port = port or 0
    if host is None or host == "":
        if socket.has_dualstack_ipv6():
            return socket.create_server(
                ("", port), family=socket.AF_INET6, backlog=backlog, dualstack_ipv6=True
            )
        return socket.create_server(("", port), backlog=backlog)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


def serve(
    handler: Handler | Router[Handler],
    host: str | None = None,
    port: int | None = None,
    *,
    options: ServerOptions | None = None,
    **keywords: Unpack[ServerKeywords],
) -> Server:
    """Start a blocking WebSocket server, listening at once; a thread per connection.

    Use ``with serve(handler, host, port) as server: server.serve_forever()``.

    Args:
        handler: Called in the connection's thread with its :class:`ServerConnection`;
            when it returns the connection is closed with 1000 (1011 if it raised).
            Or a :class:`~blazews.Router` of such functions by path: an unknown path
            gets 404, a matched route's parameters are ``conn.path_params``.
        host: Address to listen on (all interfaces if ``None``).
        port: Port to listen on (``0`` or ``None``: any free port, see :attr:`Server.port`).
        options: A :class:`~blazews.ServerOptions` to start from.
        **keywords: Any option of :class:`~blazews.ServerOptions` (``ssl``,
            ``subprotocols``, ``process_request``, ``ping_interval``,
            ``max_message_size``, ...), which documents each one and its default; but
            for ``write_limit``, ``compress_in_thread``, ``reuse_port`` and
            ``workers``, which are the asyncio front end's. The hooks are plain
            functions here.

    Returns:
        The listening :class:`Server`.

    Raises:
        TypeError, ValueError: An option is unknown, of a wrong type or out of range.
    """
    opts = ServerOptions.of("blazews.sync.serve", options, keywords, _SERVE_REFUSED)
    return Server(_listen(host, port, opts.path, opts.sock, opts.backlog), handler, opts)
