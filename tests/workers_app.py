"""The server of the worker tests: ``python -m tests.workers_app WORKERS CLOSE_TIMEOUT
[REDIS_URL]``.

Serves on a free port with ``workers=WORKERS`` and prints the port; each connection
first gets its worker's process id, then an echo of what it sends. With REDIS_URL, a
RedisHub made before the workers fork serves them all: ``sub TOPIC`` subscribes the
connection (answered ``subscribed``), ``pub TOPIC TEXT`` publishes TEXT."""

from __future__ import annotations

import asyncio
import os
import sys

import blazews

HUB = blazews.RedisHub(sys.argv[3], prefix="workers:") if len(sys.argv) > 3 else None


async def handler(conn: blazews.ServerConnection) -> None:
    await conn.send(str(os.getpid()))
    async for message in conn:
        if HUB is not None and isinstance(message, str) and message.startswith("sub "):
            HUB.subscribe(conn, message[4:])
            await HUB.wait_connected(10)
            await conn.send("subscribed")
        elif HUB is not None and isinstance(message, str) and message.startswith("pub "):
            topic, _, text = message[4:].partition(" ")
            await HUB.publish(topic, text)
        else:
            await conn.send(message)


async def main(workers: int, close_timeout: float) -> None:
    async with blazews.serve(
        handler,
        "127.0.0.1",
        0,
        workers=workers,
        close_timeout=close_timeout,
        ping_interval=None,
    ) as server:
        print(server.port, flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
