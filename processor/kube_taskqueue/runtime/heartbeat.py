"""The heartbeat: renews the visibility of every held message before its window runs out.

It keeps running while in-flight work finishes at shutdown, so a long task is never handed
to a second worker, not even during a rolling update. It has an SQS client of its own, whose
calls are bounded well below half the shortest visibility window and never retried by
botocore (see `clients.renewal_timeout_seconds`): a renewal that hangs costs one short
timeout, and the next beat tries again while the window still has room. Each batch is claimed
in the in-flight table for the length of its call, so a message settled meanwhile (deleted,
retried, given back) waits for that answer and is never renewed afterwards.
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
        self,
        *,
        client: SqsClient,
        in_flight: InFlight,
        metrics: Metrics,
        tick: float,
        call_timeout: float,
    ) -> None:
        self._client = client
        self._in_flight = in_flight
        self._metrics = metrics
        self._tick = tick
        self._call_timeout = call_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskqueue-heartbeat", daemon=True)
        #: Monotonic time of the last beat or renewal call the thread got through.
        self.last_progress = time.monotonic()

    def start(self) -> None:
        self.last_progress = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # A beat under way ends within its calls' bounds.
        self._thread.join(self._tick + self._call_timeout * 4 + 5)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            next_beat = time.monotonic() + self._tick
            while not self._stop.wait(max(0.0, next_beat - time.monotonic())):
                started = time.monotonic()
                self.beat(now=started)
                # At a fixed rate: after a slow beat (a renewal that timed out) the next one
                # comes at once, while the window of what it failed to renew still has room.
                next_beat = max(next_beat + self._tick, started)
        except BaseException:
            log.critical("the visibility heartbeat failed; held messages are not renewed")
            raise

    def beat(self, *, now: float) -> None:
        """Renew everything due at `now`; a failed renewal is tried again on the next tick."""
        self.last_progress = now
        by_queue: dict[QueueUrl, list[Held]] = defaultdict(list)
        for held in self._in_flight.due_for_renewal(now=now):
            by_queue[held.queue_url].append(held)
        for queue_url, due in by_queue.items():
            for start in range(0, len(due), MAX_BATCH):
                claimed = self._in_flight.claim(due[start : start + MAX_BATCH])
                if claimed:
                    self._renew(queue_url, claimed)
                self.last_progress = time.monotonic()

    def _renew(self, queue_url: QueueUrl, batch: list[Held]) -> None:
        entries = [
            {
                "Id": str(index),
                "ReceiptHandle": held.message.receipt_handle,
                "VisibilityTimeout": held.visibility_seconds,
            }
            for index, held in enumerate(batch)
        ]
        renewed: list[ReceiptHandle] = []
        # The new window counts from when the call was sent: SQS may apply it any time after.
        sent_at = time.monotonic()
        try:
            response = self._client.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=entries
            )
        except Exception as error:
            self._metrics.sqs_errors.labels(call="extend_visibility").inc()
            log.warning("visibility renewal of %d messages failed: %s", len(batch), error)
        else:
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
        finally:
            # Always: a settled message waits for this before its outcome is sent.
            self._in_flight.renewal_done(batch, renewed, now=sent_at)
