"""A node of the cross-process hub tests: a blazews server whose connections use a
RedisHub. ``python -m tests.hub_node PORT REDIS_URL``. A client sends commands:
``sub TOPIC`` (answered ``subscribed``), ``pub TOPIC COUNT TAG`` (publishes
``TAG:0`` ... ``TAG:COUNT-1``, then answers ``published``)."""

from __future__ import annotations

import asyncio
import sys

import blazews


async def main(port: int, url: str) -> None:
    async with blazews.RedisHub(url, prefix="test:", timeout=10) as hub:

        async def handler(conn: blazews.ServerConnection) -> None:
            async for message in conn:
                assert isinstance(message, str)
                cmd, _, rest = message.partition(" ")
                if cmd == "sub":
                    hub.subscribe(conn, rest)
                    await conn.send("subscribed")
                elif cmd == "pub":
                    topic, count, tag = rest.split(" ")
                    for i in range(int(count)):
                        await hub.publish(topic, f"{tag}:{i}")
                    await conn.send("published")

        async with blazews.serve(handler, "127.0.0.1", port, ping_interval=None) as server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
