"""The compiled :class:`blazews.sync.FrameReader` against the pure one: the package
picks the build it says it picks, and both do the same with any stream, valid or
damaged, through every read method.
"""

from __future__ import annotations

import io
import os
import random
from typing import Any

import pytest

import blazews
from blazews.exceptions import (
    BufferTooSmall,
    ConnectionClosedError,
    ConnectionClosedOK,
    ProtocolError,
)
from blazews.sansio.frames import Opcode
from blazews.sync import FrameReader, _frame_reader_py
from tests.sync.support import build, random_stream

try:
    from blazews.sync import _frame_reader_c
except ImportError:  # pragma: no cover - the pure build
    _frame_reader_c = None  # type: ignore[assignment]


# -- the reader the package picks --------------------------------------------------------


def test_compiled_reader_is_live_in_the_default_build() -> None:
    if os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0"):
        assert blazews.implementation_report()["sync._frame_reader"] == "python"
        assert FrameReader is _frame_reader_py.FrameReader
    else:
        assert blazews.implementation_report()["sync._frame_reader"] == "compiled"
        assert _frame_reader_c is not None
        assert FrameReader is _frame_reader_c.FrameReader  # type: ignore[comparison-overlap]
        assert type(FrameReader.__dict__["read_message_into"]).__name__ != "function"


# The other FrameReader tests run on the reader the package picked; the differential
# test below runs both when the compiled one was built.
IMPLS: list[Any] = [_frame_reader_py.FrameReader]
if _frame_reader_c is not None:
    IMPLS.append(_frame_reader_c.FrameReader)


# -- the compiled reader against the pure one -------------------------------------------


def mutate(rng: random.Random, stream: bytes) -> bytes:
    """Damage a valid stream: flip bits, cut it, or splice a bad frame in."""
    data = bytearray(stream)
    choice = rng.randrange(4)
    if choice == 0:
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del data[rng.randrange(len(data)) :]
    elif choice == 2:
        bad = rng.choice(
            [
                build(Opcode.CONT, b"x"),
                build(Opcode.TEXT, b"\xc3"),
                build(0x4, b""),
                build(Opcode.TEXT, b"\xe2\x82", fin=False),
            ]
        )
        pos = rng.randrange(len(data))
        data[pos:pos] = bad
    return bytes(data)


def outcomes(cls: Any, stream: bytes, method: str, size: int, limit: int | None) -> list[Any]:
    """Everything a reader does with ``stream``: messages, controls, then the error."""
    got: list[Any] = []
    reader = cls(
        io.BytesIO(stream),
        max_message_size=limit,
        on_control=lambda op, data: got.append(("control", int(op), data)),
    )
    buf = bytearray(size)
    for _ in range(1000):
        try:
            if method == "read_message":
                kind, data = reader.read_message()
            elif method == "read_message_into":
                kind, n = reader.read_message_into(buf)
                data = bytes(buf[:n])
            else:
                frame, n = reader.read_frame_into(buf)
                got.append(("frame", int(frame.opcode), frame.fin, frame.rsv1, bytes(buf[:n])))
                continue
        except BufferTooSmall as exc:
            got.append(("too-small", exc.needed))
            buf = bytearray(exc.needed)
            continue
        except (EOFError, ValueError) as exc:
            got.append((type(exc).__name__,))
            break
        except (ProtocolError, ConnectionClosedOK, ConnectionClosedError) as exc:
            got.append((type(exc).__name__, getattr(exc, "close_code", None), str(exc)))
            break
        got.append(("message", int(kind), data))
    return got


@pytest.mark.skipif(len(IMPLS) < 2, reason="the compiled reader was not built")
@pytest.mark.parametrize("seed", range(40))
def test_compiled_and_pure_readers_agree(seed: int) -> None:
    rng = random.Random(1000 + seed)
    stream = random_stream(rng, seed % 2 == 0)
    if seed % 4:
        stream = mutate(rng, stream)
    size = rng.choice([0, 64, 1000, 1 << 17])
    limit = rng.choice([None, 100, 1 << 20])
    for method in ("read_message", "read_message_into", "read_frame_into"):
        pure, compiled = (outcomes(cls, stream, method, size, limit) for cls in IMPLS)
        assert pure == compiled
