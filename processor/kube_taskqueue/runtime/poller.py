"""One poller per queue: reserve free workers, receive that many messages, hand them over.

The poller never receives more than the free workers can start right away (no message waits
invisible in a local buffer), long-polls instead of sleeping, and backs off with jitter when
SQS is down or throttling. It runs one receive loop per batch of workers, so a receive round
trip does not cap a busy queue's throughput.

Workers are reserved for what a queue is likely to return, so an idle queue does not tie up
a share of the pool:
- a *busy* queue (its last receive brought messages) takes up to `maxBatchSize` free workers
  and waits at most `_BUSY_WAIT_SECONDS` for messages, so a queue that just ran dry holds
  them only briefly;
- an *idle* queue is watched by its first loop alone, holding one worker for its long poll
  of `min(pollInterval, 20)` s; when other queues are already waiting for workers it polls
  without waiting instead, at most once per `pollInterval`, and lets them have the worker.

Once stop begins no receive is sent: the flag is checked again after the wait for workers,
right before the call. A long poll already under way is let finish; what it brings back is
returned at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kube_taskqueue.config import QueueSettings
from kube_taskqueue.runtime.backoff import CallBackoff
from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.sqs import QueueUrl, ReceiptHandle, SqsClient, describe_error, is_transient
from kube_taskqueue.task import DUE_AT_ATTRIBUTE, Message

log = logging.getLogger(__name__)

#: How often a poller waiting for free workers (or for its queue to turn busy) wakes to
#: show it is alive.
_SLOT_WAIT_SECONDS = 1.0
#: How long a poller with some free workers waits for more, to receive a fuller batch.
#: Short next to an SQS round trip, so a lone message is barely delayed.
_GATHER_SECONDS = 0.005
#: The long-poll wait of a busy queue's receive: long enough to find messages on every SQS
#: server (a short poll samples only some), short enough that the workers it holds are back
#: soon after the queue runs dry.
_BUSY_WAIT_SECONDS = 1


class Poller:
    def __init__(
        self,
        *,
        queue: str,
        physical_name: str,
        settings: QueueSettings,
        client: SqsClient,
        slots: Slots,
        loops: int,
        in_flight: InFlight,
        metrics: Metrics,
        submit: Callable[[Held], None],
        give_back: Callable[[Held], bool],
        stopping: threading.Event,
        submit_group: Callable[[list[Held]], None] | None = None,
    ) -> None:
        self.queue = queue
        self._physical_name = physical_name
        self._settings = settings
        self._client = client
        self._slots = slots
        self._most = settings.max_batch_size
        self._in_flight = in_flight
        self._metrics = metrics
        self._submit = submit
        self._submit_group = submit_group
        # FIFO names end so (SQS requires it): their batches go to workers group by group.
        self._fifo = (settings.url or physical_name).endswith(".fifo")
        self._give_back = give_back
        self._stopping = stopping
        self._backoff = CallBackoff()
        self.queue_url: QueueUrl | None = QueueUrl(settings.url) if settings.url else None
        self.receives = 0
        self._last_receive_ok = True
        self._resolve_lock = threading.Lock()
        #: Set while the queue's last receive brought messages; idle queues start unset.
        self._busy = threading.Event()
        #: When an idle queue that gave its worker to others polls again (monotonic).
        self._next_idle_poll = 0.0
        self._threads = [
            threading.Thread(
                target=self._run, args=(i,), name=f"taskqueue-poller-{queue}-{i}", daemon=True
            )
            for i in range(max(1, loops))
        ]
        started = time.monotonic()
        self._progress = {thread.name: started for thread in self._threads}

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def is_alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def any_alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def last_progress(self) -> float:
        """When the least recent of its receive loops last made progress."""
        return min(self._progress.values())

    @last_progress.setter
    def last_progress(self, value: float) -> None:
        for name in self._progress:
            self._progress[name] = value

    @property
    def ready(self) -> bool:
        """The queue was found and SQS answers (a first long poll need not have ended)."""
        return self.queue_url is not None and self._last_receive_ok

    def _run(self, index: int) -> None:
        name = threading.current_thread().name
        while not self._stopping.is_set():
            self._progress[name] = time.monotonic()
            if self.queue_url is None and not self._resolve():
                continue
            if self._busy.is_set():
                reserved = self._slots.reserve(
                    most=self._most, timeout=_SLOT_WAIT_SECONDS, gather=_GATHER_SECONDS
                )
                if reserved:
                    wait = min(_BUSY_WAIT_SECONDS, self._settings.wait_seconds)
                    self._receive_into(reserved, wait=wait)
            elif index == 0:
                self._poll_idle()
            else:
                # The first loop watches an idle queue; another long poll would hold a
                # worker for nothing.
                self._busy.wait(_SLOT_WAIT_SECONDS)

    def _poll_idle(self) -> None:
        now = time.monotonic()
        if now < self._next_idle_poll:
            self._stopping.wait(min(self._next_idle_poll - now, _SLOT_WAIT_SECONDS))
            return
        if not self._slots.reserve(most=1, timeout=_SLOT_WAIT_SECONDS):
            return
        # Others already wait for workers: look without waiting, give the worker back at
        # once if there is nothing, and look again after pollInterval. Otherwise long-poll.
        yielding = self._slots.waiting > 0
        polled_at = time.monotonic()
        received = self._receive_into(1, wait=0 if yielding else self._settings.wait_seconds)
        if yielding and received == 0:
            self._next_idle_poll = polled_at + self._settings.poll_interval

    def _receive_into(self, reserved: int, *, wait: int) -> int:
        """Receive up to `reserved` messages (workers already reserved) and hand them over;
        returns how many came. Unused reservations go back to the pool."""
        if self._stopping.is_set():
            # Stop began while this loop waited for workers: no receive after that.
            self._slots.give_back(reserved)
            return 0
        received, retry_in = self._receive(reserved, wait=wait)
        if retry_in is not None:
            # The workers go back before the backoff: another queue may use them meanwhile.
            self._slots.give_back(reserved)
            self._stopping.wait(retry_in)
            return 0
        self._slots.give_back(reserved - len(received))
        if received:
            self._busy.set()
        else:
            self._busy.clear()
        if self._stopping.is_set():
            # Received while shutting down: nobody will start these, return them now.
            for held in received:
                self._give_back(held)
            self._slots.give_back(len(received))
            return len(received)
        if self._fifo and self._submit_group is not None:
            for group in _by_group(received):
                self._submit_group(group)
        else:
            for held in received:
                self._submit(held)
        return len(received)

    def _resolve(self) -> bool:
        with self._resolve_lock:
            if self.queue_url is not None:
                return True
            return self._look_up()

    def _look_up(self) -> bool:
        try:
            response = self._client.get_queue_url(QueueName=self._physical_name)
        except Exception as error:
            self._metrics.sqs_errors.labels(call="get_queue_url").inc()
            delay = self._backoff.next_delay()
            log.error(
                "cannot look up queue %r (SQS name %r): %s; retrying",
                self.queue,
                self._physical_name,
                describe_error(error),
                extra={"queue": self.queue},
            )
            self._stopping.wait(delay if is_transient(error) else max(delay, 1.0))
            return False
        self.queue_url = QueueUrl(str(response["QueueUrl"]))
        self._backoff.reset()
        return True

    def _receive(self, count: int, *, wait: int) -> tuple[list[Held], float | None]:
        """One ReceiveMessage: the messages it brought, and when it failed the backoff
        delay to wait before the next one."""
        assert self.queue_url is not None
        try:
            response = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self._settings.message_visibility_timeout,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                    "MessageGroupId",
                ],
            )
        except Exception as error:
            self._metrics.sqs_errors.labels(call="receive_message").inc()
            self._last_receive_ok = False
            delay = self._backoff.next_delay()
            log.warning(
                "receive from %r failed (%s); retrying in %.1f s",
                self.queue,
                describe_error(error),
                delay,
                extra={"queue": self.queue},
            )
            return [], delay
        self._backoff.reset()
        self._last_receive_ok = True
        self.receives += 1
        now = time.monotonic()
        held = [self._hold(raw, now) for raw in response.get("Messages", [])]
        if held:
            series = self._metrics.queue(self.queue)
            series.received.inc(len(held))
            series.in_flight.inc(len(held))
            now_ms = time.time() * 1000
            for item in held:
                message = item.message
                # A message sent for later (TaskQueueDueAt) is old by design: not a backlog.
                if message.sent_at_ms is not None and DUE_AT_ATTRIBUTE not in message.attributes:
                    series.age.observe(max(0.0, (now_ms - message.sent_at_ms) / 1000))
        return held, None

    def _hold(self, raw: Mapping[str, Any], now: float) -> Held:
        assert self.queue_url is not None
        system = raw.get("Attributes", {})
        attributes = {
            key: str(value.get("StringValue", ""))
            for key, value in raw.get("MessageAttributes", {}).items()
        }
        message = Message(
            message_id=str(raw["MessageId"]),
            receipt_handle=ReceiptHandle(str(raw["ReceiptHandle"])),
            body=str(raw.get("Body", "")),
            queue=self.queue,
            attributes=attributes,
            receive_count=int(system.get("ApproximateReceiveCount", 1)),
            sent_at_ms=int(system["SentTimestamp"]) if "SentTimestamp" in system else None,
            raw_attributes=raw.get("MessageAttributes", {}),
            group_id=system.get("MessageGroupId"),
        )
        visibility = self._settings.message_visibility_timeout
        held = Held(
            message=message,
            queue_url=self.queue_url,
            visibility_seconds=visibility,
            visible_until=now + visibility,
        )
        self._in_flight.add(held)
        return held


def _by_group(received: list[Held]) -> list[list[Held]]:
    """The messages of one receive by FIFO message group, in the order SQS gave them."""
    groups: dict[str | None, list[Held]] = {}
    for held in received:
        groups.setdefault(held.message.group_id, []).append(held)
    return list(groups.values())
