"""Write the seed corpora: ``python fuzzing/make_seeds.py``.

Seeds are a few valid inputs per target, in each target's input format (see the
targets' ``test_one_input``), so that mutation starts from streams the code accepts.
The files are committed; this script says how they were made and remakes them.
Crash inputs kept beside them (``crash-*``) are not touched.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
KEY = b"\x37\xfa\x21\x3d"


def _mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def _frame(first: int, payload: bytes, masked: bool) -> bytes:
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    return head + (KEY + _mask(payload, KEY) if masked else payload)


def _stream(masked: bool) -> list[bytes]:
    text = "hé€😀".encode()
    return [
        _frame(0x81, b"hello", masked),
        _frame(0x82, bytes(range(200)), masked),
        _frame(0x01, text[:5], masked)
        + _frame(0x89, b"p", masked)
        + _frame(0x80, text[5:], masked),
        _frame(0x88, struct.pack("!H", 1000) + b"bye", masked),
        _frame(0x8A, b"", masked) + _frame(0x88, b"", masked),
        _frame(0x81, b"\xed\xa0\x80", masked),
    ]


def frames_seeds() -> dict[str, bytes]:
    seeds = {}
    for side, masked in ((0x00, True), (0x01, False)):
        for i, stream in enumerate(_stream(masked)):
            # flags (raw stream, side), size index 0 (no limit), cuts: 2 of 3 and 7 bytes
            seeds[f"raw-{side}-{i}"] = bytes((side, 0, 2, 3, 7)) + stream
        # structured: flags, size, 1 cut of 10 bytes, 3 frames from the builder
        seeds[f"built-{side}"] = bytes((0x02 | side, 5, 1, 10, 3, 1, 0, 0xE8, 2, 0, 40)) + bytes(
            range(60)
        )
        # with an application call (send_close) after the first chunk, and the end of input
        seeds[f"act-{side}"] = bytes((0x0C | side, 0, 2, 0, 1, 4)) + _stream(masked)[2]
    return seeds


def utf8_seeds() -> dict[str, bytes]:
    texts = [
        b"hello",
        "hé€😀 — ascii and more".encode(),
        "日本語のテキスト".encode() * 4,
        b"\xed\xa0\x80",  # surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xe0\x80\xaf",  # overlong
        b"abc\xf0\x9f\x98",  # truncated
        b"a" * 70 + "é".encode() * 40,
    ]
    seeds = {}
    for i, text in enumerate(texts):
        # flags (level, buffer type), cuts: 2 chunks of 1 and 3 bytes
        seeds[f"text-{i}"] = bytes((i % 8, 2, 1, 3)) + text
    return seeds


REQUEST = (
    b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
RESPONSES = [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!",
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\n\r\nbody until eof",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]


def http_seeds() -> dict[str, bytes]:
    seeds = {}
    # flags: bit 0 response parser, bit 1 feed_eof; limits indexes; cuts
    seeds["request"] = bytes((0x00, 0, 0, 0, 2, 5, 20)) + REQUEST
    seeds["request-leftover"] = bytes((0x00, 0, 0, 0, 0)) + REQUEST + b"\x81\x80abcd"
    for i, response in enumerate(RESPONSES):
        seeds[f"response-{i}"] = bytes((0x03, 0, 0, 0, 3, 1, 9, 30)) + response
    return seeds


class Writer:
    """Encodes values the way ``_driver.Input`` decodes them."""

    def __init__(self) -> None:
        self.out = bytearray()

    def num(self, lo: int, hi: int, value: int) -> Writer:
        assert lo <= value <= hi
        if hi - lo + 1 > 256:
            self.out += (value - lo).to_bytes(2, "big")
        else:
            self.out.append(value - lo)
        return self

    def byte(self, value: int) -> Writer:
        return self.num(0, 255, value)

    def cuts(self, most: int, longest: int, cuts: list[int]) -> Writer:
        self.num(0, most, len(cuts))
        for n in cuts:
            self.num(0, longest, n)
        return self

    def raw(self, data: bytes) -> Writer:
        self.out += data
        return self


# fuzz_frame_reader: methods, buffer kinds (index into its _KINDS) and sizes (its CAPS)
FRAME, INTO, MESSAGE = 0, 1, 2
BYTEARRAY, VIEW, WORDS, MIDDLE, READONLY, STRIDED = 0, 2, 3, 4, 6, 7
CAPS = (0, 1, 2, 5, 125, 126, 127, 1000, 4096, 4097, 16384, 16400, 70000, 1 << 20)


def _op(w: Writer, method: int, kind: int = BYTEARRAY, cap: int = 1000, retry: bool = True) -> None:
    b = next(
        b for b in range(256) if b % 3 == method and (b >> 3) & 7 == kind and bool(b & 4) == retry
    )
    w.byte(b).num(0, len(CAPS) - 1, CAPS.index(cap))


def _reader_input(
    flags: int, limit: int, every: int, ops: list[tuple[int, int, int, bool]], cuts: list[int]
) -> Writer:
    w = Writer().byte(flags).num(0, 7, limit).num(0, 3, every).num(1, 12, len(ops))
    for op in ops:
        _op(w, *op)
    return w.cuts(16, 300, cuts)


def frame_reader_seeds() -> dict[str, bytes]:
    seeds = {}
    text = "hé€😀".encode()
    for masked in (False, True):
        m = int(masked)
        fragmented = (
            _frame(0x01, text[:5], masked)
            + _frame(0x89, b"p", masked)
            + _frame(0x80, text[5:], masked)
        )
        # messages into buffers too small, then large enough; a frame; the close
        stream = (
            fragmented
            + _frame(0x82, bytes(range(200)), masked)
            + _frame(0x8A, b"", masked)
            + _frame(0x88, struct.pack("!H", 1000) + b"bye", masked)
        )
        ops = [(INTO, BYTEARRAY, 1, True), (INTO, MIDDLE, 126, True), (FRAME, VIEW, 1000, True)]
        ops += [(MESSAGE, BYTEARRAY, 0, False), (MESSAGE, BYTEARRAY, 0, False)]
        seeds[f"raw-{m}-messages"] = _reader_input(0x00, 0, 0, ops, [3, 7]).raw(stream).out
        # frames, some into small or refused buffers; on_control raising at each ping
        ops = [(FRAME, WORDS, 2, False), (FRAME, READONLY, 1000, True), (FRAME, BYTEARRAY, 5, True)]
        ops += [(INTO, STRIDED, 1000, True), (INTO, VIEW, 4096, True), (MESSAGE, 0, 0, False)]
        seeds[f"raw-{m}-frames"] = _reader_input(0x00, 3, 1, ops, [1, 1, 2]).raw(fragmented).out
        # the size limit, invalid UTF-8 cut between frames, a truncated stream
        stream = _frame(0x81, b"ok", masked) + _frame(0x01, b"\xed", masked)
        stream += _frame(0x80, b"\xa0\x80", masked) + _frame(0x82, b"x" * 300, masked)[:100]
        ops = [(INTO, BYTEARRAY, 1000, True)] * 3 + [(FRAME, BYTEARRAY, 1000, True)] * 2
        seeds[f"raw-{m}-errors"] = _reader_input(0x00, 5, 0, ops, []).raw(stream).out
    # built: unmasked, masked, mixed; a large payload (body 0xDF), text cut anywhere (0xE0+)
    for masking in (0, 1, 2):
        flags = 0x01 | masking << 1 | (0x08 if masking == 2 else 0)  # 0x08: a buffer pool
        w = _reader_input(flags, 7, 2, [(INTO, BYTEARRAY, 4096, True)] * 3, [])
        key = b"KEY!" if masking else b""  # flags 0x02: masked when the masking is mixed
        w.num(0, 10, 4)
        w.byte(1).byte(0x02).byte(0xDF).num(0, 7, 7).raw(key)  # binary, 70000 bytes
        w.byte(4).byte(0x02).byte(3).raw(b"pin").raw(key)  # ping
        w.byte(0).byte(0x03).byte(0xE5).num(1, 60, 5).num(0, 400, 13).raw(key)  # text
        w.byte(2).byte(0x02).byte(0xE0).num(1, 60, 1).num(0, 400, 3).raw(key)  # continuation
        seeds[f"built-{masking}"] = w.out
    return seeds


# fuzz_inflate: flushes and strategies (indexes into its _FLUSHES, _STRATEGIES)
NO_FLUSH, SYNC, FULL, BLOCK = 0, 1, 2, 3
JSON = b'{"type":"message","channel":"general","text":"hello there"}'


def _deflated(data: bytes, wbits: int = 15) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _made(
    w: Writer, kind: int, text: bytes, repeat: int, pieces: list[int], frames: list[int]
) -> None:
    """One message in fuzz_inflate's made format (pieces: cut lengths; each flushed)."""
    w.byte(kind).num(0, 300, len(text)).raw(text).num(1, 40, repeat)
    if kind & 0x0E == 0x0C:  # uncompressed: only the frames
        w.cuts(4, 200, frames)
        return
    w.cuts(4, 300, pieces)
    for i in range(len(pieces)):
        w.num(0, 4, (SYNC, NO_FLUSH, FULL, BLOCK)[i % 4])
    w.cuts(6, 400, frames)


def inflate_seeds() -> dict[str, bytes]:
    seeds = {}
    # flags (bit 0 no context takeover, bit 1 made, bit 2 mutated), window bits, backend,
    # size limit index; level, memLevel, strategy, messages
    w = Writer().byte(0x02).num(8, 15, 15).byte(0).byte(0).num(0, 9, 6).num(1, 9, 8).byte(0)
    w.num(1, 4, 3)
    _made(w, 0x00, JSON, 3, [40, 70], [10, 0, 50])
    _made(w, 0x01, JSON, 2, [], [])  # refers to the first message
    _made(w, 0x0C, b"plain", 1, [], [2])  # uncompressed
    seeds["made-takeover"] = w.out
    w = Writer().byte(0x03).num(8, 15, 12).byte(1).byte(5).num(0, 9, 1).num(1, 9, 5).byte(1)
    w.num(1, 4, 2)
    _made(w, 0x80, bytes(range(256)), 20, [300], [3, 3])  # full flush at the end
    _made(w, 0x01, JSON, 40, [5], [300])
    seeds["made-no-takeover"] = w.out
    w = Writer().byte(0x02).num(8, 15, 8).byte(2).byte(5).num(0, 9, 9).num(1, 9, 1).byte(4)
    w.num(1, 4, 2)
    _made(w, 0x60, b"window bits 8, fixed codes ", 9, [7], [20])  # ends with a final block
    _made(w, 0x00, b"then a new stream", 1, [], [])
    seeds["made-bits8-final"] = w.out
    w = Writer().byte(0x02).num(8, 15, 10).byte(1).byte(5).num(0, 9, 1).num(1, 9, 9).byte(3)
    w.num(1, 4, 1).byte(0x0E).cuts(6, 400, [100, 200])  # the bomb, over the 64 KiB limit
    seeds["made-bomb"] = w.out
    w = Writer().byte(0x06).num(8, 15, 15).byte(2).byte(0).num(0, 9, 6).num(1, 9, 8).byte(2)
    w.num(1, 4, 1)
    _made(w, 0x00, JSON, 4, [], [30])
    w.num(0, 65535, 0).num(0, 65535, 17).num(1, 255, 0x20)  # one byte changed
    seeds["made-mutated"] = w.out
    w = Writer().byte(0x00).num(8, 15, 15).byte(2).byte(4).num(1, 4, 3)
    for kind, payload in ((0x00, _deflated(JSON * 5)), (0x02, JSON), (0xF1, _deflated(b"a" * 500))):
        w.byte(kind).cuts(6, 40, [7, 3]).num(0, 2000, len(payload)).raw(payload)
    seeds["raw"] = w.out
    return seeds


def main() -> None:
    for target, seeds in (
        ("frames", frames_seeds()),
        ("utf8", utf8_seeds()),
        ("http", http_seeds()),
        ("frame_reader", frame_reader_seeds()),
        ("inflate", inflate_seeds()),
    ):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
