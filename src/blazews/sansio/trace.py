"""What a connection's debug log says about the bytes that pass, without I/O.

:class:`StreamTracer` follows one direction of a connection's byte stream as a reader
would, apart from the protocol core: the HTTP head of the opening handshake line by
line, then each frame's header (opcode, flags, payload length), skipping payloads. A
front end makes one per direction only when its logger is enabled for ``DEBUG``, so
a connection logged at any other level pays nothing for it (not even a check per read).

Credentials never reach the log: the values of ``Authorization``,
``Proxy-Authorization``, ``Cookie`` and ``Set-Cookie`` are replaced by ``***``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["StreamTracer", "describe_frame"]

_OPCODES = {
    0x0: "CONT",
    0x1: "TEXT",
    0x2: "BINARY",
    0x8: "CLOSE",
    0x9: "PING",
    0xA: "PONG",
}
_SECRET_HEADERS = (b"authorization", b"proxy-authorization", b"cookie", b"set-cookie")
_MAX_HEAD = 65536  # past this, the head is not followed further (the parser refuses it)


def describe_frame(first: int, second: int, length: int) -> str:
    """A frame header in words: ``"TEXT fin rsv1 masked len=5"``.

    Args:
        first: The header's first byte (FIN, RSV1-3, opcode).
        second: Its second byte (MASK, the 7-bit length).
        length: The payload length.
    """
    opcode = first & 0x0F
    parts = [_OPCODES.get(opcode, f"opcode {opcode:#x}")]
    if first & 0x80:
        parts.append("fin")
    for bit, name in ((0x40, "rsv1"), (0x20, "rsv2"), (0x10, "rsv3")):
        if first & bit:
            parts.append(name)
    if second & 0x80:
        parts.append("masked")
    parts.append(f"len={length}")
    return " ".join(parts)


class StreamTracer:
    """Follows one direction of a connection and reports what passes.

    Args:
        report: Called with a line of description for each HTTP head line and each
            frame header.
    """

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report
        self._in_head = True
        self._head = bytearray()
        self._header = bytearray()  # an incomplete frame header
        self._skip = 0  # payload bytes of the current frame still to pass

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Follow ``data``, the next bytes of the stream."""
        view = memoryview(data).cast("B")
        pos = 0
        if self._in_head:
            pos = self._feed_head(view)
        n = len(view)
        while pos < n:
            if self._skip:
                step = min(self._skip, n - pos)
                self._skip -= step
                pos += step
                continue
            pos = self._feed_header(view, pos)

    def _feed_head(self, view: memoryview) -> int:
        start = len(self._head)
        self._head += view[: _MAX_HEAD - start]
        end = self._head.find(b"\r\n\r\n", max(0, start - 3))
        if end < 0:
            if len(self._head) >= _MAX_HEAD:
                self.report("HTTP head too long; not followed")
                self._in_head = False
                self._skip = 1 << 62
            return len(view)
        for line in bytes(self._head[:end]).split(b"\r\n"):
            self.report(_show_head_line(line))
        self._in_head = False
        used = end + 4 - start
        self._head = bytearray()
        return used

    def _feed_header(self, view: memoryview, pos: int) -> int:
        header = self._header
        # The first two bytes say how long the header is: 2, 4 or 10 bytes, plus 4
        # for a masking key.
        while len(header) < 2 and pos < len(view):
            header.append(view[pos])
            pos += 1
        if len(header) < 2:
            return pos
        size = 2 + {126: 2, 127: 8}.get(header[1] & 0x7F, 0) + (4 if header[1] & 0x80 else 0)
        take = min(size - len(header), len(view) - pos)
        header += view[pos : pos + take]
        pos += take
        if len(header) < size:
            return pos
        length = header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        self.report(describe_frame(header[0], header[1], length))
        self._skip = length
        self._header = bytearray()
        return pos


def _show_head_line(line: bytes) -> str:
    name, colon, _ = line.partition(b":")
    if colon and name.strip().lower() in _SECRET_HEADERS:
        line = name + b": ***"
    return line.decode("latin-1").encode("unicode_escape").decode("ascii")
