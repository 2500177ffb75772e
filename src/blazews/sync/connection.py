"""The blocking :class:`Connection`: a thin adapter between a socket and the core.

Each open connection has a reader thread. It receives into a reusable 64 KiB
buffer, feeds the sans-I/O protocol, writes what the protocol produced (pongs, close
replies) and queues the messages it assembled. The queue is bounded: when it holds
``max_queue`` messages the reader thread stops reading until the application has
taken all but a quarter of them (backpressure reaches the peer through TCP).

Writes are serialized and keep the order in which the protocol produced them:
whatever a call produces goes to an outbox under the connection's lock, and one
thread at a time writes the outbox. ``send`` returns once its frames are written.
The reader thread only ever writes its own output, and never waits for another
writer, so a slow peer cannot stop it from reading.

Closing follows the core: the server closes the TCP connection once
:meth:`~blazews.sansio.protocol.Protocol.close_transport` says so (half-close, then
waits for the client's end, within ``close_timeout``); a client waits at most
``close_timeout`` for the server to close first.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._inspect import ConnectionInfo
from .._logging import debug_tracers, next_id
from ..buffers import _MASK_PIECE, _SEND_PIECES
from ..exceptions import BufferTooSmall, ConcurrencyError, ConnectionClosed, ConnectionClosedOK
from ..options import ConnectionOptions
from ..sansio.frames import MaskLater, MessageType
from ..sansio.http11 import Request, Response
from ..sansio.protocol import Message, Ping, Pong, Protocol, State
from ._trace import TracedSocket

__all__ = ["Connection", "PongWaiter"]

if TYPE_CHECKING:
    from .._typing import Buffer, Data

logger = logging.getLogger("blazews")

_DEFAULTS = ConnectionOptions()

# What the blocking entry points refuse, and why.
SYNC_REFUSED = {
    "write_limit": "blazews.sync's send writes its message before it returns",
    "compress_in_thread": "blazews.sync compresses in the thread that sends",
    "max_write_buffer": "blazews.sync's send writes its message before it returns",
}

RECV_BUFFER_SIZE = 65536
"""Size of each connection's receive buffer, in bytes."""

_TYPES = (MessageType.BINARY, MessageType.TEXT, MessageType.BINARY)
_IOV_MAX = 512

READER_BACKLOG = 256
"""Chunks (pongs, close frames) the reader thread may leave queued behind another
thread's write before it waits for that write: a peer that floods pings while not
reading what it is sent then meets TCP backpressure, not an outbox that grows."""

_C = TypeVar("_C", bound="Connection")


class PongWaiter:
    """What :meth:`Connection.ping` returns: waits for the matching pong.

    Like :class:`threading.Event`, but :meth:`wait` returns the round-trip time.
    """

    __slots__ = ("_event", "_exc", "_latency", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self._event = threading.Event()
        self._latency = 0.0
        self._exc: BaseException | None = None

    def is_set(self) -> bool:
        """Return whether the pong arrived (or the connection closed)."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> float:
        """Wait for the pong; return the round-trip time in seconds.

        Args:
            timeout: Seconds to wait at most, or ``None`` to wait as long as it takes.

        Raises:
            TimeoutError: No pong came within ``timeout``.
            ConnectionClosed: The connection closed before the pong came.
        """
        if not self._event.wait(timeout):
            raise TimeoutError("no pong received in time")
        if self._exc is not None:
            raise self._exc
        return self._latency

    def _set(self, latency: float) -> None:
        self._latency = latency
        self._event.set()

    def _fail(self, exc: BaseException) -> None:
        self._exc = exc
        self._event.set()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class Connection(ConnectionInfo):
    """An open WebSocket connection over a blocking socket, client or server.

    Obtained from :func:`blazews.sync.connect` or passed to the handler of
    :func:`blazews.sync.serve`; not built directly. Every method may be called from
    any thread; two threads may not wait for messages at the same time.

    Args:
        sock: The connected socket (plain or TLS).
        protocol: The sans-I/O protocol object, still ``CONNECTING``.
        ping_interval: Seconds between keepalive pings, or ``None`` for none.
        ping_timeout: Seconds a keepalive ping may wait for its pong before the
            connection fails with 1011, or ``None``.
        close_timeout: Seconds the closing handshake may take, or ``None``.
        max_queue: Received messages buffered before the reader thread pauses.

    Attributes:
        socket: The underlying socket.
        protocol: The sans-I/O protocol object underneath.
        request: The opening handshake request.
        response: The opening handshake response.
        latency: The round-trip time of the last answered ping, in seconds (0 before).
    """

    def __init__(
        self, sock: socket.socket, protocol: Protocol, options: ConnectionOptions = _DEFAULTS
    ) -> None:
        self.protocol = protocol
        protocol.mask_later = _MASK_PIECE + 1
        self.options = options
        self.id = next_id()  # in its log records
        tracers = debug_tracers(options.logger, protocol.side, self.id)
        if tracers is not None:  # DEBUG logging: see blazews._logging
            sock = cast(socket.socket, TracedSocket(sock, *tracers))
        self.socket = sock
        self.max_queue = options.max_queue
        self.request: Request | None = None
        self.response: Response | None = None
        self.latency = 0.0
        try:
            self._local_address: Any = sock.getsockname()
            self._remote_address: Any = sock.getpeername()
        except OSError:
            self._local_address = self._remote_address = None
        # Everything below is guarded by _cond (the protocol object too).
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Message] = collections.deque()
        self._receiving = False  # a thread waits in recv / read_message[_into]
        self._reader_paused = False
        self._handshake_event: Any = None
        self._pings: dict[bytes, PongWaiter] = {}
        self._outbox: list[Any] = []
        self._produced = 0  # chunks put in the outbox since the start
        self._written = 0  # chunks written (or dropped after a write error)
        self._writing = False  # a thread is writing a batch
        self._write_error: BaseException | None = None
        self._write_error_at = 0  # chunks written before the write error
        self._aborted = False
        self._half_closed = False
        self._finished = False  # the reader thread is done and the socket closed
        self._rbuf = bytearray(RECV_BUFFER_SIZE)
        self._reader: threading.Thread | None = None
        self._keepalive_thread: threading.Thread | None = None
        self._closed_event = threading.Event()

    # -- core glue (callers hold _cond) -----------------------------------------------

    def _absorb(self) -> None:
        """Move the core's output to the outbox and dispatch its events."""
        protocol = self.protocol
        out = protocol.data_to_send()
        if out:
            self._outbox.extend(out)
            self._produced += len(out)
        events = protocol.events_received()
        if not events:
            if protocol.state is not State.OPEN:
                self._cond.notify_all()  # wake readers: no more messages may come
            return
        queue = self._queue
        for event in events:
            kind = type(event)
            if kind is Message:
                queue.append(event)
            elif kind is Pong:
                self._pong(event.data)
            elif kind is not Ping:
                self._handshake_event = event
        self._cond.notify_all()

    def _pong(self, data: bytes) -> None:
        if data not in self._pings:
            return
        now = time.monotonic()
        for payload in list(self._pings):
            waiter = self._pings.pop(payload)
            waiter._set(now - waiter.sent_at)
            if payload == data:
                self.latency = now - waiter.sent_at
                break

    # -- writing ---------------------------------------------------------------------

    def _write_chunks(self, chunks: list[Any]) -> None:
        if len(chunks) == 1 and type(chunks[0]) is not MaskLater:
            self.socket.sendall(chunks[0])
            return
        start = 0
        for i, chunk in enumerate(chunks):
            if type(chunk) is MaskLater:
                self._write_plain(chunks[start:i])
                self._write_masked(chunk)
                start = i + 1
        self._write_plain(chunks[start:] if start else chunks)

    def _write_masked(self, frame: MaskLater) -> None:
        """Write a client frame whose payload is masked on the way, piece by piece."""
        buf = _SEND_PIECES.get(_MASK_PIECE)
        pieces = frame.pieces(buf)
        try:
            for piece in pieces:
                self.socket.sendall(piece)
        finally:
            pieces.close()  # (a failed write left it holding a view of buf)
            _SEND_PIECES.put(buf)

    def _write_plain(self, chunks: list[Any]) -> None:
        sock = self.socket
        if len(chunks) <= 1:
            if chunks:
                sock.sendall(chunks[0])
            return
        if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
            for chunk in chunks:
                sock.sendall(chunk)
            return
        views = [memoryview(chunk).cast("B") for chunk in chunks]
        while views:
            sent = sock.sendmsg(views[:_IOV_MAX])
            while sent:
                first = len(views[0])
                if sent >= first:
                    sent -= first
                    del views[0]
                else:
                    views[0] = views[0][sent:]
                    sent = 0
            while views and not len(views[0]):
                del views[0]

    def _write_batch_locked(self) -> None:
        """Write the whole outbox; called with _cond held, no writer active."""
        if self._write_error is not None or self._finished:
            self._drop_outbox_locked()
            return
        chunks = self._outbox
        self._outbox = []
        self._writing = True
        error: BaseException | None = None
        self._cond.release()
        try:
            self._write_chunks(chunks)
        except (OSError, ValueError) as exc:
            error = exc
        finally:
            self._cond.acquire()
            self._writing = False
            self._written += len(chunks)
            if error is not None and self._write_error is None:
                self._write_error = error
                self._write_error_at = self._written - len(chunks)
                self._drop_outbox_locked()
                self._shutdown(socket.SHUT_RDWR)
            self._cond.notify_all()

    def _drop_outbox_locked(self) -> None:
        """Give up on the outbox: the connection can no longer be written to."""
        if not self._outbox:
            return
        if self._write_error is None:
            self._write_error = ConnectionResetError(
                "connection closed before the data was written"
            )
            self._write_error_at = self._written
        self._written += len(self._outbox)
        self._outbox = []

    def _flush_locked(self, target: int | None = None, timeout: float | None = None) -> bool:
        """Write the outbox up to chunk ``target`` (all of it if ``None``), and what
        other threads queued meanwhile; called with _cond held.

        Returns:
            Whether the chunks up to ``target`` were written (``False`` after a
            write error that lost some of them, or a timeout).
        """
        if target is None:
            target = self._produced
        deadline = _deadline(timeout)
        while self._written < target or (self._outbox and not self._writing):
            if self._writing:
                remaining = _remaining(deadline)
                if remaining == 0.0:
                    return False
                self._cond.wait(remaining)
            else:
                self._write_batch_locked()
        return self._write_error is None or target <= self._write_error_at

    def _flush_nowait(self) -> None:
        """Write the outbox unless another thread is writing (it will write it), but
        for more than :data:`READER_BACKLOG` chunks: then wait for that write and
        write them (the reader stops reading meanwhile, which bounds the pongs a
        ping flood can queue while a send is blocked)."""
        with self._cond:
            if self._outbox and (not self._writing or len(self._outbox) > READER_BACKLOG):
                self._flush_locked()

    def _shutdown(self, how: int) -> None:
        try:
            self.socket.shutdown(how)
        except (OSError, ValueError):
            pass

    def _abort(self) -> None:
        """Drop the TCP connection: the reader thread sees the end and finishes."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
        self._shutdown(socket.SHUT_RDWR)

    # -- the opening handshake (before the reader thread starts) -----------------------

    def _read_handshake(self, deadline: float | None) -> Any:
        """Receive until the core reports the handshake request or response.

        Returns:
            The handshake event, or ``None`` if the peer closed the connection or
            sent something the core rejected.

        Raises:
            TimeoutError: The deadline passed.
        """
        view = memoryview(self._rbuf)
        while self._handshake_event is None:
            remaining = _remaining(deadline)
            if remaining == 0.0:
                raise TimeoutError("timed out during the opening handshake")
            self.socket.settimeout(remaining)
            n = self._receive(view)
            with self._cond:
                self._flush_locked()
            if self._handshake_event is None and (
                not n or getattr(self.protocol, "handshake_exc", None) is not None
            ):
                return None
        return self._handshake_event

    def _receive(self, view: memoryview) -> int:
        """Receive once and feed the core; return the byte count, 0 at the end.

        Raises:
            TimeoutError: The socket's timeout expired.
        """
        try:
            n = self.socket.recv_into(view)
        except TimeoutError:
            raise
        except (OSError, ValueError):
            n = 0
        with self._cond:
            if n:
                self.protocol.receive_data(view[:n])
            else:
                self.protocol.receive_eof()
            self._absorb()
        return n

    def _start(self) -> None:
        """Start the reader (and keepalive) threads once the connection is open."""
        self.socket.settimeout(None)
        name = f"blazews-reader-{self._remote_address}"
        self._reader = threading.Thread(target=self._read_loop, name=name, daemon=True)
        self._reader.start()
        if self.options.ping_interval is not None:
            self._keepalive_thread = threading.Thread(
                target=self._keepalive, name="blazews-keepalive", daemon=True
            )
            self._keepalive_thread.start()

    # -- the reader thread -------------------------------------------------------------

    def _read_loop(self) -> None:
        sock = self.socket
        protocol = self.protocol
        cond = self._cond
        view = memoryview(self._rbuf)
        closing_deadline: float | None = None
        try:
            while True:
                try:
                    n = self._receive(view)
                except TimeoutError:
                    break  # the closing handshake took too long
                self._flush_nowait()
                if not n:
                    break
                if protocol.state is not State.OPEN:
                    if closing_deadline is None:
                        closing_deadline = _deadline(self.options.close_timeout)
                    if protocol.close_transport() and not self._half_closed:
                        with cond:
                            self._flush_locked(timeout=_remaining(closing_deadline))
                            self._half_closed = True
                        self._shutdown(socket.SHUT_WR)
                    remaining = _remaining(closing_deadline)
                    if remaining == 0.0:
                        break
                    sock.settimeout(remaining)
                    continue
                with cond:
                    if len(self._queue) >= self.max_queue:
                        self._reader_paused = True
                        while (
                            self._reader_paused
                            and protocol.state is State.OPEN
                            and not self._aborted
                        ):
                            cond.wait()
                        self._reader_paused = False
        except Exception:  # pragma: no cover - a bug; never leave the connection hanging
            self.logger.exception("reader thread failed")
        finally:
            self._finish()

    def _finish(self) -> None:
        self._shutdown(socket.SHUT_RDWR)
        with self._cond:
            self.protocol.receive_eof()
            self._absorb()
            self._finished = True
            while self._writing:
                self._cond.wait(0.1)
            self._drop_outbox_locked()
            exc = self.protocol.close_exc()
            for waiter in self._pings.values():
                waiter._fail(exc)
            self._pings.clear()
            self._cond.notify_all()
        try:
            self.socket.close()
        except OSError:  # pragma: no cover
            pass
        self._closed_event.set()

    def _keepalive(self) -> None:
        assert self.options.ping_interval is not None
        while not self._closed_event.wait(self.options.ping_interval):
            try:
                waiter = self.ping()
            except ConnectionClosed:
                return
            if self.options.ping_timeout is None:
                continue
            try:
                waiter.wait(self.options.ping_timeout)
            except TimeoutError:
                self.logger.info("keepalive ping timed out; closing the connection")
                with self._cond:
                    if self.protocol.state is State.OPEN:
                        self.protocol.fail(1011, "keepalive ping timeout")
                    self._absorb()
                    self._flush_locked(timeout=self.options.close_timeout)
                self._abort()
                return
            except ConnectionClosed:
                return

    # -- receiving -------------------------------------------------------------------

    def _take(self, timeout: float | None, room: int | None = None) -> Message:
        """Wait for the next message and dequeue it.

        Args:
            timeout: Seconds to wait at most, or ``None``.
            room: Leave the message queued and raise :class:`BufferTooSmall` if it
                is longer than this.
        """
        queue = self._queue
        deadline = _deadline(timeout)
        with self._cond:
            if self._receiving:
                raise ConcurrencyError("another thread is already waiting for the next message")
            self._receiving = True
            try:
                while not queue:
                    if not self.protocol.receiving or self._finished:
                        raise self.protocol.close_exc()
                    remaining = _remaining(deadline)
                    if remaining == 0.0:
                        raise TimeoutError("no message received in time")
                    self._cond.wait(remaining)
                message = queue[0]
                if room is not None and len(message.data) > room:
                    raise BufferTooSmall(len(message.data), room)
                queue.popleft()
                if self._reader_paused and len(queue) <= self.max_queue // 4:
                    self._reader_paused = False
                    self._cond.notify_all()
            finally:
                self._receiving = False
        return message

    def recv(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: Seconds to wait at most, or ``None`` to wait as long as it takes.

        Raises:
            ConnectionClosed: The connection is closed (its ``__cause__`` is the
                protocol error, if the peer broke the protocol).
            TimeoutError: No message came within ``timeout``.
            ConcurrencyError: Another thread is already waiting for a message.
        """
        message = self._take(timeout)
        if message.type == 1:
            return message.data.decode()
        return message.data

    def read_message(self, timeout: float | None = None) -> tuple[MessageType, bytes]:
        """Return the next message as ``(MessageType, payload bytes)``.

        Raises:
            ConnectionClosed, TimeoutError, ConcurrencyError: As for :meth:`recv`.
        """
        message = self._take(timeout)
        return _TYPES[message.type], message.data

    def read_message_into(
        self, buf: Buffer, timeout: float | None = None
    ) -> tuple[MessageType, int]:
        """Copy the next message into ``buf`` and return ``(MessageType, length)``.

        Args:
            buf: Any writable buffer: bytearray, memoryview, numpy array...
            timeout: Seconds to wait at most, or ``None``.

        Raises:
            BufferTooSmall: ``buf`` is smaller than the message; the message stays
                queued and the next call gets it.
            ConnectionClosed, TimeoutError, ConcurrencyError: As for :meth:`recv`.
        """
        view = memoryview(buf)
        if view.readonly:
            raise TypeError("read_message_into needs a writable buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        message = self._take(timeout, len(view))
        n = len(message.data)
        view[:n] = message.data
        return _TYPES[message.type], n

    def __iter__(self) -> Iterator[str | bytes]:
        """Iterate over incoming messages until the connection closes.

        Ends on a normal closure (1000 or 1001 both ways).

        Raises:
            ConnectionClosedError: The connection closed abnormally.
        """
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    # -- sending ---------------------------------------------------------------------

    def _raise_write_failed(self) -> None:
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(self.options.close_timeout)
        with self._cond:
            self.protocol.receive_eof()
            exc = self.protocol.close_exc()
        raise exc from self._write_error

    def send(self, data: Data, *, compress: bool = True) -> None:
        """Send a message: ``str`` as text, any bytes-like object as binary.

        ``compress=False`` sends it uncompressed even when permessage-deflate is in use.

        Blocks until the message is written to the socket. Thread-safe: messages
        sent from several threads are never interleaved.

        Raises:
            ConnectionClosed: The connection is closed or closing, or the write failed.
            TypeError: ``data`` is neither ``str`` nor bytes-like.
        """
        if not isinstance(data, (str, bytes, bytearray)):
            try:
                view = memoryview(data)
            except TypeError:
                raise TypeError("data must be str or a bytes-like object") from None
            data = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        with self._cond:
            self.protocol.send_data(data, compress=compress)
            self._absorb()
            written = self._flush_locked()
        if not written:
            self._raise_write_failed()

    def ping(self, data: bytes | str | None = None) -> PongWaiter:
        """Send a ping; return a :class:`PongWaiter` whose ``wait()`` gives the
        round-trip time in seconds.

        A pong answers its ping and every earlier one (RFC 6455 §5.5.3).

        Args:
            data: The payload (at most 125 bytes); 4 random bytes if ``None``.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            ConcurrencyError: A ping with the same payload is already waiting.
        """
        if data is None:
            payload = os.urandom(4)
        else:
            payload = data.encode() if isinstance(data, str) else bytes(data)
        with self._cond:
            while data is None and payload in self._pings:
                payload = os.urandom(4)
            if payload in self._pings:
                raise ConcurrencyError("a ping with the same payload is already waiting")
            self.protocol.send_ping(payload)
            waiter = PongWaiter(time.monotonic())
            self._pings[payload] = waiter
            self._absorb()
            written = self._flush_locked()
        if not written:
            self._raise_write_failed()
        return waiter

    # -- closing ---------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and close the socket.

        Waits at most ``close_timeout`` for the peer, then drops the connection.
        Calling it on a closed connection does nothing.

        Raises:
            ValueError: The code may not be sent, or the reason is too long.
        """
        deadline = _deadline(self.options.close_timeout)
        with self._cond:
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(code, reason)
                self._absorb()
                self._cond.notify_all()  # wake a paused reader thread
            if not self._finished:
                self._flush_locked(timeout=self.options.close_timeout)
        reader = self._reader
        if reader is None:
            self._shutdown(socket.SHUT_RDWR)
            self.socket.close()
            return
        if reader is threading.current_thread():  # pragma: no cover - not from the reader
            return
        reader.join(_remaining(deadline))
        if reader.is_alive():
            self._abort()
            reader.join()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------

    def _transport_closed(self) -> bool:
        return self._closed_event.is_set()

    @property
    def local_address(self) -> Any:
        """The local socket address."""
        return self._local_address

    @property
    def remote_address(self) -> Any:
        """The peer's socket address."""
        return self._remote_address
