"""A blocking echo server: one thread per connection, no asyncio anywhere."""

from blazews import sync


def echo(conn):
    for message in conn:
        conn.send(message)


if __name__ == "__main__":
    with sync.serve(echo, "127.0.0.1", 8765) as server:
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        server.serve_forever()
