"""A chat room: every message a client sends goes to everyone connected.

Try it with two terminals running ``python -m blazews connect ws://127.0.0.1:8765/``.
"""

import asyncio

import blazews

CLIENTS = set()


async def broadcast(message):
    """Send ``message`` to every client; one that has gone meanwhile is skipped."""
    for conn in list(CLIENTS):
        try:
            await conn.send(message)  # waits only while that client's buffer is full
        except blazews.ConnectionClosed:
            pass


async def chat(conn):
    CLIENTS.add(conn)
    name = f"{conn.remote_address[0]}:{conn.remote_address[1]}"
    await broadcast(f"* {name} joined ({len(CLIENTS)} here)")
    try:
        async for message in conn:
            await broadcast(f"{name}: {message}")
    finally:
        CLIENTS.discard(conn)
        await broadcast(f"* {name} left")


async def main():
    async with blazews.serve(chat, "127.0.0.1", 8765) as server:
        print(f"chat on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
