"""Fuzz the opening handshake's HTTP/1.1 parsers (``blazews.sansio.http11``).

Each input becomes a parser (``RequestParser`` or ``ResponseParser``), its limits,
whether the peer then closes (``feed_eof``), cuts, and the bytes. Checked:

- nothing but :class:`~blazews.exceptions.InvalidHandshake` comes out of ``feed`` or
  ``feed_eof`` (a request error carries 400, 414, 431 or 505);
- fed in chunks, the parser gives the same outcome as fed in one piece: the same
  request or response, the same bytes after it (``leftover`` plus what was not fed),
  or an error in both;
- an error sticks (the next ``feed`` raises it again); a finished parser refuses more
  bytes with ``RuntimeError``;
- a parsed request serializes, and parsing that gives the same request.

Run ``python fuzzing/fuzz_http.py [corpus dirs] [-runs=N | -max_total_time=S]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _driver import Input, instrumented, main, split  # noqa: E402

with instrumented():
    from blazews.exceptions import InvalidHandshake
    from blazews.sansio.http11 import Headers, Request, RequestParser, Response, ResponseParser

MAX_LINE = (8192, 16, 64, 200)
MAX_HEADERS = (128, 0, 1, 3)
MAX_BODY = (65536, 0, 4, 64)
REQUEST_STATUSES = {400, 414, 431, 505}


def _result(obj: Request | Response) -> tuple[Any, ...]:
    if isinstance(obj, Request):
        return ("request", obj.method, obj.path, obj.headers.items())
    return ("response", obj.status_code, obj.reason_phrase, obj.headers.items(), obj.body)


def parse(parser: Any, chunks: list[bytes], eof: bool) -> tuple[Any, ...]:
    """Feed ``chunks`` (then the end, if ``eof``); return the outcome."""
    try:
        for i, chunk in enumerate(chunks):
            result = parser.feed(chunk)
            if result is not None:
                rest = parser.leftover + b"".join(chunks[i + 1 :])
                try:
                    parser.feed(b"x")
                except RuntimeError:
                    pass
                else:
                    raise AssertionError("a finished parser accepted more bytes")
                return ("done", _result(result), rest)
        if eof:
            result = parser.feed_eof()
            return ("done at eof", _result(result), parser.leftover)
        return ("incomplete",)
    except InvalidHandshake as exc:
        if isinstance(parser, RequestParser):
            assert exc.status in REQUEST_STATUSES, f"request error with status {exc.status}"
        try:
            parser.feed(b"x")
        except InvalidHandshake as again:
            assert again is exc, "a failed parser raised a different error"
        else:
            raise AssertionError("a failed parser accepted more bytes") from exc
        return ("error",)


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    max_line = MAX_LINE[inp.num(0, 3)]
    max_headers = MAX_HEADERS[inp.num(0, 3)]
    max_body = MAX_BODY[inp.num(0, 3)]
    cuts = inp.cuts(16, 64)
    raw = inp.rest()
    eof = bool(flags & 0x02)

    def make() -> Any:
        if flags & 0x01:
            return ResponseParser(max_line, max_headers, max_body)
        return RequestParser(max_line, max_headers)

    whole = parse(make(), [raw], eof)
    chunked = parse(make(), split(raw, cuts), eof)
    assert whole == chunked, f"one piece gives {whole!r:.400}, chunks give {chunked!r:.400}"

    if whole[0] == "done" and whole[1][0] == "request":
        _, method, path, items = whole[1]
        # Serializing writes "name: value"; the input may have had "name:value".
        again = RequestParser(max_line + 1, max_headers).feed(
            Request(path, Headers(items), method).serialize()
        )
        assert again is not None and _result(again) == whole[1], "request round trip"


if __name__ == "__main__":
    main(test_one_input)
