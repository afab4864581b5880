"""The in-flight table owns each message's state: one outcome per receive, no renewal after
it; free workers go to waiting pollers in turn (fake clock, no SQS)."""

from __future__ import annotations

import threading

from harness import wait_for
from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.sqs import QueueUrl, ReceiptHandle
from kube_taskqueue.task import Message


def held(receipt: str, *, now: float = 0, visibility: int = 30) -> Held:
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


def test_only_the_first_release_settles_a_message():
    table = InFlight()
    table.add(item := held("a"))
    assert table.release(ReceiptHandle("a")) is item
    assert table.release(ReceiptHandle("a")) is None  # a second outcome sends nothing


def test_a_released_message_is_never_claimed_for_renewal():
    table = InFlight()
    table.add(a := held("a"))
    table.add(b := held("b"))
    due = table.due_for_renewal(now=20)
    assert due == [a, b]
    table.release(ReceiptHandle("a"))  # settled between the heartbeat's look and its call
    assert table.claim(due) == [b]
    table.renewal_done([b], [ReceiptHandle("b")], now=20)
    assert b.visible_until == 50


def test_a_release_waits_for_the_renewal_on_the_wire_and_is_not_undone_by_it():
    table = InFlight()
    table.add(item := held("a"))
    [claimed] = table.claim(table.due_for_renewal(now=20))
    released = threading.Event()

    def settle() -> None:
        table.release(ReceiptHandle("a"))
        released.set()

    threading.Thread(target=settle, daemon=True).start()
    assert not released.wait(0.2), "the outcome must wait for the renewal's answer"
    table.renewal_done([claimed], [ReceiptHandle("a")], now=20)
    assert released.wait(5)
    assert table.count() == 0
    assert table.due_for_renewal(now=1000) == []
    assert item.visible_until == 30  # the answer did not extend a message no longer held


def test_a_forced_stop_releases_everything_once():
    table = InFlight()
    table.add(a := held("a"))
    table.add(b := held("b"))
    assert table.release_all() == [a, b]
    assert table.release(ReceiptHandle("a")) is None
    assert table.claim([a, b]) == []


def test_free_workers_go_to_waiting_pollers_in_turn():
    slots = Slots(1)
    assert slots.reserve(most=1, timeout=0) == 1
    order: list[str] = []

    def poller(name: str) -> None:
        if slots.reserve(most=10, timeout=10):
            order.append(name)

    busy = threading.Thread(target=poller, args=("busy",))
    busy.start()
    wait_for(lambda: slots.waiting == 1)
    idle = threading.Thread(target=poller, args=("idle",))
    idle.start()
    wait_for(lambda: slots.waiting == 2)
    slots.give_back(1)  # the first in line gets it, however eager the other is
    busy.join(5)
    assert order == ["busy"]
    slots.give_back(1)
    idle.join(5)
    assert order == ["busy", "idle"]
    assert slots.waiting == 0
