"""A market-data client on the callback fast path (Listener).

Each tick is decoded straight from the receive buffer (``payload`` is a borrowed
memoryview: no bytes object per message) and folded into a volume-weighted average
price. Start ``examples/market_data_feed.py`` first.
"""

import asyncio
import struct
import sys
import time

import blazews

TICK = struct.Struct("<QdI4x")


class VWAP(blazews.Listener):
    def on_connect(self, conn):
        self.ticks = 0
        self.notional = 0.0
        self.volume = 0
        self.last_seq = -1
        self.start = time.perf_counter()

    def on_message(self, conn, kind, payload):
        seq, price, size = TICK.unpack_from(payload)  # valid during this call only
        if seq != self.last_seq + 1:
            raise ValueError(f"tick {seq} after {self.last_seq}")  # closes with 1011
        self.last_seq = seq
        self.ticks += 1
        self.notional += price * size
        self.volume += size

    def on_close(self, conn, code, reason):
        elapsed = time.perf_counter() - self.start
        print(f"ticks: {self.ticks}")
        print(f"vwap: {self.notional / self.volume:.4f}")
        print(f"rate: {self.ticks / elapsed:,.0f} ticks/s")


async def main(count=100_000):
    url = f"ws://127.0.0.1:8765/?count={count}"
    conn, listener = await blazews.connect_listener(VWAP, url)
    await conn.wait_closed()
    assert listener.ticks == count, listener.ticks


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:2])))  # optional: how many ticks
