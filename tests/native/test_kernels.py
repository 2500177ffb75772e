"""Masking kernels, every implementation and SIMD level, against a naive reference.

Also: the compiled path is live in the default build, the SIMD level can be forced,
and forcing one that cannot run fails clearly.
"""

from __future__ import annotations

import array
import functools
import os
import random
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest

from blazews import _impl, _kernels_py
from tests.native.support import IMPLS, native, no_extensions, use

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])
DATA = random.Random(6455).randbytes(400)
GUARD = 40


def naive_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """The test oracle: one byte at a time, as RFC 6455 section 5.3 states it."""
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


@functools.cache
def expected(n: int, offset: int) -> bytes:
    return naive_mask(DATA[:n], KEY, offset)


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> Iterator[types.SimpleNamespace]:
    with use(request.param) as k:
        yield k


requires_native = pytest.mark.skipif(native is None, reason="compiled kernels not in use")


# ---- mask_bytes -------------------------------------------------------------------


def test_every_length_and_offset_on_misaligned_views(impl: types.SimpleNamespace) -> None:
    for n in range(301):
        for offset in range(8):
            start = 1 + (3 * n + offset) % 31  # every alignment modulo 32, mostly odd
            buf = bytearray(b"\xaa" * (start + n + GUARD))
            buf[start : start + n] = DATA[:n]
            impl.mask_bytes(KEY, memoryview(buf)[start : start + n], offset)
            assert buf[start : start + n] == expected(n, offset), (n, offset)
            assert buf[:start] == b"\xaa" * start, "wrote before the buffer"
            assert buf[start + n :] == b"\xaa" * GUARD, "wrote past the buffer"


def test_every_length_on_bytearray(impl: types.SimpleNamespace) -> None:
    for n in range(301):
        buf = bytearray(DATA[:n])
        impl.mask_bytes(KEY, buf, n)
        assert buf == expected(n, n % 4)


def test_chunked_masking_matches_whole(impl: types.SimpleNamespace) -> None:
    rng = random.Random(1)
    payload = rng.randbytes(5000)
    whole = naive_mask(payload, KEY)
    for _ in range(30):
        buf = bytearray(payload)
        view = memoryview(buf)
        pos = 0
        while pos < len(buf):
            step = rng.choice([1, 2, 3, 5, 7, 16, 31, 33, 100, 257, 1000])
            impl.mask_bytes(KEY, view[pos : pos + step], pos)
            pos += step
        assert buf == whole


def test_mask_into_every_length_and_offset(impl: types.SimpleNamespace) -> None:
    for n in range(0, 301, 3):
        for offset in range(5):
            start = 1 + (n + offset) % 31
            out = bytearray(b"\xaa" * (start + n + GUARD))
            impl.mask_into(KEY, memoryview(b"x" + DATA[:n])[1:], out[start : start + n], offset)
            assert out == b"\xaa" * len(out)  # (a slice of a bytearray is a copy)
            impl.mask_into(
                KEY, memoryview(b"x" + DATA[:n])[1:], memoryview(out)[start:-GUARD], offset
            )
            assert out[start:-GUARD] == expected(n, offset), (n, offset)
            assert out[:start] == b"\xaa" * start and out[-GUARD:] == b"\xaa" * GUARD


@pytest.mark.parametrize("n", [65536, (1 << 20) + 3])
def test_mask_into_large_and_in_place(impl: types.SimpleNamespace, n: int) -> None:
    rng = random.Random(n)
    data = rng.randbytes(n)
    out = bytearray(n)
    impl.mask_into(KEY, data, out, 3)  # (without the GIL, compiled)
    assert out == _kernels_py.apply_mask(data, KEY[3:] + KEY[:3])
    impl.mask_into(KEY, out, out, 3)  # src itself as dst: back to the data
    assert out == data
    ints = array.array("i", range(1000))  # items of 4 bytes, either side
    words = array.array("i", bytes(4000))
    impl.mask_into(KEY, ints, words)
    assert words.tobytes() == naive_mask(ints.tobytes(), KEY)
    strided = memoryview(data)[:200:2]  # not contiguous, either side
    out = bytearray(200)
    impl.mask_into(KEY, strided, memoryview(out)[::2])
    assert out[::2] == naive_mask(bytes(strided), KEY)
    assert out[1::2] == bytes(100)


def test_mask_into_errors(impl: types.SimpleNamespace) -> None:
    with pytest.raises(ValueError, match="differ in size"):
        impl.mask_into(KEY, b"abc", bytearray(4))
    with pytest.raises(ValueError, match="4 bytes"):
        impl.mask_into(b"abc", b"abcd", bytearray(4))
    with pytest.raises(TypeError):
        impl.mask_into(KEY, b"abcd", b"read")
    with pytest.raises(TypeError):
        impl.mask_into(KEY, "text", bytearray(4))


@pytest.mark.parametrize(
    "n",
    [65535, 65536, 65537, (1 << 20) + 3, 4 << 20, *random.Random(2).sample(range(1, 4 << 20), 4)],
)
def test_large_random_lengths(impl: types.SimpleNamespace, n: int) -> None:
    rng = random.Random(n)
    data = rng.randbytes(n + 1)
    key = rng.randbytes(4)
    offset = rng.randrange(8)
    reference = bytearray(data)
    _kernels_py.mask_bytes(key, memoryview(reference)[1:], offset)
    buf = bytearray(data)
    impl.mask_bytes(key, memoryview(buf)[1:], offset)  # odd start
    assert buf == reference
    assert impl.apply_mask(memoryview(data)[1:], key) == _kernels_py.apply_mask(data[1:], key)


def test_masking_twice_restores(impl: types.SimpleNamespace) -> None:
    buf = bytearray(DATA)
    impl.mask_bytes(KEY, buf, 3)
    assert buf != DATA
    impl.mask_bytes(KEY, buf, 3)
    assert buf == DATA


@pytest.mark.parametrize("offset", [-5, -1, 4, 2**40 + 1, 2**62 + 3])
def test_offset_only_counts_modulo_4(impl: types.SimpleNamespace, offset: int) -> None:
    buf = bytearray(DATA[:37])
    impl.mask_bytes(KEY, buf, offset)
    assert buf == expected(37, offset % 4)


@pytest.mark.parametrize("key_type", [bytes, bytearray, memoryview, list])
def test_key_may_be_any_bytes_like(impl: types.SimpleNamespace, key_type: type) -> None:
    buf = bytearray(DATA[:50])
    impl.mask_bytes(key_type(KEY), buf)
    assert buf == expected(50, 0)
    assert impl.apply_mask(DATA[:50], key_type(KEY)) == expected(50, 0)


def test_typed_and_multidimensional_buffers(impl: types.SimpleNamespace) -> None:
    words = array.array("I", range(64))
    raw = words.tobytes()
    impl.mask_bytes(KEY, words, 1)
    assert words.tobytes() == naive_mask(raw, KEY, 1)

    buf = bytearray(DATA[:64])
    impl.mask_bytes(KEY, memoryview(buf).cast("B", (8, 8)))
    assert buf == expected(64, 0)


def test_strided_view_like_pure(impl: types.SimpleNamespace) -> None:
    buf = bytearray(DATA[:40])
    impl.mask_bytes(KEY, memoryview(buf)[::2], 1)
    assert buf[::2] == naive_mask(DATA[:40:2], KEY, 1)
    assert buf[1::2] == DATA[1:40:2]


def test_numpy_array_when_installed(impl: types.SimpleNamespace) -> None:
    np = pytest.importorskip("numpy")
    arr = np.frombuffer(bytearray(DATA[:100]), dtype=np.uint8)
    impl.mask_bytes(KEY, arr[3:], 0)
    assert arr[3:].tobytes() == naive_mask(DATA[3:100], KEY)


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", bytearray(8)])
def test_key_not_4_bytes(impl: types.SimpleNamespace, key: bytes) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        impl.mask_bytes(key, bytearray(10))
    with pytest.raises(ValueError, match="4 bytes"):
        impl.apply_mask(b"0123456789", key)


@pytest.mark.parametrize(
    "buf", [b"read only", memoryview(b"read only"), memoryview(bytearray(b"ro")).toreadonly()]
)
def test_read_only_buffer(impl: types.SimpleNamespace, buf: object) -> None:
    with pytest.raises(TypeError):
        impl.mask_bytes(KEY, buf)


@pytest.mark.parametrize("buf", ["text", 1234, None])
def test_not_a_buffer(impl: types.SimpleNamespace, buf: object) -> None:
    with pytest.raises(TypeError):
        impl.mask_bytes(KEY, buf)
    with pytest.raises(TypeError):
        impl.apply_mask(buf, KEY)


def test_apply_mask_returns_new_bytes(impl: types.SimpleNamespace) -> None:
    for n in range(0, 301, 7):
        for data in (DATA[:n], bytearray(DATA[:n]), memoryview(b"x" + DATA[:n])[1:]):
            out = impl.apply_mask(data, KEY)
            assert type(out) is bytes
            assert out == expected(n, 0)
        assert bytes(data) == DATA[:n], "input changed"
    words = array.array("H", range(100))
    assert impl.apply_mask(words, KEY) == naive_mask(words.tobytes(), KEY)
    assert impl.apply_mask(memoryview(DATA)[::3], KEY) == naive_mask(DATA[::3], KEY)


# ---- frame_header / encode_frame --------------------------------------------------


def spec_header(first: int, n: int, key: bytes | None) -> bytes:
    """The oracle: RFC 6455 §5.2 with the minimal length encoding, spelled out."""
    mask_bit = 0 if key is None else 0x80
    if n <= 125:
        header = bytes([first, mask_bit | n])
    elif n <= 0xFFFF:
        header = bytes([first, mask_bit | 126, n >> 8, n & 0xFF])
    else:
        header = bytes([first, mask_bit | 127]) + bytes((n >> s) & 0xFF for s in range(56, -8, -8))
    return header + (key or b"")


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000, (1 << 63) - 1])
def test_frame_header_uses_minimal_lengths(impl: types.SimpleNamespace, n: int) -> None:
    for first in (0x82, 0x01, 0xC1, 0x00, 0xFF):
        assert impl.frame_header(first, n) == spec_header(first, n, None)
        assert impl.frame_header(first, n, KEY) == spec_header(first, n, KEY)
        assert impl.frame_header(first, n, bytearray(KEY)) == spec_header(first, n, KEY)


@pytest.mark.parametrize(
    ("first", "n", "key"),
    [(256, 0, None), (-1, 0, None), (0x82, -1, None), (0x82, 1 << 63, None), (0x82, 5, b"abc")],
)
def test_frame_header_rejects_bad_arguments(
    impl: types.SimpleNamespace, first: int, n: int, key: bytes | None
) -> None:
    with pytest.raises(ValueError):
        impl.frame_header(first, n, key)


@pytest.mark.parametrize("n", [0, 1, 3, 125, 126, 1000, 65535, 65536, 70001, 200_003])
def test_encode_frame_is_header_then_payload(impl: types.SimpleNamespace, n: int) -> None:
    payload = (DATA * (n // len(DATA) + 1))[:n]
    for data in (payload, bytearray(payload), memoryview(b"x" + payload)[1:]):
        frame = impl.encode_frame(0x82, data)
        assert type(frame) is bytes
        assert frame == spec_header(0x82, n, None) + payload
        masked = impl.encode_frame(0x81, data, KEY)
        assert masked == spec_header(0x81, n, KEY) + naive_mask(payload, KEY)
        assert bytes(data) == payload, "input changed"


def test_encode_frame_counts_bytes_not_items(impl: types.SimpleNamespace) -> None:
    words = array.array("I", range(50))  # 200 bytes, 50 items
    raw = words.tobytes()
    assert impl.encode_frame(0x82, words) == spec_header(0x82, 200, None) + raw
    assert impl.encode_frame(0x82, words, KEY) == spec_header(0x82, 200, KEY) + naive_mask(raw, KEY)
    strided = memoryview(DATA)[::3]  # not contiguous: copied first, same frame
    assert impl.encode_frame(0x82, strided) == spec_header(0x82, len(DATA[::3]), None) + DATA[::3]


@pytest.mark.parametrize(("first", "key"), [(300, None), (0x82, b"12345")])
def test_encode_frame_rejects_bad_arguments(
    impl: types.SimpleNamespace, first: int, key: bytes | None
) -> None:
    with pytest.raises(ValueError):
        impl.encode_frame(first, b"data", key)


def test_encode_frame_rejects_non_buffers(impl: types.SimpleNamespace) -> None:
    with pytest.raises(TypeError):
        impl.encode_frame(0x81, "text is encoded by the caller")


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 63, 64, 65, 300, 70_000])
def test_frame_payload_copies_and_unmasks(impl: types.SimpleNamespace, n: int) -> None:
    payload = (DATA * (n // len(DATA) + 1))[:n]
    for lead in (4, 7):  # the key right before the payload, at any alignment
        raw = b"\xee" * (lead - 4) + KEY + naive_mask(payload, KEY) + b"\xdd" * 9
        for buf in (raw, bytearray(raw), memoryview(raw)):
            out = impl.frame_payload(buf, lead, lead + n, True)
            assert type(out) is bytes and out == payload
            assert impl.frame_payload(buf, lead, lead + n, False) == raw[lead : lead + n]
        assert raw[lead : lead + n] == naive_mask(payload, KEY), "input changed"


@pytest.mark.parametrize(("start", "end", "masked"), [(2, 10, True), (5, 4, False), (0, 65, False)])
def test_frame_payload_refuses_ranges_outside_the_buffer(
    impl: types.SimpleNamespace, start: int, end: int, masked: bool
) -> None:
    with pytest.raises(ValueError):
        impl.frame_payload(bytes(64), start, end, masked)


# ---- the compiled build and its levels --------------------------------------------


def test_compiled_path_is_live_in_default_build() -> None:
    if no_extensions():
        assert _impl.KERNELS == "python"
        assert _impl.simd_level() == "python"
        assert _impl.cpu_features() == {}
        return
    assert _impl.KERNELS == "compiled", "the compiled kernels were not built"
    assert _impl.mask_bytes is native.mask_bytes
    assert _impl.Utf8Validator is native.Utf8Validator
    assert _impl.simd_level() in native.available_levels()


@pytest.mark.skipif(
    not os.environ.get("BLAZEWS_EXPECT_NOASM"), reason="only in the BLAZEWS_NOASM build run"
)
def test_noasm_build_has_only_the_scalar_kernels() -> None:
    """`make test-noasm` builds with BLAZEWS_NOASM=1 and sets BLAZEWS_EXPECT_NOASM."""
    assert native is not None, "the NOASM build made no compiled kernels"
    assert native.compiled_levels() == ["scalar"]
    assert native.simd_level() == "scalar"
    assert "noasm" in native.__file__, "not the NOASM build under test"


@requires_native
def test_default_level_is_the_best_available() -> None:
    if os.environ.get("BLAZEWS_SIMD"):
        pytest.skip("BLAZEWS_SIMD forces a level")
    levels = native.available_levels()
    best = levels[-1]
    if best == "avx512" and not native.cpu_features()["avx512vbmi2"]:
        best = levels[-2]  # clock-throttling AVX-512 CPUs are only used when forced
    assert native.simd_level() == best


@requires_native
def test_levels_and_features() -> None:
    levels = native.available_levels()
    compiled = native.compiled_levels()
    assert levels[0] == "scalar"
    assert set(levels) <= set(compiled)
    features = native.cpu_features()
    assert all(type(k) is str and type(v) is bool for k, v in features.items())
    for level, feature in [("sse2", "sse2"), ("avx2", "avx2"), ("neon", "neon")]:
        if level in compiled:
            assert (level in levels) == features[feature]
    if "avx512" in compiled:
        assert ("avx512" in levels) == (features["avx512f"] and features["avx512bw"])
    if features["avx2"]:
        assert features["avx"] and features["sse2"]


def _import_with(simd: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BLAZEWS_NO_EXTENSIONS",)}
    env["BLAZEWS_SIMD"] = simd
    code = "import blazews._impl as i; print(i.KERNELS, i.simd_level())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


@requires_native
def test_forcing_each_available_level() -> None:
    for level in native.available_levels():
        result = _import_with(level)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["compiled", level]


@requires_native
@pytest.mark.parametrize("simd", ["bogus", "missing"])
def test_forcing_an_unavailable_level_fails_clearly(simd: str) -> None:
    if simd == "missing":
        absent = [lvl for lvl in native._all_levels() if lvl not in native.available_levels()]
        if not absent:
            pytest.skip("every level runs here")
        simd = absent[0]
    result = _import_with(simd)
    assert result.returncode != 0
    assert f"RuntimeError: BLAZEWS_SIMD={simd} requested but SIMD level '{simd}'" in result.stderr
    if simd != "bogus":
        reason = "not compiled" if simd not in native.compiled_levels() else "lacks"
        assert reason in result.stderr


@requires_native
def test_set_level_errors() -> None:
    before = native.simd_level()
    with pytest.raises(RuntimeError, match="unknown"):
        native._set_level("avx9000")
    for level in native._all_levels():
        if level not in native.available_levels():
            with pytest.raises(RuntimeError, match=level):
                native._set_level(level)
    assert native.simd_level() == before
