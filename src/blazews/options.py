"""The options of a connection: each one named, defaulted, documented and checked here.

Every entry point takes them as keyword arguments (``connect(url, ping_interval=5)``)
and builds one frozen options object, shared by all the connections it makes:
:class:`ClientOptions` for :func:`blazews.connect`, :func:`blazews.connect_listener`
and :func:`blazews.sync.connect`; :class:`ServerOptions` for :func:`blazews.serve`,
:func:`blazews.serve_listener` and :func:`blazews.sync.serve`. A wrong type or range
raises at the call, naming the option. An options object can also be built once and
passed whole: ``connect(url, options=ClientOptions(ping_interval=5))``.

The keyword form is typed by :class:`ClientKeywords` / :class:`ServerKeywords`
(for type checkers and editors); a test keeps them equal to the dataclasses.
"""

from __future__ import annotations

import difflib
import logging
import numbers
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict, TypeVar

from .sansio.door import BasicAuth
from .sansio.extensions import ClientExtensionFactory, ServerExtensionFactory, with_compression
from .sansio.http11 import Headers, Request, Response
from .sansio.protocol import DEFAULT_MAX_MESSAGE_SIZE
from .sansio.proxy import ENVIRONMENT, parse_proxy
from .sansio.reconnect import ProcessException
from .sansio.server import SubprotocolSelector

# What the coroutine entry points refuse, and why.
SEND_WAITS = {"max_write_buffer": "a coroutine send waits while the write buffer is full"}

__all__ = [
    "ClientKeywords",
    "ClientOptions",
    "ConnectionOptions",
    "ServerKeywords",
    "ServerOptions",
]

COMPRESS_IN_THREAD = 131072
"""Default ``compress_in_thread``: asyncio messages from this size (128 KiB) on are
compressed off the event loop when permessage-deflate is in use (deflating 128 KiB of
JSON takes about a millisecond, longer than a loop should stall)."""

MaybeAwaitable = Response | None | Awaitable[Response | None]
ProcessRequest = Callable[[Any, Request], MaybeAwaitable]
ProcessResponse = Callable[[Any, Request, Response], MaybeAwaitable]
WriteLimit = int | tuple[int, int | None]
OptionsT = TypeVar("OptionsT", bound="ConnectionOptions")


@dataclass(frozen=True)
class ConnectionOptions:
    """The options both roles share: keepalive, timeouts, limits and compression.

    Attributes:
        compression: ``"deflate"`` (the default) also negotiates permessage-deflate
            with the default policy of :mod:`blazews.sansio.extensions.permessage_deflate`,
            unless ``extensions`` has a permessage-deflate factory; ``None``: none.
        ssl: An :class:`ssl.SSLContext`: a client's for ``wss://`` (a default context
            when omitted), a server's to serve ``wss://``.
        open_timeout: Seconds allowed for the TCP connection, TLS and the opening
            handshake (10 s), or ``None``; a server drops a client that is too slow.
        ping_interval: Seconds between keepalive pings (20 s), or ``None`` for none.
        ping_timeout: Seconds a keepalive ping may wait for its pong before the
            connection fails with 1011 (20 s), or ``None``.
        close_timeout: Seconds the closing handshake may take before the TCP
            connection is dropped (10 s), or ``None``.
        max_message_size: Largest message received, in bytes, after inflation
            (1 MiB); a larger one fails the connection with 1009. ``None``: no limit.
        max_queue: Received messages buffered before reading pauses (16): reading
            pauses when this many are still queued after the reader's turn, or
            after four socket reads that found them queued before it had one (the
            queue holds at most that and what those reads brought). Not for
            Listener connections: they have no queue.
        write_limit: High-water mark of the asyncio write buffer in bytes (64 KiB),
            or ``(high, low)``; ``send`` waits above it, and a ping received above
            it stops reading until it drains (a peer that floods pings and never
            reads the pongs meets TCP backpressure). Not for :mod:`blazews.sync`,
            whose ``send`` writes before it returns.
        max_write_buffer: A Listener connection's hard cap on its write buffer, in
            bytes (16 MiB): a ``send`` that leaves more than this buffered while writing
            is paused (a peer that does not read, and a listener that sends anyway)
            fails the connection with 1008. It must exceed the largest message sent.
            ``None``: no cap. Below it, a Listener connection stops reading while its
            buffer is above ``write_limit``, so a reactive listener (an echo) stays
            within ``write_limit`` on its own. Only for the Listener entry points:
            a coroutine ``send`` waits instead.
        compress_in_thread: With permessage-deflate, asyncio messages of at least this
            many bytes are compressed in the loop's default executor (128 KiB), so
            they do not stall the loop; ``None``: always on the loop. Not for
            :mod:`blazews.sync`.
        max_line: Longest HTTP line of the handshake, request or status line and each
            header (8 KiB); a server answers 414 or 431 beyond it.
        max_headers: Most HTTP headers in the handshake (128); 431 beyond.
        logger: The :class:`logging.Logger` (or :class:`logging.LoggerAdapter`) the
            connections log to, instead of ``blazews.client`` / ``blazews.server``.
            Each record is tagged with the connection's id (``[7] ...``,
            ``record.websocket_id``). At ``DEBUG`` a connection traces its handshake
            and every frame (opcode, flags, length); see :mod:`blazews._logging`.
    """

    compression: str | None = "deflate"
    ssl: ssl_module.SSLContext | None = None
    open_timeout: float | None = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 10.0
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    max_queue: int = 16
    write_limit: WriteLimit = 65536
    max_write_buffer: int | None = 16 * 1024 * 1024
    compress_in_thread: int | None = COMPRESS_IN_THREAD
    max_line: int = 8192
    max_headers: int = 128
    logger: logging.Logger | logging.LoggerAdapter | None = None  # type: ignore[type-arg]

    def __post_init__(self) -> None:
        if self.logger is not None and not isinstance(
            self.logger, (logging.Logger, logging.LoggerAdapter)
        ):
            raise TypeError(f"logger must be a Logger or LoggerAdapter, not {self.logger!r}")
        if self.compression not in ("deflate", None):
            raise ValueError(f"compression must be 'deflate' or None, not {self.compression!r}")
        _check_type(self, "ssl", ssl_module.SSLContext, none=True)
        for name in ("open_timeout", "ping_timeout", "close_timeout"):
            _check_number(self, name, 0.0, none=True)
        _check_number(self, "ping_interval", 0.0, none=True, strict=True)
        _check_int(self, "max_message_size", 0, none=True)
        _check_int(self, "max_queue", 1)
        _check_int(self, "max_write_buffer", 1, none=True)
        _check_int(self, "compress_in_thread", 0, none=True)
        _check_int(self, "max_line", 1)
        _check_int(self, "max_headers", 1)
        limit = self.write_limit
        high, low = limit if isinstance(limit, tuple) and len(limit) == 2 else (limit, None)
        low_ok = low is None or (_is_int(low) and 0 <= low <= high)
        if not _is_int(high) or high < 0 or not low_ok:
            raise ValueError(
                "write_limit must be a size in bytes or (high, low) with 0 <= low <= high, "
                f"not {limit!r}"
            )

    @classmethod
    def of(
        cls: type[OptionsT],
        entry: str,
        options: OptionsT | None,
        keywords: Mapping[str, Any],
        refused: Mapping[str, str] | None = None,
    ) -> OptionsT:
        """The options of one call of an entry point.

        Args:
            entry: The entry point's name, for error messages.
            options: An options object passed whole, or ``None``.
            keywords: The options passed as keyword arguments (on top of ``options``).
            refused: Options this entry point has no use for, with the reason.

        Raises:
            TypeError: An unknown option, one the entry point refuses, or a wrong type.
            ValueError: A value out of range.
        """
        known = {f.name for f in fields(cls)}
        for name in keywords:
            if name not in known:
                close = difflib.get_close_matches(name, known, 1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"{entry}() got an unknown option {name!r}{hint}")
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"{entry}() options must be {cls.__name__}, not {options!r}")
        given = dict(keywords)
        if options is not None:
            given = {f.name: getattr(options, f.name) for f in fields(cls)} | given
        for name, why in (refused or {}).items():
            if name in keywords or (options is not None and name in _changed(options)):
                raise TypeError(f"{entry}() takes no {name!r} option: {why}")
        return options if options is not None and not keywords else cls(**given)


@dataclass(frozen=True)
class ClientOptions(ConnectionOptions):
    """The options of a client connection (see the shared ones above).

    Attributes:
        origin: An ``Origin`` header to send.
        subprotocols: Subprotocols to offer, in order of preference.
        extensions: Extension factories to offer.
        additional_headers: Extra request headers (values may not contain CR, LF or NUL).
        server_hostname: Host name for TLS verification, if not the URL's.
        sock: An already connected socket to use instead of opening one.
        unix_path: Connect to this Unix socket path instead of the URL's host.
        proxy: The proxy to connect through: a URL (``http://``, ``https://``,
            ``socks5://``, ``socks5h://``, ``socks4://``, ``socks4a://``; credentials in
            it are sent: Basic for HTTP), ``None`` for a direct connection, or
            ``"environment"`` (the default): ``HTTPS_PROXY`` for ``wss://``,
            ``HTTP_PROXY`` for ``ws://``, else ``ALL_PROXY``, unless ``NO_PROXY`` lists
            the host, as ``urllib`` reads them. Not used with ``sock`` or ``unix_path``.
            SOCKS needs the ``blazews[socks]`` extra (``python-socks``).
        proxy_ssl: The :class:`ssl.SSLContext` for TLS to an ``https://`` proxy (a
            default context when omitted).
        max_redirects: The most redirects (301, 302, 303, 307, 308) of the opening
            handshake followed (10); ``0`` follows none. See
            :mod:`blazews.sansio.redirect`.
        reconnect_initial_delay: Reconnecting (``async for conn in connect(...)``):
            the bound of the first delay after a failure, in seconds (1 s). The n-th
            failure in a row waits a random time up to ``min(reconnect_max_delay,
            reconnect_initial_delay * reconnect_factor ** n)`` (full jitter).
        reconnect_max_delay: The longest wait between attempts (60 s); it also caps
            how long a server's ``Retry-After`` is honoured.
        reconnect_factor: The growth of the bound per failure in a row (2).
        reconnect_reset_after: A connection open at least this many seconds (60 s)
            resets the count of failures in a row.
        process_exception: ``f(exc)`` decides, when reconnecting, whether an attempt's
            failure or a lost connection's ``ConnectionClosed`` retries: it returns
            ``None`` to retry, or the exception to raise. The default
            (:func:`blazews.sansio.reconnect.default_process_exception`) retries
            ``OSError``, timeouts, HTTP 5xx and 429, and closes 1001, 1006, 1011,
            1012, 1013 and 1014.
    """

    origin: str | None = None
    subprotocols: Sequence[str] | None = None
    extensions: Sequence[ClientExtensionFactory] = ()
    additional_headers: Iterable[tuple[str, str]] | Headers | None = None
    server_hostname: str | None = None
    sock: socket.socket | None = None
    unix_path: str | None = None
    proxy: str | None = ENVIRONMENT
    proxy_ssl: ssl_module.SSLContext | None = None
    max_redirects: int = 10
    reconnect_initial_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    reconnect_factor: float = 2.0
    reconnect_reset_after: float = 60.0
    process_exception: ProcessException | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("reconnect_initial_delay", "reconnect_max_delay", "reconnect_reset_after"):
            _check_number(self, name, 0.0)
        _check_number(self, "reconnect_factor", 1.0)
        if self.process_exception is not None and not callable(self.process_exception):
            raise TypeError(f"process_exception must be callable, not {self.process_exception!r}")
        _check_type(self, "proxy", str, none=True)
        if self.proxy is not None and self.proxy != ENVIRONMENT:
            parse_proxy(self.proxy)
        _check_type(self, "proxy_ssl", ssl_module.SSLContext, none=True)
        _check_int(self, "max_redirects", 0)
        _check_type(self, "origin", str, none=True)
        _check_strings(self, "subprotocols")
        _check_type(self, "server_hostname", str, none=True)
        _check_type(self, "sock", socket.socket, none=True)
        _check_type(self, "unix_path", str, none=True)

    def protocol_options(self) -> dict[str, Any]:
        """The keyword arguments of a :class:`~blazews.ClientProtocol`."""
        return {
            "origin": self.origin,
            "subprotocols": self.subprotocols,
            "extensions": with_compression(self.compression, self.extensions, client=True),
            "additional_headers": self.additional_headers,
            "max_message_size": self.max_message_size,
            "max_line": self.max_line,
            "max_headers": self.max_headers,
        }


@dataclass(frozen=True)
class ServerOptions(ConnectionOptions):
    """The options of a server and its connections (see the shared ones above).

    Attributes:
        path: Listen on this Unix socket path instead of a TCP port.
        sock: An already bound socket to listen on.
        subprotocols: Subprotocols the server supports.
        select_subprotocol: Policy picking one from the client's offer (by default
            the first offered that the server supports).
        extensions: Extension factories the server accepts.
        process_request: ``f(connection, request)`` called before the handshake
            response; return a :class:`~blazews.Response` (e.g.
            ``connection.reject(403, ...)``) to refuse the connection, or ``None`` to
            go on. May be a coroutine on asyncio.
        process_response: ``f(connection, request, response)`` may change the
            response's headers or return a replacement. May be a coroutine on asyncio.
        origins: The ``Origin`` header values allowed, exactly (``None`` in it allows
            a request without the header: most clients that are not browsers); any
            other request is refused with 403. ``None`` (the default): no check. Set
            it on a server that browsers reach: a browser sends the page's origin,
            which a hostile page cannot forge, so this is the defence against
            cross-site WebSocket hijacking.
        basic_auth: A :class:`~blazews.BasicAuth` (realm, and credentials or a check
            function): a client without valid credentials gets 401 (400 for a
            malformed ``Authorization`` header) before ``process_request`` runs; an
            admitted one's user name is the connection's ``username``. ``None`` (the
            default): no authentication.
        backlog: The listen backlog (100).
        reuse_port: Set ``SO_REUSEPORT`` (asyncio).
        workers: Processes serving the port (1): more than 1 forks that many
            worker processes sharing it through ``SO_REUSEPORT`` (Linux), under a
            supervisor that restarts a worker that dies (asyncio; see
            :mod:`blazews.asyncio.workers`).
    """

    path: str | None = None
    sock: socket.socket | None = None
    subprotocols: Sequence[str] | None = None
    select_subprotocol: SubprotocolSelector | None = None
    extensions: Sequence[ServerExtensionFactory] = ()
    process_request: ProcessRequest | None = None
    process_response: ProcessResponse | None = None
    origins: Collection[str | None] | None = None
    basic_auth: BasicAuth | None = None
    backlog: int = 100
    reuse_port: bool | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_type(self, "path", str, none=True)
        _check_type(self, "basic_auth", BasicAuth, none=True)
        _check_type(self, "sock", socket.socket, none=True)
        _check_strings(self, "subprotocols")
        for name in ("select_subprotocol", "process_request", "process_response"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"{name} must be callable, not {getattr(self, name)!r}")
        _check_int(self, "backlog", 0)
        _check_int(self, "workers", 1)
        origins = self.origins
        if origins is not None and (
            isinstance(origins, (str, bytes))
            or not all(o is None or isinstance(o, str) for o in origins)
        ):
            raise TypeError(f"origins must be a collection of str or None, not {origins!r}")

    def protocol_options(self) -> dict[str, Any]:
        """The keyword arguments of a :class:`~blazews.ServerProtocol`.

        Sequences become tuples, which every connection shares rather than copying.
        """
        return {
            "subprotocols": tuple(self.subprotocols or ()),
            "select_subprotocol": self.select_subprotocol,
            "extensions": tuple(with_compression(self.compression, self.extensions, client=False)),
            "max_message_size": self.max_message_size,
            "max_line": self.max_line,
            "max_headers": self.max_headers,
            "origins": None if self.origins is None else frozenset(self.origins),
        }


class _Keywords(TypedDict, total=False):
    compression: str | None
    ssl: ssl_module.SSLContext | None
    open_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    max_message_size: int | None
    max_queue: int
    write_limit: WriteLimit
    max_write_buffer: int | None
    compress_in_thread: int | None
    max_line: int
    max_headers: int
    logger: logging.Logger | logging.LoggerAdapter | None  # type: ignore[type-arg]


class ClientKeywords(_Keywords, total=False):
    """The keyword form of :class:`ClientOptions`, for type checkers."""

    origin: str | None
    subprotocols: Sequence[str] | None
    extensions: Sequence[ClientExtensionFactory]
    additional_headers: Iterable[tuple[str, str]] | Headers | None
    server_hostname: str | None
    sock: socket.socket | None
    unix_path: str | None
    proxy: str | None
    proxy_ssl: ssl_module.SSLContext | None
    max_redirects: int
    reconnect_initial_delay: float
    reconnect_max_delay: float
    reconnect_factor: float
    reconnect_reset_after: float
    process_exception: ProcessException | None


class ServerKeywords(_Keywords, total=False):
    """The keyword form of :class:`ServerOptions`, for type checkers."""

    path: str | None
    sock: socket.socket | None
    subprotocols: Sequence[str] | None
    select_subprotocol: SubprotocolSelector | None
    extensions: Sequence[ServerExtensionFactory]
    process_request: ProcessRequest | None
    process_response: ProcessResponse | None
    origins: Collection[str | None] | None
    basic_auth: BasicAuth | None
    backlog: int
    reuse_port: bool | None
    workers: int


def _changed(options: ConnectionOptions) -> set[str]:
    """The options that differ from their defaults."""
    return {f.name for f in fields(options) if getattr(options, f.name) != f.default}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_type(options: ConnectionOptions, name: str, kind: type, *, none: bool = False) -> None:
    value = getattr(options, name)
    if not (isinstance(value, kind) or (none and value is None)):
        raise TypeError(
            f"{name} must be {kind.__name__}{' or None' if none else ''}, not {value!r}"
        )


def _check_int(options: ConnectionOptions, name: str, low: int, *, none: bool = False) -> None:
    value = getattr(options, name)
    if none and value is None:
        return
    if not _is_int(value):
        raise TypeError(f"{name} must be an int{' or None' if none else ''}, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value!r}")


def _check_number(
    options: ConnectionOptions, name: str, low: float, *, none: bool = False, strict: bool = False
) -> None:
    value = getattr(options, name)
    if none and value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(
            f"{name} must be {'more than' if strict else 'at least'} {low}, not {value!r}"
        )


def _check_strings(options: ConnectionOptions, name: str) -> None:
    value = getattr(options, name)
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a sequence of str, not {value!r}")
