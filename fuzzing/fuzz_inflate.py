"""Fuzz the receiving side of permessage-deflate: ``PerMessageDeflate.decode``.

Each input becomes an extension (``remote_no_context_takeover`` on or off,
``remote_max_window_bits`` 8-15, the inflating backend: ``zlib``, ``zlib-ng`` or
``isal``, whichever are installed), a message size limit, and up to four messages, each
cut into frames (first frame ``TEXT``/``BINARY``, then continuations) and fed to
``decode(opcode, fin, rsv, payload, room)`` as the protocol core does (``room`` is the
limit less what the message inflated to so far). The messages are one of:

- raw: arbitrary bytes from the input as compressed payloads (RSV1 on the first frame,
  or not: then an uncompressed message), sometimes with RSV1 on a continuation frame;
- made: the input's bytes (repeated, to be compressible) deflated by stdlib ``zlib``
  (``compressobj(level, DEFLATED, -bits, memLevel, strategy)``, flushed where the
  input says, each message ending with a sync or full flush whose 4-byte tail is
  stripped as RFC 7692 7.2.1 says, or with a final block), the compressor kept across
  messages (context takeover) or not, as the receiver's setting allows; or a deflate
  bomb (2 MiB of zeros). With window bits 8 the stream is made with 9, as zlib-based
  peers do (zlib cannot make an 8-bit raw stream; the extension inflates with 9);
- made, then one byte of the compressed stream changed.

Checked:

- nothing but ``ProtocolError`` 1002 / 1007 and ``MessageTooBig`` (1009) comes out of
  ``decode``; RSV1 on a continuation frame is exactly a 1002;
- a compressed frame never inflates to more than its ``room``: a deflate bomb stops at
  the limit (outputs are measured, not trusted); without a limit, the output is at most
  the deflate maximum (1032 bytes per compressed byte);
- between messages the extension holds no inflater, and at most one window of history
  (``idle_bytes``), none with ``remote_no_context_takeover``;
- a made stream round-trips exactly: every message comes back as it went, except that
  one over the limit fails with ``MessageTooBig``, and only such a message;
- cut into frames or sent whole, a message gives the same outcome, and the backend under
  test gives what stdlib zlib gives: the same output, or an error on the same message
  (``MessageTooBig`` for one and 1007 for the other when it is both too big and invalid:
  zlib reports an invalid code past the room only when the input at hand holds it).
  ISA-L reads ahead and judges truncated or invalid streams otherwise than zlib: with
  it, only the messages both accept are compared.

Run ``python fuzzing/fuzz_inflate.py [corpus dirs] [-runs=N | -max_total_time=S]``.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _driver import Input, instrumented, main, split  # noqa: E402

with instrumented():
    from blazews.exceptions import MessageTooBig, ProtocolError
    from blazews.sansio.extensions import _deflate_streams
    from blazews.sansio.extensions.permessage_deflate import PerMessageDeflate

BACKENDS = _deflate_streams.available_backends()
SIZES = (None, 0, 1, 100, 1024, 65536, 1 << 20)
TAIL = b"\x00\x00\xff\xff"
RSV1 = 0x40
# The most deflate can expand: a 258-byte match in 2 bits, past a header.
MAX_RATIO = 1032
_FLUSHES = (zlib.Z_NO_FLUSH, zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH, zlib.Z_BLOCK, zlib.Z_NO_FLUSH)
_STRATEGIES = (
    zlib.Z_DEFAULT_STRATEGY,
    zlib.Z_FILTERED,
    zlib.Z_HUFFMAN_ONLY,
    zlib.Z_RLE,
    zlib.Z_FIXED,
)
_BOMB_SIZE = 2 << 20  # over every limit in SIZES
_BOMBS: dict[int, bytes] = {}

Frame = tuple[int, bool, int, bytes]  # opcode, fin, rsv, payload
Message = list[Frame]


def bomb(bits: int) -> bytes:
    """``_BOMB_SIZE`` zeros deflated at level 9 with ``bits`` window bits (made once)."""
    if bits not in _BOMBS:
        c = zlib.compressobj(9, zlib.DEFLATED, -bits, 9)
        _BOMBS[bits] = (c.compress(bytes(_BOMB_SIZE)) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    return _BOMBS[bits]


def frames_of(opcode: int, rsv: int, payload: bytes, cuts: list[int]) -> Message:
    """A message: ``payload`` cut into frames, ``rsv`` on the first one only."""
    chunks = split(payload, cuts)
    last = len(chunks) - 1
    return [
        (opcode if i == 0 else 0, i == last, rsv if i == 0 else 0, chunk)
        for i, chunk in enumerate(chunks)
    ]


def raw_messages(inp: Input) -> list[Message]:
    """Arbitrary payloads from the input, sometimes with RSV1 on a continuation."""
    messages = []
    for _ in range(inp.num(1, 4)):
        kind = inp.byte()
        cuts = inp.cuts(6, 40)
        payload = inp.take(inp.num(0, 2000))
        message = frames_of(1 + (kind & 1), 0 if kind & 0x02 else RSV1, payload, cuts)
        if kind & 0xF0 == 0xF0 and len(message) > 1:  # RSV1 on a continuation
            i = 1 + kind % (len(message) - 1)
            opcode, fin, _, chunk = message[i]
            message[i] = (opcode, fin, RSV1, chunk)
        messages.append(message)
    return messages


def made_messages(
    inp: Input, bits: int, remote_nct: bool
) -> tuple[list[Message], list[bytes | None]]:
    """Messages deflated by stdlib zlib from the input's bytes, and their plaintexts
    (``None`` for a message sent uncompressed: it comes back as it is)."""
    wbits = max(9, bits)
    level = inp.num(0, 9)
    mem_level = inp.num(1, 9)
    strategy = _STRATEGIES[inp.num(0, len(_STRATEGIES) - 1)]

    def compressor() -> Any:
        return zlib.compressobj(level, zlib.DEFLATED, -wbits, mem_level, strategy)

    c = compressor()
    messages: list[Message] = []
    plains: list[bytes | None] = []
    for _ in range(inp.num(1, 4)):
        kind = inp.byte()
        opcode = 1 + (kind & 1)
        if kind & 0x0E == 0x0E:  # a deflate bomb
            plain = bytes(_BOMB_SIZE)
            data = bomb(wbits)
            c = compressor()
        else:
            text = inp.take(inp.num(0, 300))
            plain = text * inp.num(1, 40)
            if kind & 0x0E == 0x0C:  # sent uncompressed: outside the deflate stream
                messages.append(frames_of(opcode, 0, plain, inp.cuts(4, 200)))
                plains.append(None)
                continue
            if remote_nct or kind & 0x10:  # a new stream for each message
                c = compressor()
            pieces = split(plain, inp.cuts(4, 300))
            out = []
            for piece in pieces[:-1]:
                out.append(c.compress(piece))
                out.append(c.flush(_FLUSHES[inp.num(0, len(_FLUSHES) - 1)]))
            out.append(c.compress(pieces[-1]))
            if kind & 0x60 == 0x60:  # ends with a final block: the stream ends here
                out.append(c.flush(zlib.Z_FINISH))
                data = b"".join(out)
                c = compressor()
            else:
                flush = zlib.Z_FULL_FLUSH if kind & 0x80 else zlib.Z_SYNC_FLUSH
                out.append(c.flush(flush))
                data = b"".join(out)
                if data:  # else zlib skipped a flush repeating the last one: empty message
                    assert data.endswith(TAIL), "zlib's flush did not end with the tail"
                    data = data[:-4]
        messages.append(frames_of(opcode, RSV1, data, inp.cuts(6, 400)))
        plains.append(plain)
    return messages, plains


def mutate(messages: list[Message], inp: Input) -> None:
    """Change one byte of one compressed frame (in place)."""
    where = [(m, f) for m, msg in enumerate(messages) for f, fr in enumerate(msg) if fr[3]]
    if not where:
        return
    m, f = where[inp.num(0, 65535) % len(where)]
    opcode, fin, rsv, payload = messages[m][f]
    buf = bytearray(payload)
    buf[inp.num(0, 65535) % len(buf)] ^= inp.num(1, 255)
    messages[m][f] = (opcode, fin, rsv, bytes(buf))


def well_formed(messages: list[Message]) -> bool:
    """No RSV1 on a continuation frame: the messages may be joined into single frames."""
    return all(not (frame[0] == 0 and frame[2] & RSV1) for msg in messages for frame in msg)


def joined(messages: list[Message]) -> list[Message]:
    """Each message in one frame."""
    return [[(msg[0][0], True, msg[0][2], b"".join(f[3] for f in msg))] for msg in messages]


Outcome = tuple[Any, ...]


def run(ext: PerMessageDeflate, messages: list[Message], limit: int | None) -> list[Outcome]:
    """Feed the messages as the protocol core would, checking every frame; return one
    outcome per message: ``("ok", payload)`` or ``(exception name, close code)``, the
    first error ending the run (the connection fails)."""
    outcomes: list[Outcome] = []
    history_max = 0 if ext.remote_no_context_takeover else 1 << max(9, ext.remote_max_window_bits)
    for message in messages:
        parts = []
        size = 0
        compressed = bool(message[0][2] & RSV1)
        for opcode, fin, rsv, payload in message:
            room = None if limit is None else limit - size
            try:
                out = ext.decode(opcode, fin, rsv, payload, room)
            except ProtocolError as exc:
                code = exc.close_code
                if isinstance(exc, MessageTooBig):
                    assert code == 1009, f"MessageTooBig with close code {code}"
                    assert compressed and limit is not None, "MessageTooBig without a limit"
                else:
                    assert type(exc) is ProtocolError, f"{type(exc).__name__} raised"
                    assert code in (1002, 1007), f"ProtocolError with close code {code}"
                if opcode == 0 and rsv & RSV1:
                    assert code == 1002, f"RSV1 on a continuation gave {code}, not 1002"
                outcomes.append((type(exc).__name__, code))
                return outcomes
            assert not (opcode == 0 and rsv & RSV1), "RSV1 on a continuation accepted"
            assert isinstance(out, bytes), f"decode returned {type(out).__name__}"
            if compressed:
                if room is not None:
                    assert len(out) <= room, f"inflated {len(out)} bytes, room for {room}"
                else:
                    # (plus the few bits an inflater may hold from the frame before)
                    bound = (len(payload) + len(TAIL) + 16) * MAX_RATIO
                    assert len(out) <= bound, f"inflated {len(out)} bytes from {len(payload)}"
            else:
                assert out == payload, "an uncompressed frame was changed"
            size += len(out)
            parts.append(out)
        assert not ext.holds_decompressor, "an inflater held between messages"
        idle = ext.idle_bytes
        assert idle <= history_max, f"{idle} bytes held between messages, max {history_max}"
        outcomes.append(("ok", b"".join(parts)))
    return outcomes


def agree(a: list[Outcome], b: list[Outcome], isal: bool) -> bool:
    """Whether two runs of the same messages agree: the same messages come back, and
    the same message fails. A message both too big and invalid may fail either way:
    zlib finds an invalid code past the room only if the input holds it at that point
    (a frame's end, or a joined message's, decides). With ``isal``, only the messages
    both runs inflate are compared, up to the first that one of them refuses."""
    if isal:
        for x, y in zip(a, b, strict=False):
            if x[0] != "ok" or y[0] != "ok":
                return True
            if x != y:
                return False
        return True
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x != y and not (
            {x[0], y[0]} <= {"MessageTooBig", "ProtocolError"} and 1002 not in (x[1], y[1])
        ):
            return False
    return True


def _show(outcomes: list[Outcome]) -> str:
    return repr([o if o[0] != "ok" else ("ok", len(o[1]), o[1][:40]) for o in outcomes])


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    remote_nct = bool(flags & 0x01)
    bits = inp.num(8, 15)
    backend = BACKENDS[inp.num(0, len(BACKENDS) - 1)]
    limit = SIZES[inp.num(0, len(SIZES) - 1)]
    plains: list[bytes | None] | None = None
    if flags & 0x02:
        messages, plains = made_messages(inp, bits, remote_nct)
        if flags & 0x04:
            mutate(messages, inp)
            plains = None
    else:
        messages = raw_messages(inp)

    def make(name: str) -> PerMessageDeflate:
        return PerMessageDeflate(
            remote_no_context_takeover=remote_nct, remote_max_window_bits=bits, backend=name
        )

    got = run(make(backend), messages, limit)

    if plains is not None:  # the made stream comes back exactly
        expected: list[Outcome] = []
        for message, plain in zip(messages, plains, strict=True):
            if plain is None:
                expected.append(("ok", b"".join(f[3] for f in message)))
            elif limit is not None and len(plain) > limit:
                expected.append(("MessageTooBig", 1009))
                break
            else:
                expected.append(("ok", plain))
        assert got == expected, f"round trip: got {_show(got)}, sent {_show(expected)}"

    if well_formed(messages) and any(len(m) > 1 for m in messages):
        whole = run(make(backend), joined(messages), limit)
        assert agree(whole, got, backend == "isal"), (
            f"one frame: {_show(whole)}, frames: {_show(got)}"
        )

    if backend != "zlib":
        reference = run(make("zlib"), messages, limit)
        assert agree(reference, got, backend == "isal"), (
            f"{backend} gives {_show(got)}, zlib {_show(reference)}"
        )


if __name__ == "__main__":
    main(test_one_input)
