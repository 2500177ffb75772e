"""Receive binary messages straight into a numpy array: no bytes object per message.

``read_message_into`` copies (and unmasks) the next message into any writable buffer,
here a preallocated float64 array. Run against the echo server
(``python examples/echo_server.py``, or ``python -m blazews echo``).
"""

import asyncio

import numpy as np

import blazews


async def main():
    sent = np.linspace(0.0, 1.0, 1024)  # 8 KiB of float64
    received = np.empty_like(sent)  # allocated once, reused for every message
    async with blazews.connect("ws://127.0.0.1:8765/") as conn:
        for step in range(100):
            await conn.send((sent * step).data)  # a buffer is sent as a binary message
            kind, n = await conn.read_message_into(received)
            assert kind is blazews.MessageType.BINARY and n == received.nbytes
            assert np.array_equal(received, sent * step)
        print(f"100 arrays of {received.nbytes} bytes received in place")
        print(f"last sum: {received.sum():.1f}")


if __name__ == "__main__":
    asyncio.run(main())
