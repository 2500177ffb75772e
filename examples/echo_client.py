"""An asyncio client for the echo server: sends text and bytes, prints the echoes."""

import asyncio

import blazews


async def main():
    async with blazews.connect("ws://127.0.0.1:8765/") as conn:
        await conn.send("hello")
        print(await conn.recv())  # hello
        await conn.send(b"\x00\x01\x02")
        print(await conn.recv())  # b'\x00\x01\x02'
        rtt = await (await conn.ping())
        print(f"round trip: {rtt * 1000:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
