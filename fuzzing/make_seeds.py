"""Write the seed corpora: ``python fuzzing/make_seeds.py``.

Seeds are a few valid inputs per target, in each target's input format (see the
targets' ``test_one_input``), so that mutation starts from streams the code accepts.
The files are committed; this script says how they were made and remakes them.
Crash inputs kept beside them (``crash-*``) are not touched.
"""

from __future__ import annotations

import struct
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


def main() -> None:
    for target, seeds in (
        ("frames", frames_seeds()),
        ("utf8", utf8_seeds()),
        ("http", http_seeds()),
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
