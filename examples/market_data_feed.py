"""A toy market-data feed: streams binary ticks to every client, as fast as it can.

Each tick is 24 bytes, little-endian: a sequence number (uint64), a price (float64)
and a size (uint32) plus 4 bytes of padding. A client asks for ``?count=N`` ticks
(default 100,000); the server sends them and closes. It is a Listener too: a send is
a plain call, and ``on_writable`` says when to go on once the client's buffer drains.
"""

import asyncio
import math
import struct
from urllib.parse import parse_qs, urlsplit

import blazews

TICK = struct.Struct("<QdI4x")


class Feed(blazews.Listener):
    def on_connect(self, conn):
        query = parse_qs(urlsplit(conn.request.path).query)
        self.left = int(query.get("count", ["100000"])[0])
        self.seq = 0
        self.pump(conn)

    def pump(self, conn):
        while self.left and not conn.is_writing_paused:
            price = 100.0 + math.sin(self.seq / 500) * 5
            conn.send(TICK.pack(self.seq, price, 100 + self.seq % 900))
            self.seq += 1
            self.left -= 1
        if not self.left:
            conn.close()

    def on_writable(self, conn):
        self.pump(conn)


async def main():
    async with blazews.serve_listener(Feed, "127.0.0.1", 8765) as server:
        print(f"feed on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
