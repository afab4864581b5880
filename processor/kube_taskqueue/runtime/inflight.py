"""The messages this processor holds, and the free-worker count that bounds receiving.

Every received message is held from receive until it is deleted, retried or returned; the
heartbeat renews the visibility of what is held. This table is the one owner of a message's
state: an outcome is sent only by the caller that releases the message here, and a renewal
only for a message claimed here, so a renewal never follows (and undoes) an outcome.
Times are `time.monotonic()` seconds passed in by the caller, so the timing rules are pure
and tested with a fake clock.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
from collections.abc import Collection

from kube_taskqueue.sqs import QueueUrl, ReceiptHandle
from kube_taskqueue.task import Message


@dataclasses.dataclass(kw_only=True, eq=False)
class Held:
    """One message held by this processor."""

    message: Message
    queue_url: QueueUrl
    visibility_seconds: int
    visible_until: float
    started_at: float | None = None
    task: str | None = None
    timeout_seconds: float | None = None
    #: A renewal of this message is on the wire (set and cleared by `InFlight` only).
    renewing: bool = False

    @property
    def renew_at(self) -> float:
        # Renew at half the window: one failed renewal still leaves time for the next.
        return self.visible_until - self.visibility_seconds / 2


class InFlight:
    """Thread-safe registry of held messages, keyed by receipt handle."""

    def __init__(self, *, renewal_wait_seconds: float = 30.0) -> None:
        """`renewal_wait_seconds` bounds how long `release` waits for a renewal on the wire:
        a little more than one renewal call may take, so a stuck heartbeat cannot hold a
        worker forever."""
        self._changed = threading.Condition()
        self._held: dict[ReceiptHandle, Held] = {}
        self._renewal_wait = renewal_wait_seconds

    def add(self, held: Held) -> None:
        with self._changed:
            self._held[held.message.receipt_handle] = held

    def release(self, receipt: ReceiptHandle) -> Held | None:
        """Stop holding a message, for the one caller that settles it (delete, retry, return).

        None when it was released already: the caller then sends nothing, so each receive
        gets one outcome. When a renewal of the message is on the wire, this waits for its
        answer first: answered after the outcome's own visibility change, it would undo it
        (a retry's backoff reset to a full window, a returned message hidden again).
        """
        with self._changed:
            held = self._held.pop(receipt, None)
            if held is not None and held.renewing:
                self._changed.wait_for(lambda: not held.renewing, timeout=self._renewal_wait)
            return held

    def release_all(self) -> list[Held]:
        """Release every held message (a forced stop returns them all)."""
        with self._changed:
            held = list(self._held.values())
            self._held.clear()
            self._changed.wait_for(
                lambda: not any(item.renewing for item in held), timeout=self._renewal_wait
            )
            return held

    def start(
        self, receipt: ReceiptHandle, *, now: float, task: str, timeout: float | None
    ) -> None:
        with self._changed:
            held = self._held.get(receipt)
            if held is not None:
                held.started_at, held.task, held.timeout_seconds = now, task, timeout

    def due_for_renewal(self, *, now: float) -> list[Held]:
        with self._changed:
            return [held for held in self._held.values() if held.renew_at <= now]

    def claim(self, candidates: list[Held]) -> list[Held]:
        """Mark for one renewal call those candidates still held and not being renewed.

        A message released in the meantime is left out, so it is never renewed again; one
        claimed stays held until `renewal_done`, so it cannot be settled mid-call.
        """
        with self._changed:
            claimed = [
                held
                for held in candidates
                if self._held.get(held.message.receipt_handle) is held and not held.renewing
            ]
            for held in claimed:
                held.renewing = True
            return claimed

    def renewal_done(
        self, claimed: list[Held], renewed: Collection[ReceiptHandle], *, now: float
    ) -> None:
        """End the renewal call of `claimed`; those in `renewed` were extended at `now`."""
        with self._changed:
            for held in claimed:
                held.renewing = False
            self.renewed(list(renewed), now=now)
            self._changed.notify_all()

    def renewed(self, receipts: list[ReceiptHandle], *, now: float) -> None:
        with self._changed:
            for receipt in receipts:
                held = self._held.get(receipt)
                if held is not None:
                    held.visible_until = now + held.visibility_seconds

    def hung(self, *, now: float) -> list[Held]:
        """Started messages whose task has run past its own timeout."""
        with self._changed:
            return [
                held
                for held in self._held.values()
                if held.started_at is not None
                and held.timeout_seconds is not None
                and now - held.started_at > held.timeout_seconds
            ]

    def running(self) -> list[Held]:
        with self._changed:
            return [held for held in self._held.values() if held.started_at is not None]

    def count(self, queue: str | None = None) -> int:
        with self._changed:
            if queue is None:
                return len(self._held)
            return sum(1 for held in self._held.values() if held.message.queue == queue)


class Slots:
    """Free workers. A poller reserves slots before it receives, so no message waits in a
    local buffer while its visibility runs out.

    Slots go to waiting pollers first come, first served: a busy queue's poller, which asks
    again as soon as it has handed over a batch, cannot keep every freed worker from the
    other queues' pollers. `waiting` tells an idle queue that others want workers now.
    """

    def __init__(self, total: int) -> None:
        self._free = total
        self.total = total
        self._changed = threading.Condition()
        self._line: collections.deque[int] = collections.deque()
        self._tickets = itertools.count()

    def reserve(self, *, most: int, timeout: float, gather: float = 0.0) -> int:
        """Take between 1 and `most` free slots, waiting up to `timeout`; 0 if none came.

        Once one slot is free, wait up to `gather` seconds more for `most` of them: workers
        finishing a batch free their slots one after another, and a fuller receive costs
        the same single SQS call.
        """
        with self._changed:
            ticket = next(self._tickets)
            self._line.append(ticket)
            try:
                if not self._changed.wait_for(
                    lambda: self._free > 0 and self._line[0] == ticket, timeout=timeout
                ):
                    return 0
                if gather > 0 and self._free < most:
                    # First in line: nobody else takes a slot meanwhile, so `_free` only grows.
                    self._changed.wait_for(lambda: self._free >= most, timeout=gather)
                taken = min(most, self._free)
                self._free -= taken
                return taken
            finally:
                self._line.remove(ticket)
                self._changed.notify_all()

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

    @property
    def waiting(self) -> int:
        """Pollers waiting for a free worker right now."""
        with self._changed:
            return len(self._line)
