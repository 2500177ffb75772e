"""A blocking client: no event loop, plain calls that return when done."""

from blazews import sync

with sync.connect("ws://127.0.0.1:8765/") as conn:
    for word in ["one", "two", "three"]:
        conn.send(word)
        print(conn.recv())
