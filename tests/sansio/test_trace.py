"""The debug tracer of a byte stream, :mod:`blazews.sansio.trace`."""

from __future__ import annotations

import pytest

from blazews.sansio.trace import StreamTracer, describe_frame
from tests.helpers import frame


def follow(*chunks: bytes) -> list[str]:
    lines: list[str] = []
    tracer = StreamTracer(lines.append)
    for chunk in chunks:
        tracer.feed(chunk)
    return lines


HEAD = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nAuthorization: Basic c2VjcmV0\r\n"
    b"Cookie: s=1\r\nX-Bytes: \x1b\xff\r\n\r\n"
)


def test_head_then_frames_with_credentials_masked() -> None:
    frames = (
        frame(0x1, b"hello", mask=b"abcd")
        + frame(0x2, b"x" * 300, fin=False)
        + frame(0x0, b"y" * 70000, rsv=0x40)
        + frame(0x8, b"\x03\xe8")
    )
    lines = follow(HEAD + frames)
    assert lines == [
        "GET /chat HTTP/1.1",
        "Host: h",
        "Authorization: ***",
        "Cookie: ***",
        "X-Bytes: \\x1b\\xff",
        "TEXT fin masked len=5",
        "BINARY len=300",
        "CONT fin rsv1 len=70000",
        "CLOSE fin len=2",
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_any_split_gives_the_same_lines(size: int) -> None:
    data = HEAD + frame(0x1, b"a" * 200, mask=b"abcd") + frame(0x9, b"") + frame(0x2, b"b" * 66000)
    whole = follow(data)
    assert follow(*(data[i : i + size] for i in range(0, len(data), size))) == whole
    assert whole[-3:] == ["TEXT fin masked len=200", "PING fin len=0", "BINARY fin len=66000"]


def test_describe_frame() -> None:
    assert describe_frame(0x7F, 0x80, 0) == "opcode 0xf rsv1 rsv2 rsv3 masked len=0"


def test_an_endless_head_is_given_up() -> None:
    lines = follow(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20000, b"more")
    assert lines == ["HTTP head too long; not followed"]
