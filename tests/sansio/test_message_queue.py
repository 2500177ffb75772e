"""MessageQueue: the asyncio receive queue (compiled, or the pure list subclass)."""

from __future__ import annotations

import pytest

from blazews.sansio.protocol import Message, MessageQueue, Ping, Pong

KINDS = (None, "text", "binary")


def queue_of(*payloads: object) -> MessageQueue:
    queue = MessageQueue(KINDS)
    for i, payload in enumerate(payloads):
        queue.append(Message(1 + i % 2, payload))  # type: ignore[arg-type]
    return queue


def test_take_into_copies_and_advances_until_empty() -> None:
    queue = queue_of(b"hello", b"binary!")
    buf = bytearray(b"." * 10)
    assert queue.take_into(buf) == ("text", 5)
    assert buf == b"hello....."
    assert queue.head == 1 and queue.pending() == 1
    assert queue.take_into(buf) == ("binary", 7)
    assert buf == b"binary!..."
    # The last one taken: the list is cleared (nothing held while idle).
    assert queue == [] and queue.head == 0 and queue.pending() == 0
    assert queue.take_into(buf) is None


def test_take_into_results_are_right_for_every_queue_s_kinds() -> None:
    # Small results are made once and kept (for one tuple of kinds): a queue with
    # other kinds, or a length past the kept ones, still gets its own.
    other = (None, "T", "B")
    buf = bytearray(5000)
    for kinds in (KINDS, other, KINDS):
        queue = MessageQueue(kinds)
        for payload, opcode in ((b"a" * 64, 2), (b"b" * 64, 1), (b"c" * 3000, 2), (b"", 1)):
            queue.append(Message(opcode, payload))
        assert queue.take_into(buf) == (kinds[2], 64)
        assert queue.take_into(buf) == (kinds[1], 64)
        assert queue.take_into(buf) == (kinds[2], 3000)
        assert queue.take_into(buf) == (kinds[1], 0)
        assert bytes(buf[:3]) == b"ccc" and queue.pending() == 0


@pytest.mark.parametrize(
    ("payload", "buf"),
    [
        (b"too long", bytearray(3)),  # does not fit: the caller raises BufferTooSmall
        (b"abc", memoryview(bytearray(8))),  # not a bytearray: the general path
        (memoryview(b"abc"), bytearray(8)),  # a lent view: the general path
    ],
    ids=["too-small", "view-buffer", "view-payload"],
)
def test_take_into_leaves_other_cases_to_the_caller(payload: object, buf: object) -> None:
    queue = queue_of(payload)
    before = bytes(buf)  # type: ignore[call-overload]
    assert queue.take_into(buf) is None
    assert queue.pending() == 1 and queue.head == 0 and bytes(buf) == before  # type: ignore[call-overload]


def test_take_and_unread_keep_the_order() -> None:
    queue = queue_of(b"a", b"b", b"c")
    first = queue.take()
    assert first.data == b"a" and queue.pending() == 2
    queue.unread(first)  # into the slot it left
    assert queue.head == 0 and [m.data for m in queue] == [b"a", b"b", b"c"]
    other = Message(2, b"z")
    queue.unread(other)  # in front of everything
    assert [m.data for m in queue[queue.head :]] == [b"z", b"a", b"b", b"c"]
    assert [queue.take().data for _ in range(4)] == [b"z", b"a", b"b", b"c"]
    assert queue == [] and queue.head == 0


def test_peek_leaves_the_oldest_queued_and_take_of_none_raises() -> None:
    queue = queue_of(b"a", b"b")
    first = queue.peek()
    assert first is not None and first.data == b"a" and queue.pending() == 2
    assert queue.take() is first
    second = queue.peek()
    assert second is not None and second.data == b"b"
    assert queue.take() is second
    assert queue.peek() is None
    with pytest.raises(IndexError):
        queue.take()
    assert queue == [] and queue.head == 0


def test_queue_messages_returns_the_other_events_in_order() -> None:
    queue = MessageQueue(KINDS)
    ping, pong = Ping(b"1"), Pong(b"2")
    events = [Message(1, b"x"), ping, Message(2, b"y"), pong]
    assert queue.queue_messages(events) == [ping, pong]
    assert [m.data for m in queue] == [b"x", b"y"]
    assert queue.queue_messages([Message(2, b"z")]) is None
    assert queue.pending() == 3


@pytest.mark.parametrize("how", ["take", "take_into"])
def test_a_paused_queue_resumes_once_drained_to_resume_at(how: str) -> None:
    resumed: list[int] = []
    queue = MessageQueue(KINDS)
    for _ in range(8):
        queue.append(Message(2, b"m"))
    queue.paused, queue.resume_at = True, 2
    queue.on_resume = lambda: resumed.append(queue.pending())
    buf = bytearray(4)
    for _ in range(8):
        queue.take() if how == "take" else queue.take_into(buf)
    assert resumed == [2] and not queue.paused  # once, at the crossing
    assert queue.on_resume is None  # not kept: it is set again at the next pause
    # Not paused: draining calls nothing.
    queue.append(Message(2, b"m"))
    queue.take()
    assert resumed == [2]
