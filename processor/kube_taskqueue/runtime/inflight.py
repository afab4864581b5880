"""The messages this processor holds, and the free-worker count that bounds receiving.

Every received message is held from receive until it is deleted, retried or returned; the
heartbeat renews the visibility of what is held. Times are `time.monotonic()` seconds passed
in by the caller, so the timing rules are pure and tested with a fake clock.
"""

from __future__ import annotations

import dataclasses
import threading

from kube_taskqueue.sqs import QueueUrl, ReceiptHandle
from kube_taskqueue.task import Message


@dataclasses.dataclass(kw_only=True)
class Held:
    """One message held by this processor."""

    message: Message
    queue_url: QueueUrl
    visibility_seconds: int
    visible_until: float
    started_at: float | None = None
    task: str | None = None
    timeout_seconds: float | None = None

    @property
    def renew_at(self) -> float:
        # Renew at half the window: one failed renewal still leaves time for the next.
        return self.visible_until - self.visibility_seconds / 2


class InFlight:
    """Thread-safe registry of held messages, keyed by receipt handle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[ReceiptHandle, Held] = {}

    def add(self, held: Held) -> None:
        with self._lock:
            self._held[held.message.receipt_handle] = held

    def release(self, receipt: ReceiptHandle) -> Held | None:
        """Stop holding a message (it is being deleted, retried or returned)."""
        with self._lock:
            return self._held.pop(receipt, None)

    def start(
        self, receipt: ReceiptHandle, *, now: float, task: str, timeout: float | None
    ) -> None:
        with self._lock:
            held = self._held.get(receipt)
            if held is not None:
                held.started_at, held.task, held.timeout_seconds = now, task, timeout

    def due_for_renewal(self, *, now: float) -> list[Held]:
        with self._lock:
            return [held for held in self._held.values() if held.renew_at <= now]

    def renewed(self, receipts: list[ReceiptHandle], *, now: float) -> None:
        with self._lock:
            for receipt in receipts:
                held = self._held.get(receipt)
                if held is not None:
                    held.visible_until = now + held.visibility_seconds

    def hung(self, *, now: float) -> list[Held]:
        """Started messages whose task has run past its own timeout."""
        with self._lock:
            return [
                held
                for held in self._held.values()
                if held.started_at is not None
                and held.timeout_seconds is not None
                and now - held.started_at > held.timeout_seconds
            ]

    def running(self) -> list[Held]:
        with self._lock:
            return [held for held in self._held.values() if held.started_at is not None]

    def count(self, queue: str | None = None) -> int:
        with self._lock:
            if queue is None:
                return len(self._held)
            return sum(1 for held in self._held.values() if held.message.queue == queue)


class Slots:
    """Free workers. A poller reserves slots before it receives, so no message waits in a
    local buffer while its visibility runs out."""

    def __init__(self, total: int) -> None:
        self._free = total
        self.total = total
        self._changed = threading.Condition()

    def reserve(self, *, most: int, timeout: float, gather: float = 0.0) -> int:
        """Take between 1 and `most` free slots, waiting up to `timeout`; 0 if none came.

        Once one slot is free, wait up to `gather` seconds more for `most` of them: workers
        finishing a batch free their slots one after another, and a fuller receive costs
        the same single SQS call.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._free > 0, timeout=timeout):
                return 0
            if gather > 0 and self._free < most:
                self._changed.wait_for(lambda: self._free >= most, timeout=gather)
            taken = min(most, self._free)
            self._free -= taken
            return taken

    def give_back(self, count: int) -> None:
        if count <= 0:
            return
        with self._changed:
            self._free += count
            self._changed.notify_all()

    @property
    def free(self) -> int:
        with self._changed:
            return self._free
