"""UTF-8 validation, every implementation and SIMD level, against CPython's decoder.

Two oracles: ``is_valid`` (``bytes.decode('utf-8')``) for whole texts, and
``viable`` for prefixes: whether some continuation could still make the bytes valid
text. The compiled ``Utf8Validator.feed`` must answer exactly ``viable`` after every
chunk (failing at the first chunk where invalidity is certain, never earlier); the
pure one, built on CPython's incremental decoder, may fail later (it accepts
``ED A0`` until the next byte) but never earlier.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import random
import types
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blazews import _kernels_py
from tests.native.support import IMPLS, use


def is_valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# One byte from each range a continuation byte may be limited to (80..BF, A0..BF,
# 80..9F, 90..BF, 80..8F): if any completion of a prefix is valid, one built from
# these is.
_CONT_REPS = (0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF)


@functools.lru_cache(maxsize=65536)
def viable(prefix: bytes) -> bool:
    """Whether ``prefix`` can still be completed into valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(prefix, False)
    except UnicodeDecodeError:
        return False
    pending = decoder.getstate()[0]
    if not pending:
        return True
    need = {0xC: 2, 0xD: 2, 0xE: 3, 0xF: 4}[pending[0] >> 4] - len(pending)
    return any(
        is_valid(pending + bytes(tail)) for tail in itertools.product(_CONT_REPS, repeat=need)
    )


VALID = [
    b"",
    b"a",
    b"hello, world",
    b"\x00\x7f",
    "\u0080".encode(),
    "\u07ff".encode(),
    "\u0800".encode(),
    "\ud7ff".encode(),
    "\ue000".encode(),
    "\ufeff".encode(),
    "\uffff".encode(),
    "\U00010000".encode(),
    "\U0010ffff".encode(),
    "h\u00e9llo w\u00f6rld".encode(),
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8".encode(),
    "\U0001f600\U0001f680 emoji".encode(),
    "\u03ba\u1f79\u03c3\u03bc\u03b5".encode(),
    b"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
]

# fmt: off
INVALID = [
    # bytes that never occur
    b"\xc0", b"\xc1", b"\xf5", b"\xf8", b"\xfe", b"\xff", b"\xc0\x80", b"\xc1\xbf",
    b"\xf5\x80\x80\x80", b"\xf7\xbf\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",
    # overlong forms
    b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xc0\xaf",
    b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
    # surrogates U+D800..U+DFFF
    b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xbf\xbf",
    b"\xed\xa0\x80\xed\xb0\x80",
    # above U+10FFFF
    b"\xf4\x90\x80\x80", b"\xf4\xbf\xbf\xbf",
    # lone and extra continuation bytes
    b"\x80", b"\xbf", b"\x80\x80", b"a\x80b", b"\xc2\x80\x80", b"\xe2\x82\xac\x80",
    b"\xf0\x9f\x98\x80\x80", b"\x80\x80\x80\x80\x80",
    # truncated sequences
    b"\xc2", b"\xe2\x82", b"\xe2", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xf0", b"\xf4\x8f\xbf",
    # a lead byte followed by something that is not a continuation byte
    b"\xc2a", b"\xe2\x82a", b"\xf0\x9f\x98a", b"\xc2\xc2\x80", b"\xe2\xe2\x82\xac",
    b"\xf0\xf0\x9f\x98\x80",
    # valid text around a defect
    "caf\u00e9".encode() + b"\xc3",
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
]

CONTEXTS = [b"", b"a" * 13, b"x" * 31, b"y" * 32, b"z" * 63, "\u00e9".encode() * 9,
            "\u65e5".encode() * 11, "\U0001f600".encode() * 17]
# fmt: on

SAMPLES = VALID + INVALID


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> Iterator[types.SimpleNamespace]:
    with use(request.param) as k:
        yield k


def test_samples_are_classified_by_the_oracle() -> None:
    assert all(is_valid(s) for s in VALID)
    assert not any(is_valid(s) for s in INVALID)
    assert viable(b"\xed") and not viable(b"\xed\xa0") and viable(b"\xed\x9f")
    assert viable(b"\xf4\x8f") and not viable(b"\xf4\x90") and not viable(b"\xe0\x80")


def test_validate_samples(impl: types.SimpleNamespace) -> None:
    for sample in SAMPLES:
        assert impl.validate_utf8(sample) is is_valid(sample), sample


def test_validate_samples_in_context(impl: types.SimpleNamespace) -> None:
    """Each sample at many positions, so SIMD block edges fall everywhere in it."""
    for sample in SAMPLES:
        for before, after in itertools.product(CONTEXTS, CONTEXTS[:4]):
            for pad in range(0, 70, 5):
                text = before + b"p" * pad + sample + after
                assert impl.validate_utf8(text) is is_valid(text), (before, pad, sample, after)


def test_validate_at_every_position_of_a_long_text(impl: types.SimpleNamespace) -> None:
    for background in (b"a" * 200, "\u00e9\u65e5\U0001f600".encode() * 20):
        for bad in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80"):
            for pos in range(len(background) + 1):
                text = background[:pos] + bad + background[pos:]
                assert impl.validate_utf8(text) is is_valid(text), (pos, bad)


def test_validate_accepts_buffers(impl: types.SimpleNamespace) -> None:
    text = "gr\u00fc\u00dfe \u65e5\u672c".encode() * 10
    assert impl.validate_utf8(bytearray(text)) is True
    assert impl.validate_utf8(memoryview(b"!" + text)[1:]) is True
    assert impl.validate_utf8(memoryview(text + b"\xff")) is False


def test_validate_rejects_what_decode_rejects(impl: types.SimpleNamespace) -> None:
    with pytest.raises(TypeError):
        impl.validate_utf8("str is not bytes")
    with pytest.raises(BufferError):
        impl.validate_utf8(memoryview(b"abcd")[::2])
    with pytest.raises(TypeError):
        impl.Utf8Validator().feed("str is not bytes")


def _check_feeds(impl: types.SimpleNamespace, chunks: list[bytes]) -> None:
    """Feed ``chunks`` to ``impl``'s and the pure validator and judge every answer."""
    mine = impl.Utf8Validator()
    pure = _kernels_py.Utf8Validator()
    seen = b""
    mine_ok = pure_ok = True
    for i, chunk in enumerate(chunks):
        seen += chunk
        got = mine.feed(chunk)
        mine_ok = mine_ok and got
        pure_ok = pure.feed(chunk) and pure_ok
        if impl.compiled:
            # Exactly the prefix verdict: failing at the first chunk where invalidity
            # is certain, never earlier, so never later than the pure validator.
            assert got is viable(seen), (chunks, i)
            assert pure_ok or not got, (chunks, i)  # the pure one failed: so have we
        else:
            assert got or not viable(seen), (chunks, i)  # fails only when certain
    whole = b"".join(chunks)
    finished = mine.finish()
    assert (mine_ok and finished) is is_valid(whole), chunks
    if impl.compiled:
        assert finished is is_valid(whole), chunks


def test_every_split_into_two_chunks(impl: types.SimpleNamespace) -> None:
    for sample in SAMPLES:
        for text in (sample, b"abc" + sample + b"xyz", b"q" * 40 + sample + "\u00e9".encode() * 20):
            for cut in range(len(text) + 1):
                _check_feeds(impl, [text[:cut], text[cut:]])


def test_every_split_into_three_chunks(impl: types.SimpleNamespace) -> None:
    for sample in SAMPLES:
        text = b"ab" + sample + b"\xc3\xa9"
        for i in range(len(text) + 1):
            for j in range(i, len(text) + 1):
                _check_feeds(impl, [text[:i], text[i:j], text[j:]])


def test_byte_at_a_time(impl: types.SimpleNamespace) -> None:
    for sample in SAMPLES:
        text = b"x" + sample + b"y"
        _check_feeds(impl, [text[i : i + 1] for i in range(len(text))])


def test_verdict_of_feed_and_finish(impl: types.SimpleNamespace) -> None:
    v = impl.Utf8Validator()
    assert v.feed("\U0001f600".encode()[:2]) is True
    assert v.finish() is False  # ended inside a sequence
    assert v.feed(b"fresh text after finish") is True
    assert v.finish() is True
    assert v.feed(b"\xe2\x82") is True
    v.reset()
    assert v.feed(b"\xac") is False  # after a reset, a continuation byte is stray
    v.reset()
    assert v.feed(b"ok") is True
    assert v.finish() is True


def test_chunks_as_buffers(impl: types.SimpleNamespace) -> None:
    text = "\u65e5\u672c\u8a9e".encode() * 30
    v = impl.Utf8Validator()
    assert v.feed(memoryview(b"!" + text[:50])[1:]) is True
    assert v.feed(bytearray(text[50:])) is True
    assert v.finish() is True


def test_invalid_stays_invalid(impl: types.SimpleNamespace) -> None:
    v = impl.Utf8Validator()
    assert v.feed(b"ok \xff") is False
    again = v.feed(b"more text")
    if again and not impl.compiled:
        pytest.xfail("this pure validator forgets an error on the next feed")
    assert again is False
    assert v.finish() is False
    assert v.feed(b"a new text") is True


def _mixed_text(rng: random.Random, n_chars: int) -> bytes:
    alphabet = "abc \u00e9\u00fc\u0101\u0416\u05d0\u0915\u4e2d\u65e5\uac00\U0001f600\U00010348"
    weights = [30, 5, 5, 8, 2, 2, 2, 2, 2, 2, 5, 5, 3, 2, 1]
    return "".join(rng.choices(alphabet, weights, k=n_chars)).encode()


@pytest.mark.parametrize("seed", range(6))
def test_large_random_texts(impl: types.SimpleNamespace, seed: int) -> None:
    rng = random.Random(seed)
    text = _mixed_text(rng, rng.choice([1000, 30000, 300000]))
    if seed % 2:
        text = "\u65e5\u672c".encode() * 50000 + text  # long CJK run (300 KB, > 64 KiB)
    assert impl.validate_utf8(text) is True
    corrupt = bytearray(text)
    for _ in range(3):
        corrupt[rng.randrange(len(corrupt))] = rng.choice([0x80, 0xC0, 0xED, 0xF5, 0xFF, 0xE0])
        assert impl.validate_utf8(corrupt) is is_valid(bytes(corrupt))
        cuts = sorted(rng.sample(range(len(corrupt)), 5))
        pieces = [
            bytes(corrupt[a:b]) for a, b in zip([0, *cuts], [*cuts, len(corrupt)], strict=True)
        ]
        v = impl.Utf8Validator()
        ok = all(v.feed(p) for p in pieces)
        assert (v.finish() and ok) is is_valid(bytes(corrupt))


_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_near_utf8 = st.lists(
    st.one_of(
        st.text(max_size=8).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=3),
        st.sampled_from([b"\xed\xa0", b"\xf4\x90", b"\xe0\x80", b"\xc0", b"\xf0\x9f", b"\x80"]),
    ),
    max_size=40,
).map(b"".join)


@_settings
@given(data=st.binary(max_size=300))
def test_hypothesis_random_bytes(impl: types.SimpleNamespace, data: bytes) -> None:
    assert impl.validate_utf8(data) is is_valid(data)


@_settings
@given(data=_near_utf8, cuts=st.lists(st.integers(0, 400), max_size=4))
def test_hypothesis_near_utf8_in_chunks(
    impl: types.SimpleNamespace, data: bytes, cuts: list[int]
) -> None:
    assert impl.validate_utf8(data) is is_valid(data)
    bounds = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    _check_feeds(impl, pieces)
