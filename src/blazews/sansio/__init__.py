"""The sans-I/O protocol core: bytes in, events and bytes out; no sockets, no event loop."""
