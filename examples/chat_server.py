"""A chat room: every message a client sends goes to everyone connected.

Try it with two terminals running ``python -m blazews connect ws://127.0.0.1:8765/``.
"""

import asyncio

import blazews


async def chat(conn):
    server = conn.server  # server.connections: everyone connected at the time
    name = f"{conn.remote_address[0]}:{conn.remote_address[1]}"
    # One frame built for all, written without waiting: a client that does not read
    # (its write buffer over write_limit) misses messages instead of slowing the room.
    blazews.broadcast(server.connections, f"* {name} joined ({len(server.connections)} here)")
    try:
        async for message in conn:
            blazews.broadcast(server.connections, f"{name}: {message}")
    finally:
        blazews.broadcast(server.connections, f"* {name} left")


async def main():
    async with blazews.serve(chat, "127.0.0.1", 8765) as server:
        print(f"chat on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
