"""Fuzz the frame parser and state machine: compiled against pure Python.

Each input becomes: a side (server receives masked frames, client unmasked ones), a
``max_message_size``, a SIMD level, a byte stream (raw fuzz bytes, or frames built
from the input with occasional defects), the cuts that split it into
``receive_data`` calls, an optional application call between two chunks
(``send_ping``, ``send_close``, ``send_binary``, ``fail``) and an optional end of
input. It runs on:

- the compiled core (``blazews.sansio._protocol_c``) with the C kernels at that level;
- the pure core (``blazews.sansio._protocol_py``) with the pure kernels
  (``blazews._kernels_py``; ``_protocol_py``'s kernel globals are rebound to them for
  good, and ``frames.validate_utf8``, which parses close frames for both, while the
  pure core runs).

Checked: nothing raises out of ``receive_data`` or ``receive_eof``; both give the same
events (types and payloads, payloads are ``bytes``), the same bytes to send once
unmasked (and every frame sent is well formed, masked exactly when the client sends
it), the same close frames, protocol error and state. Without an application call,
the same stream fed in one piece gives the same result as cut into chunks.

Run ``python fuzzing/fuzz_frames.py [corpus dirs] [-runs=N | -max_total_time=S]``.
"""

from __future__ import annotations

import contextlib
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _driver import Input, instrumented, main, split  # noqa: E402

with instrumented():
    from blazews import _kernels_py
    from blazews.exceptions import ConnectionClosed
    from blazews.sansio import _protocol_py, frames
    from blazews.sansio.states import Side

try:
    from blazews._native import _kernels as native
except ImportError:
    native = None
try:
    from blazews.sansio import _protocol_c
except ImportError:
    _protocol_c = None

LEVELS = list(native.available_levels()) if native is not None else []
SIZES = (None, 0, 1, 125, 126, 1024, 65536, 1 << 20)

# The pure run: pure codec and pure kernels.
_protocol_py.apply_mask = _kernels_py.apply_mask
_protocol_py.validate_utf8 = _kernels_py.validate_utf8
_protocol_py.Utf8Validator = _kernels_py.Utf8Validator
# The compiled run: compiled codec and C kernels, whatever BLAZEWS_NO_EXTENSIONS says.
if _protocol_c is not None and native is not None:
    _protocol_c.apply_mask = native.apply_mask
    _protocol_c.validate_utf8 = native.validate_utf8
    _protocol_c.Utf8Validator = native.Utf8Validator


@contextlib.contextmanager
def frames_utf8(validate: Any) -> Iterator[None]:
    saved = frames.validate_utf8
    frames.validate_utf8 = validate
    try:
        yield
    finally:
        frames.validate_utf8 = saved


def header(first: int, length: int, masked: bool, width: int) -> bytes:
    """A frame header; ``width`` 0 is the minimal length encoding, 1 forces 16 bits,
    2 forces 64 bits, 3 sets the 64-bit top bit."""
    bit = 0x80 if masked else 0
    if width == 0:
        width = 0 if length < 126 else 1 if length < 65536 else 2
    if width == 0:
        return bytes((first, bit | length))
    if width == 1 and length < 65536:
        return struct.pack("!BBH", first, bit | 126, length)
    if width == 3:
        length |= 1 << 63
    return struct.pack("!BBQ", first, bit | 127, length)


_OPCODES = (0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x0, 0x1, 0x2, 0x1)


def build_stream(inp: Input, side: Side) -> bytes:
    """Frames built from the input: mostly well formed, with occasional defects."""
    masked_dir = side is Side.SERVER  # a server receives masked frames
    parts = []
    for _ in range(inp.num(0, 12)):
        kind = inp.byte()
        opcode = _OPCODES[kind % len(_OPCODES)] if kind < 240 else kind & 0x0F
        flags = inp.byte()
        fin = not flags & 0x01 or opcode & 0x8
        rsv = (flags & 0x70) if flags & 0x80 else 0
        masked = masked_dir != bool(flags & 0x02 and flags & 0x08)
        width = (flags >> 2) & 3 if flags & 0x08 else 0
        body = inp.byte()
        if opcode == 0x8 and body & 0x80:  # a close payload: code and reason
            code = inp.num(0, 5000) if body & 0x40 else (1000, 1001, 1002, 1005, 1006)[body % 5]
            payload = struct.pack("!H", code) + inp.take(inp.num(0, 30))
        elif body & 0xE0 == 0xE0:  # text, cut anywhere
            payload = "hé€😀 z".encode()[: body & 0x1F] * inp.num(1, 40)
        elif body == 0xDF:  # a large payload
            payload = bytes(range(256)) * inp.num(1, 400)
        else:
            payload = inp.take(body % 140)
        first = (0x80 if fin else 0) | rsv | opcode
        if masked:
            key = inp.take(4).ljust(4, b"\x00")
            parts.append(header(first, len(payload), True, width) + key)
            parts.append(_kernels_py.apply_mask(payload, key))
        else:
            parts.append(header(first, len(payload), False, width) + payload)
        if flags & 0x04 and not flags & 0x08:  # sometimes truncate the last frame
            parts[-1] = parts[-1][: inp.num(0, len(parts[-1]))]
    return b"".join(parts)


def decode_sent(data: bytes, client: bool) -> list[tuple[int, bytes]]:
    """Parse what a protocol sent: well-formed frames, masked exactly when a client sends."""
    out = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 2, "truncated header in sent data"
        first, second = data[pos], data[pos + 1]
        assert bool(second & 0x80) == client, "wrong mask bit in sent frame"
        length = second & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            assert length >= 126, "non-minimal length in sent frame"
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            assert length >= 65536, "non-minimal length in sent frame"
            pos += 8
        key = b""
        if client:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + length]
        assert len(payload) == length, "truncated payload in sent data"
        pos += length
        if client:
            payload = _kernels_py.apply_mask(payload, key)
        if first & 0x08:
            assert first & 0x80 and length <= 125, "bad control frame sent"
        if first & 0x0F == 0x8 and length:
            code = struct.unpack_from("!H", payload)[0]
            assert frames.is_valid_close_code(code), f"close code {code} sent"
            assert length >= 2, "1-byte close payload sent"
            payload[2:].decode("utf-8")  # the reason is UTF-8
        out.append((first, payload))
    return out


def _act(protocol: Any, action: int) -> str:
    try:
        if action == 1:
            protocol.send_ping(b"ping")
        elif action == 2:
            protocol.send_close(1000, "bye")
        elif action == 3:
            protocol.send_binary(b"\x00" * 130)
        elif action == 4:
            protocol.fail(1011, "é" * 100)
        return "ok"
    except ConnectionClosed as exc:
        return type(exc).__name__


def _event(event: Any) -> tuple[Any, ...]:
    data = event.data
    assert type(data) is bytes, f"{type(event).__name__} payload is {type(data).__name__}"
    return type(event).__name__, getattr(event, "type", None), data


def run(
    cls: Any,
    side: Side,
    max_size: int | None,
    chunks: list[bytes],
    action: tuple[int, int],
    eof: bool,
) -> dict[str, Any]:
    """Feed ``chunks``; return everything observable."""
    protocol = cls(side, max_message_size=max_size)
    events: list[tuple[Any, ...]] = []
    sent = bytearray()
    acts = []
    for i, chunk in enumerate(chunks):
        protocol.receive_data(chunk)
        if action[0] and i == action[1]:
            acts.append(_act(protocol, action[0]))
        events.extend(_event(e) for e in protocol.events_received())
        for out in protocol.data_to_send():
            sent += out
    if eof:
        protocol.receive_eof()
        events.extend(_event(e) for e in protocol.events_received())
        for out in protocol.data_to_send():
            sent += out
    error = protocol.protocol_error
    close = (protocol.close_rcvd, protocol.close_sent)
    return {
        "events": events,
        "sent": decode_sent(bytes(sent), side is Side.CLIENT),
        "acts": acts,
        "state": int(protocol.state),
        "close": [None if c is None else (c.code, c.reason) for c in close],
        "close_rcvd_then_sent": protocol.close_rcvd_then_sent,
        "error": None if error is None else (type(error).__name__, error.close_code, str(error)),
        "receiving": protocol.receiving,
        "close_transport": protocol.close_transport(),
    }


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = [k for k in a if a[k] != b[k]]
    return "; ".join(f"{k}: {a[k]!r:.300} != {b[k]!r:.300}" for k in keys)


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    side = Side.CLIENT if flags & 0x01 else Side.SERVER
    max_size = SIZES[inp.num(0, len(SIZES) - 1)]
    eof = bool(flags & 0x04)
    action = (inp.num(0, 4), inp.num(0, 8)) if flags & 0x08 else (0, 0)
    cuts = inp.cuts(16, 300)
    stream = build_stream(inp, side) if flags & 0x02 else inp.rest()
    chunks = split(stream, cuts)

    with frames_utf8(_kernels_py.validate_utf8):
        pure = run(_protocol_py.Protocol, side, max_size, chunks, action, eof)
    if _protocol_c is not None and native is not None:
        native._set_level(LEVELS[(flags >> 4) % len(LEVELS)])
        with frames_utf8(native.validate_utf8):
            compiled = run(_protocol_c.Protocol, side, max_size, chunks, action, eof)
        assert compiled == pure, f"compiled != pure: {_diff(compiled, pure)}"
        if not action[0]:
            with frames_utf8(native.validate_utf8):
                whole = run(_protocol_c.Protocol, side, max_size, [stream], (0, 0), eof)
            assert whole == compiled, f"one piece != chunks: {_diff(whole, compiled)}"
    elif not action[0]:
        whole = run(_protocol_py.Protocol, side, max_size, [stream], (0, 0), eof)
        assert whole == pure, f"one piece != chunks: {_diff(whole, pure)}"


if __name__ == "__main__":
    main(test_one_input)
