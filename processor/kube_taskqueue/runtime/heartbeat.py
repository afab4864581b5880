"""The heartbeat: renews the visibility of every held message before its window runs out.

It keeps running while in-flight work finishes at shutdown, so a long task is never handed
to a second worker, not even during a rolling update.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from kube_taskqueue.runtime.inflight import Held, InFlight
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.sqs import MAX_BATCH, QueueUrl, ReceiptHandle, SqsClient

log = logging.getLogger(__name__)


class Heartbeat:
    """Every `tick` seconds, renews (ChangeMessageVisibilityBatch) the messages that are due."""

    def __init__(
        self, *, client: SqsClient, in_flight: InFlight, metrics: Metrics, tick: float
    ) -> None:
        self._client = client
        self._in_flight = in_flight
        self._metrics = metrics
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskqueue-heartbeat", daemon=True)
        self.last_beat = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._tick + 30)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            self.beat(now=time.monotonic())

    def beat(self, *, now: float) -> None:
        """Renew everything due at `now`; a failed renewal is tried again on the next tick."""
        self.last_beat = now
        by_queue: dict[QueueUrl, list[Held]] = defaultdict(list)
        for held in self._in_flight.due_for_renewal(now=now):
            by_queue[held.queue_url].append(held)
        for queue_url, due in by_queue.items():
            for start in range(0, len(due), MAX_BATCH):
                self._renew(queue_url, due[start : start + MAX_BATCH], now=now)

    def _renew(self, queue_url: QueueUrl, batch: list[Held], *, now: float) -> None:
        entries = [
            {
                "Id": str(index),
                "ReceiptHandle": held.message.receipt_handle,
                "VisibilityTimeout": held.visibility_seconds,
            }
            for index, held in enumerate(batch)
        ]
        try:
            response = self._client.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=entries
            )
        except Exception as error:
            self._metrics.sqs_errors.labels(call="extend_visibility").inc()
            log.warning("visibility renewal of %d messages failed: %s", len(batch), error)
            return
        renewed: list[ReceiptHandle] = []
        for item in response.get("Successful", []):
            held = batch[int(item["Id"])]
            renewed.append(held.message.receipt_handle)
            self._metrics.queue(held.message.queue).extended.inc()
        for item in response.get("Failed", []):
            held = batch[int(item["Id"])]
            log.debug(
                "visibility renewal refused: %s",
                item.get("Code"),
                extra={"message_id": held.message.message_id},
            )
        self._in_flight.renewed(renewed, now=now)
