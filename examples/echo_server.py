"""An asyncio echo server: every message goes back to its sender, text as text.

Run it, then ``python examples/echo_client.py`` in another terminal.
"""

import asyncio

import blazews


async def echo(conn):
    async for message in conn:  # str for a text message, bytes for a binary one
        await conn.send(message)


async def main():
    async with blazews.serve(echo, "127.0.0.1", 8765) as server:
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
