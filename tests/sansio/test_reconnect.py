"""The reconnection policy, :mod:`blazews.sansio.reconnect`, driven by a fake clock and
a fake random source: what retries, and the backoff's bounds."""

from __future__ import annotations

import email.utils
import ssl

import pytest

from blazews import ClientOptions
from blazews.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHeader,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from blazews.sansio.frames import Close
from blazews.sansio.http11 import Headers, Response
from blazews.sansio.reconnect import Reconnect, default_process_exception, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def status(code: int, *headers: tuple[str, str]) -> InvalidStatus:
    return InvalidStatus(Response(code, "X", Headers(list(headers)), b""))


def closed(code: int | None, ok: bool = False) -> ConnectionClosedError | ConnectionClosedOK:
    rcvd = None if code is None else Close(code, "")
    kind = ConnectionClosedOK if ok else ConnectionClosedError
    return kind(rcvd, Close(code or 1000, ""), True)


@pytest.mark.parametrize(
    "exc",
    [
        OSError("refused"),
        ConnectionRefusedError(),
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),  # a reset during TLS
        TimeoutError(),
        status(500),
        status(503),
        status(429),
        *(closed(code) for code in (1001, 1011, 1012, 1013, 1014)),
        closed(None),  # 1006: no close frame
        InvalidProxy("closed"),
        InvalidProxy("bad gateway", 502),
        InvalidProxy("socks: host unreachable", transient=True),
    ],
    ids=repr,
)
def test_retries(exc: Exception) -> None:
    assert default_process_exception(exc) is None


@pytest.mark.parametrize(
    "exc",
    [
        status(400),
        status(403),
        status(404),
        InvalidURI("x"),
        NegotiationError("no"),
        InvalidHeader("Upgrade", "bad"),
        closed(1008),
        closed(1002),
        closed(1000, ok=True),
        InvalidProxy("auth", 407),
        InvalidProxy("socks: not allowed", transient=False),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
        ValueError("a bug"),
    ],
    ids=repr,
)
def test_raises_at_once(exc: Exception) -> None:
    assert default_process_exception(exc) is exc
    policy = Reconnect()
    with pytest.raises(type(exc)):
        policy.failed(exc)


def test_full_jitter_bounds_grow_to_the_maximum() -> None:
    draws = [1.0 - 1e-9, 0.0, 0.5]
    policy = Reconnect(0.5, 10.0, 2.0, rand=lambda: draws[0])
    highs = []
    for _ in range(8):
        highs.append(policy.failed(OSError()))
    assert highs == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0], rel=1e-6)
    policy.rand = lambda: draws[1]
    assert policy.failed(OSError()) == 0.0  # full jitter: down to zero
    policy.rand = lambda: draws[2]
    assert policy.failed(OSError()) == pytest.approx(5.0)


def test_a_huge_failure_count_does_not_overflow() -> None:
    policy = Reconnect(1.0, 30.0, 10.0, rand=lambda: 0.999)
    policy.failures = 100_000
    assert policy.failed(OSError()) == pytest.approx(29.97)


def test_a_long_lived_connection_resets_the_backoff() -> None:
    clock = Clock()
    policy = Reconnect(1.0, 60.0, 2.0, reset_after=30.0, clock=clock, rand=lambda: 0.999)
    for _ in range(4):
        policy.failed(OSError())
    assert policy.bound() == 16.0
    policy.opened()
    clock.now += 10.0  # too short-lived: the count goes on
    assert policy.closed(closed(1012), by_us=False) == pytest.approx(15.984)
    assert policy.bound() == 32.0
    policy.opened()
    clock.now += 30.0
    assert policy.closed(closed(None), by_us=False) == pytest.approx(0.999)
    assert policy.failures == 1


def test_retry_after_is_honoured_up_to_max_delay() -> None:
    policy = Reconnect(1.0, 60.0, rand=lambda: 0.0)
    assert policy.failed(status(503, ("Retry-After", "7"))) == 7.0
    assert policy.failed(status(429, ("Retry-After", "100000"))) == 60.0
    policy = Reconnect(1.0, 60.0, rand=lambda: 0.999)
    assert policy.failed(status(503, ("Retry-After", "0"))) == pytest.approx(0.999)


def test_retry_after_forms() -> None:
    assert retry_after(status(503, ("Retry-After", " 12 "))) == 12.0
    date = email.utils.formatdate(1_000_100.0, usegmt=True)
    assert retry_after(status(503, ("Retry-After", date)), now=1_000_000.0) == 100.0
    assert retry_after(status(503, ("Retry-After", date)), now=2_000_000.0) == 0.0
    assert retry_after(status(503, ("Retry-After", "soon"))) is None
    assert retry_after(status(503, ("Retry-After", "-3"))) is None
    assert retry_after(status(503)) is None
    assert retry_after(OSError()) is None


def test_closes() -> None:
    policy = Reconnect(1.0, 60.0, rand=lambda: 0.5)
    assert policy.closed(closed(1000, ok=True), by_us=False) is None  # the server ended it
    with pytest.raises(ConnectionClosedError):
        policy.closed(closed(1008), by_us=False)
    # The application closed it, or moved on: reconnect, without counting a failure.
    assert policy.closed(closed(1000, ok=True), by_us=True) == 0.5
    assert policy.failures == 0


def test_process_exception_decides() -> None:
    seen: list[Exception] = []

    def decide(exc: Exception) -> Exception | None:
        seen.append(exc)
        return None if isinstance(exc, InvalidStatus) else RuntimeError("stop")

    policy = Reconnect(process_exception=decide, rand=lambda: 0.0)
    assert policy.failed(status(403)) == 0.0
    with pytest.raises(RuntimeError, match="stop"):
        policy.failed(OSError())
    assert [type(e) for e in seen] == [InvalidStatus, OSError]


def test_options_set_the_policy() -> None:
    def hook(exc: Exception) -> Exception | None:
        return None

    options = ClientOptions(
        reconnect_initial_delay=0.25,
        reconnect_max_delay=3.0,
        reconnect_factor=3.0,
        reconnect_reset_after=5.0,
        process_exception=hook,
    )
    policy = Reconnect.of(options)
    assert (policy.initial_delay, policy.max_delay, policy.factor) == (0.25, 3.0, 3.0)
    assert policy.reset_after == 5.0 and policy.process_exception is hook
    with pytest.raises(ValueError, match="reconnect_factor"):
        ClientOptions(reconnect_factor=0.5)
    with pytest.raises(ValueError, match="reconnect_max_delay"):
        ClientOptions(reconnect_max_delay=-1)
    with pytest.raises(TypeError, match="process_exception"):
        ClientOptions(process_exception=3)  # type: ignore[arg-type]
