"""Which held messages are due for renewal, which are hung, and free-worker slots (fake clock)."""

from __future__ import annotations

import threading

from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.sqs import QueueUrl, ReceiptHandle
from kube_taskqueue.task import Message


def held(receipt: str, *, now: float, visibility: int = 30) -> Held:
    message = Message(
        message_id=receipt,
        receipt_handle=ReceiptHandle(receipt),
        body="{}",
        queue="q",
        attributes={},
        receive_count=1,
    )
    return Held(
        message=message,
        queue_url=QueueUrl("u"),
        visibility_seconds=visibility,
        visible_until=now + visibility,
    )


def test_messages_are_due_for_renewal_at_half_their_window():
    registry = InFlight()
    registry.add(held("a", now=0, visibility=30))
    registry.add(held("b", now=10, visibility=30))
    assert registry.due_for_renewal(now=14.9) == []
    assert [h.message.message_id for h in registry.due_for_renewal(now=15)] == ["a"]
    registry.renewed([ReceiptHandle("a")], now=15)
    assert [h.message.message_id for h in registry.due_for_renewal(now=25)] == ["b"]
    assert {h.message.message_id for h in registry.due_for_renewal(now=30)} == {"a", "b"}


def test_released_messages_are_no_longer_renewed():
    registry = InFlight()
    registry.add(held("a", now=0))
    assert registry.release(ReceiptHandle("a")) is not None
    assert registry.release(ReceiptHandle("a")) is None
    assert registry.due_for_renewal(now=100) == []
    assert registry.count() == 0


def test_a_task_past_its_timeout_is_hung():
    registry = InFlight()
    registry.add(held("a", now=0))
    registry.add(held("b", now=0))
    registry.start(ReceiptHandle("a"), now=1, task="t", timeout=5)
    registry.start(ReceiptHandle("b"), now=1, task="t", timeout=None)
    assert registry.hung(now=6) == []
    assert [h.message.message_id for h in registry.hung(now=6.5)] == ["a"]


def test_slots_reserve_at_most_what_is_free_and_wait_for_more():
    slots = Slots(4)
    assert slots.reserve(most=10, timeout=0) == 4
    assert slots.reserve(most=1, timeout=0.01) == 0
    threading.Timer(0.05, slots.give_back, args=(2,)).start()
    assert slots.reserve(most=10, timeout=5) == 2
    slots.give_back(2)
    assert slots.reserve(most=1, timeout=0) == 1
    assert slots.free == 1


def test_reserve_gathers_a_fuller_batch_for_a_short_while():
    slots = Slots(4)
    assert slots.reserve(most=4, timeout=0) == 4
    slots.give_back(1)
    threading.Timer(0.02, slots.give_back, args=(3,)).start()
    assert slots.reserve(most=4, timeout=1, gather=2) == 4
    slots.give_back(1)
    # Nobody frees more: the reserve settles for what there is when the gather time is up.
    assert slots.reserve(most=4, timeout=1, gather=0.01) == 1
