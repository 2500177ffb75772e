"""``payload_buffer``: the object a large payload is read into before it is queued
(compiled: a ``bytes`` not filled first, written through a view; pure: a bytearray)."""

from __future__ import annotations

import pytest

from blazews import _impl, _kernels_py


@pytest.mark.parametrize("impl", [_impl.payload_buffer, _kernels_py.payload_buffer])
@pytest.mark.parametrize("n", [0, 1, 65536, 3 << 20])
def test_the_view_writes_the_payload_object(impl: object, n: int) -> None:
    payload, view = impl(n)  # type: ignore[operator]
    assert len(payload) == n and view.nbytes == n and not view.readonly
    data = bytes(range(256)) * (n // 256) + bytes(n % 256)
    view[:] = data
    view.release()
    assert bytes(payload) == data


def test_the_compiled_build_hands_out_bytes() -> None:
    payload, view = _impl.payload_buffer(10)
    view[:] = b"0123456789"
    expected = bytes if _impl.KERNELS == "compiled" else bytearray
    assert type(payload) is expected
    assert payload == b"0123456789"


@pytest.mark.parametrize("impl", [_impl.payload_buffer, _kernels_py.payload_buffer])
def test_a_negative_size_is_refused(impl: object) -> None:
    with pytest.raises(ValueError, match="negative"):
        impl(-1)  # type: ignore[operator]
