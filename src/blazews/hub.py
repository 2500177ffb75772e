"""Topics of connections: :class:`Hub` in one process, :class:`RedisHub` across many.

A hub maps topics to the connections subscribed to them; ``publish(topic, message)``
sends the message to each through :func:`blazews.broadcast` (framed once, slow
consumers under the hub's policy). A connection leaves every topic by itself when it
closes. :class:`Hub` keeps everything in this process. :class:`RedisHub` has the same
API and carries each message through Redis pub/sub to the hubs of every other
process (or host) using the same Redis server and prefix; blazews writes no broker.

:class:`RedisHub`, how:

- ``publish`` delivers to this process's subscribers first, at once, then publishes
  to the Redis channel ``prefix + topic``. If Redis cannot be reached it raises
  :class:`~blazews.HubUnavailable`: local delivery keeps working through an outage.
- Each hub listens on the pattern ``prefix*`` with its own connection and delivers
  what other hubs published to its local subscribers of that topic; its own
  messages, coming back, are dropped (they were delivered locally).
- Each message carries its hub's random id and a sequence number: a hub drops any
  message whose number it has already seen from that hub (no duplicate deliveries,
  even if a publish is retried), and counts gaps in :attr:`RedisHub.lost`. One
  connection publishes, in the order of the ``publish`` calls, so the messages of
  one hub keep their order everywhere.
- When the listening connection drops, the hub reconnects with exponential backoff
  and full jitter (the clients' :class:`~blazews.sansio.reconnect.Reconnect`). Redis
  pub/sub keeps nothing for a listener that is away: what other hubs published
  meanwhile is lost for this process (counted in ``lost``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .asyncio.broadcast import _connection, broadcast
from .exceptions import HubUnavailable
from .sansio.broadcast import DEFAULT_MAX_QUEUED, BroadcastResult, check_policy
from .sansio.reconnect import Reconnect

if TYPE_CHECKING:
    from ._typing import Data

__all__ = ["Hub", "RedisHub"]

logger = logging.getLogger("blazews.hub")

_HEAD = struct.Struct("!16sQB")  # hub id, sequence number, 1 text / 2 binary
_SEEN_MAX = 4096  # hubs whose last sequence number is kept


class Hub:
    """Topics of connections in this process: subscribe, unsubscribe, publish.

    Use it from the event loop of the connections. Any connection
    :func:`blazews.broadcast` takes may subscribe (coroutine connections and
    :class:`~blazews.ListenerConnection` handles); it leaves every topic when it
    closes.

    Args:
        slow, max_queued, close_code: The slow-consumer policy of every publish, as
            for :func:`blazews.broadcast`.
    """

    def __init__(
        self, *, slow: str = "skip", max_queued: int = DEFAULT_MAX_QUEUED, close_code: int = 1008
    ) -> None:
        check_policy(slow, max_queued, close_code)
        self._policy: dict[str, Any] = {
            "slow": slow,
            "max_queued": max_queued,
            "close_code": close_code,
        }
        self._subscribers: dict[str, dict[Any, None]] = {}  # topic -> ordered set
        self._topics: dict[Any, set[str]] = {}  # connection -> its topics

    def subscribe(self, conn: Any, topic: str) -> None:
        """Add ``conn`` to ``topic``'s subscribers (again: nothing changes)."""
        if not isinstance(topic, str):
            raise TypeError(f"topic must be str, not {topic!r}")
        topics = self._topics.get(conn)
        if topics is None:
            closed_future = getattr(_connection(conn), "_closed_future", None)
            if closed_future is None:
                raise TypeError(
                    f"a hub takes asyncio connections and Listener handles, not {conn!r}"
                )
            closed = closed_future()
            topics = self._topics[conn] = set()
            closed.add_done_callback(lambda _: self.unsubscribe(conn))
        topics.add(topic)
        self._subscribers.setdefault(topic, {})[conn] = None

    def unsubscribe(self, conn: Any, topic: str | None = None) -> None:
        """Remove ``conn`` from ``topic``, or from every topic if ``topic`` is ``None``."""
        topics = self._topics.get(conn)
        if topics is None:
            return
        for name in list(topics) if topic is None else [topic] if topic in topics else []:
            topics.discard(name)
            subscribers = self._subscribers.get(name)
            if subscribers is not None:
                subscribers.pop(conn, None)
                if not subscribers:
                    del self._subscribers[name]
        if not topics:
            del self._topics[conn]

    def subscribers(self, topic: str) -> list[Any]:
        """The connections subscribed to ``topic``, in the order they subscribed."""
        return list(self._subscribers.get(topic, ()))

    def topics(self, conn: Any | None = None) -> set[str]:
        """The topics with subscribers in this process, or those of ``conn``."""
        if conn is None:
            return set(self._subscribers)
        return set(self._topics.get(conn, ()))

    def deliver(self, topic: str, message: Data) -> BroadcastResult:
        """Send ``message`` to this process's subscribers of ``topic`` only."""
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return BroadcastResult()
        return broadcast(list(subscribers), message, **self._policy)

    async def publish(self, topic: str, message: Data) -> BroadcastResult:
        """Send ``message`` to every subscriber of ``topic``.

        Returns:
            What the delivery to this process's subscribers did.
        """
        return self.deliver(topic, message)

    async def start(self) -> None:
        """Start the hub (nothing to start for an in-process hub)."""

    async def close(self) -> None:
        """Stop the hub; subscriptions stay (nothing to stop for an in-process hub)."""

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class RedisHub(Hub):
    """A :class:`Hub` whose messages reach the subscribers of every process through
    Redis pub/sub (see the module's notes). Needs the ``redis`` package:
    ``pip install 'blazews[redis]'``.

    ``async with RedisHub(url) as hub:``, or ``await hub.start()`` and
    ``await hub.close()``.

    Args:
        url: The Redis server, ``redis://host:port/db`` (``rediss://`` for TLS).
        prefix: Channel names are ``prefix + topic``; hubs with the same Redis and
            prefix share their topics.
        timeout: Seconds a publish or a connection attempt may take before Redis
            counts as unreachable.
        initial_delay, max_delay: The bounds of the delays between attempts to
            listen again after a drop (each a random delay up to ``initial_delay``
            doubled per failure in a row, at most ``max_delay``; 0.1 s and 10 s).
        slow, max_queued, close_code: As for :class:`Hub`.

    Attributes:
        lost: Messages of other hubs known to be missed (gaps in their sequence
            numbers: published while this hub was not listening).

    Raises:
        ImportError: The ``redis`` package is not installed.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "blazews:",
        timeout: float = 2.0,
        initial_delay: float = 0.1,
        max_delay: float = 10.0,
        slow: str = "skip",
        max_queued: int = DEFAULT_MAX_QUEUED,
        close_code: int = 1008,
    ) -> None:
        super().__init__(slow=slow, max_queued=max_queued, close_code=close_code)
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise ImportError(
                "RedisHub needs the redis package: pip install 'blazews[redis]'"
            ) from None
        self._aioredis: Any = aioredis
        self._errors = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)
        self.url, self.prefix, self.timeout = url, prefix, timeout
        self._prefix_len = len(prefix.encode())
        # Every failure is retried; the count of failures in a row restarts at 0
        # once listening again (see _listen).
        self.backoff = Reconnect(
            initial_delay, max_delay, 2.0, float("inf"), process_exception=lambda exc: None
        )
        self.id = os.urandom(16)
        self._pid = os.getpid()
        self.lost = 0
        self._seq = 0
        self._seen: dict[bytes, int] = {}  # hub id -> last sequence number delivered
        # One connection publishes (in the order of the calls); a retried publish is
        # told apart by its sequence number.
        self._pub: Any = aioredis.Redis.from_url(
            url,
            single_connection_client=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closing = False

    def subscribe(self, conn: Any, topic: str) -> None:
        """As :meth:`Hub.subscribe`; starts the hub if it is not started (a hub made
        before the worker processes fork starts in each of them)."""
        super().subscribe(conn, topic)
        self._start_listening()

    def _start_listening(self) -> None:
        if self._pid != os.getpid():
            # Made before a fork: each process is a hub of its own, with its own id.
            self._pid = os.getpid()
            self.id = os.urandom(16)
            self._seq = 0
        if self._listener is None:
            self._closing = False
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    @property
    def connected(self) -> bool:
        """Whether the hub is listening to Redis now."""
        return self._listening.is_set()

    async def start(self) -> None:
        """Start listening; wait until the hub listens, for ``timeout`` at most.

        Raises:
            HubUnavailable: Redis could not be reached in time (the hub keeps
                trying in the background; local delivery works meanwhile).
        """
        self._start_listening()
        await self.wait_connected(self.timeout)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the hub listens to Redis.

        Raises:
            HubUnavailable: Not within ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except asyncio.TimeoutError:
            raise HubUnavailable(f"redis at {self.url} unreachable: not listening") from None

    async def close(self) -> None:
        """Stop listening and close the connections to Redis."""
        self._closing = True
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._listening.clear()
        await self._pub.aclose()

    async def publish(self, topic: str, message: Data) -> BroadcastResult:
        """Send ``message`` to the subscribers of ``topic`` in every process.

        This process's subscribers get it first, whatever Redis does. Starts the hub
        if it is not started.

        Returns:
            What the delivery to this process's subscribers did.

        Raises:
            HubUnavailable: Redis could not be reached: the other processes did not
                get the message.
        """
        self._start_listening()
        result = self.deliver(topic, message)
        if isinstance(message, str):
            kind, payload = 1, message.encode()
        else:
            kind, payload = 2, bytes(message)
        self._seq += 1
        data = _HEAD.pack(self.id, self._seq, kind) + payload
        try:
            await self._pub.publish(self.prefix + topic, data)
        except self._errors as exc:
            raise HubUnavailable(
                f"redis at {self.url} unreachable ({exc}): delivered in this process only"
            ) from exc
        return result

    # -- listening -------------------------------------------------------------------

    async def _listen(self) -> None:
        aioredis = self._aioredis
        while not self._closing:
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=self.timeout, socket_timeout=None
            )
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(self.prefix + "*")
                self._listening.set()
                self.backoff.failures = 0
                logger.info("hub listening on %s", self.url)
                while True:
                    item = await pubsub.get_message(timeout=None)
                    if item is not None and item.get("type") == "pmessage":
                        self._received(item["channel"], item["data"])
            except self._errors as exc:
                delay = self.backoff.failed(exc)
                if self._listening.is_set():
                    logger.warning("hub lost redis at %s (%s)", self.url, exc)
                self._listening.clear()
                logger.info("hub reconnecting to redis in %.2f s", delay)
                await asyncio.sleep(delay)
            finally:
                self._listening.clear()
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except self._errors:
                    pass

    def _received(self, channel: bytes, data: bytes) -> None:
        if len(data) < _HEAD.size:
            return
        hub, seq, kind = _HEAD.unpack_from(data)
        if hub == self.id:
            return  # ours: delivered locally when published
        last = self._seen.get(hub, 0)
        if seq <= last:
            return  # seen already
        if last and seq > last + 1:
            self.lost += seq - last - 1
        self._seen[hub] = seq
        if len(self._seen) > _SEEN_MAX:
            del self._seen[next(iter(self._seen))]  # the hub seen first: likely gone
        topic = channel[self._prefix_len :].decode(errors="replace")
        payload = data[_HEAD.size :]
        if topic in self._subscribers:
            self.deliver(topic, payload.decode() if kind == 1 else payload)
