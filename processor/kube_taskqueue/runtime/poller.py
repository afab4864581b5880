"""One poller per queue: reserve free workers, long-poll SQS for that many, hand them over.

The poller never receives more than the free workers can start right away, long-polls
instead of sleeping, and backs off with jitter when SQS is down or throttling. When its share
of workers is larger than one batch, it runs one receive loop per batch (as a hand-written
consumer would), so a receive round trip does not cap the queue's throughput.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kube_taskqueue.config import QueueSettings
from kube_taskqueue.runtime.backoff import CallBackoff
from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.sqs import QueueUrl, ReceiptHandle, SqsClient, describe_error, is_transient
from kube_taskqueue.task import Message

log = logging.getLogger(__name__)

#: How often a poller waiting for free workers wakes to show it is alive.
_SLOT_WAIT_SECONDS = 1.0
#: How long a poller with some free workers waits for more, to receive a fuller batch.
#: Short next to an SQS round trip, so a lone message is barely delayed.
_GATHER_SECONDS = 0.005


class Poller:
    def __init__(
        self,
        *,
        queue: str,
        physical_name: str,
        settings: QueueSettings,
        client: SqsClient,
        slots: Slots,
        share: int,
        in_flight: InFlight,
        metrics: Metrics,
        submit: Callable[[Held], None],
        give_back: Callable[[list[Held]], None],
        stopping: threading.Event,
    ) -> None:
        self.queue = queue
        self._physical_name = physical_name
        self._settings = settings
        self._client = client
        self._slots = slots
        # With several queues, one long-polling queue must not hold every free worker.
        self._most = max(1, min(settings.max_batch_size, share))
        self._in_flight = in_flight
        self._metrics = metrics
        self._submit = submit
        self._give_back = give_back
        self._stopping = stopping
        self._backoff = CallBackoff()
        self.queue_url: QueueUrl | None = QueueUrl(settings.url) if settings.url else None
        self.receives = 0
        self._last_receive_ok = True
        self._resolve_lock = threading.Lock()
        loops = max(1, math.ceil(max(1, share) / settings.max_batch_size))
        self._threads = [
            threading.Thread(target=self._run, name=f"taskqueue-poller-{queue}-{i}", daemon=True)
            for i in range(loops)
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

    def _run(self) -> None:
        name = threading.current_thread().name
        while not self._stopping.is_set():
            self._progress[name] = time.monotonic()
            if self.queue_url is None and not self._resolve():
                continue
            reserved = self._slots.reserve(
                most=self._most, timeout=_SLOT_WAIT_SECONDS, gather=_GATHER_SECONDS
            )
            if not reserved:
                continue
            received = self._receive(reserved)
            self._slots.give_back(reserved - len(received))
            if self._stopping.is_set():
                # Received while shutting down: nobody will start these, return them now.
                self._give_back(received)
                break
            for held in received:
                self._submit(held)

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

    def _receive(self, count: int) -> list[Held]:
        assert self.queue_url is not None
        try:
            response = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=self._settings.wait_seconds,
                VisibilityTimeout=self._settings.message_visibility_timeout,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
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
            self._stopping.wait(delay)
            return []
        self._backoff.reset()
        self._last_receive_ok = True
        self.receives += 1
        now = time.monotonic()
        held = [self._hold(raw, now) for raw in response.get("Messages", [])]
        if held:
            series = self._metrics.queue(self.queue)
            series.received.inc(len(held))
            series.in_flight.inc(len(held))
        return held

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
