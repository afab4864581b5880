"""The batch acker: deletes finished messages and sets the visibility of retried or returned
ones, ten per call, flushed when ten are waiting or after a short delay.

Workers never call SQS; they hand their outcome here. Entries SQS refuses for a transient
reason are retried; an entry whose receipt is no longer valid is dropped (the message was
already redelivered elsewhere, so nothing is lost). `last_progress` says when the thread last
got through a call or an idle wait, so /healthz can tell a dead or stuck acker (nothing would
be deleted any more) from a busy one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

from kube_taskqueue.runtime.backoff import CallBackoff
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.sqs import MAX_BATCH, QueueUrl, ReceiptHandle, SqsClient, is_transient

log = logging.getLogger(__name__)

#: Receipt errors that retrying cannot fix.
_FINAL_ENTRY_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "MessageNotInflight",
        "InvalidParameterValue",
        "InvalidReceiptHandle",
    }
)


class Action(Enum):
    DELETE = "delete"
    VISIBILITY = "visibility"


class _Sent(Enum):
    OK = "ok"  # the call was answered (some entries may have been refused)
    REFUSED = "refused"  # SQS refused the call itself
    UNREACHABLE = "unreachable"  # no answer: network trouble, throttling, 5xx


@dataclasses.dataclass(kw_only=True)
class Entry:
    receipt: ReceiptHandle
    message_id: str
    queue: str
    visibility_seconds: int = 0
    attempts: int = 0
    on_done: Callable[[bool], None] | None = None


class Acker:
    """Batches DeleteMessageBatch and ChangeMessageVisibilityBatch in one background thread."""

    def __init__(
        self,
        *,
        client: SqsClient,
        metrics: Metrics,
        flush_interval: float = 0.25,
        max_attempts: int = 8,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._flush_interval = flush_interval
        self._max_attempts = max_attempts
        self._pending: dict[tuple[Action, QueueUrl], list[Entry]] = {}
        self._oldest: dict[tuple[Action, QueueUrl], float] = {}
        self._changed = threading.Condition()
        self._stopping = False
        self._backoff = CallBackoff()
        self._thread = threading.Thread(target=self._run, name="taskqueue-acker", daemon=True)
        #: Monotonic time the thread last finished a call or an idle wait.
        self.last_progress = time.monotonic()

    def start(self) -> None:
        self.last_progress = time.monotonic()
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def delete(self, *, queue_url: QueueUrl, entry: Entry) -> None:
        self._add(Action.DELETE, queue_url, entry)

    def set_visibility(self, *, queue_url: QueueUrl, entry: Entry) -> None:
        self._add(Action.VISIBILITY, queue_url, entry)

    def stop(self, *, timeout: float) -> None:
        """Flush everything pending (retrying until `timeout`) and end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)
        if self.pending_count():
            log.error(
                "shutdown: %d acknowledgements could not be sent; those messages will be "
                "delivered again",
                self.pending_count(),
            )

    def pending_count(self) -> int:
        with self._changed:
            return sum(len(entries) for entries in self._pending.values())

    def _add(self, action: Action, queue_url: QueueUrl, entry: Entry) -> None:
        key = (action, queue_url)
        with self._changed:
            entries = self._pending.setdefault(key, [])
            if not entries:
                self._oldest[key] = time.monotonic()
            entries.append(entry)
            if len(entries) >= MAX_BATCH:
                self._changed.notify_all()

    def _take_ready(self) -> list[tuple[Action, QueueUrl, list[Entry]]]:
        """Every full batch, plus partial ones that waited long enough (all when stopping)."""
        now = time.monotonic()
        ready = []
        for key, entries in self._pending.items():
            while len(entries) >= MAX_BATCH:
                ready.append((key[0], key[1], entries[:MAX_BATCH]))
                del entries[:MAX_BATCH]
                self._oldest[key] = now
            if entries and (self._stopping or now - self._oldest[key] >= self._flush_interval):
                ready.append((key[0], key[1], list(entries)))
                entries.clear()
        return ready

    def _has_full_batch(self) -> bool:
        return any(len(entries) >= MAX_BATCH for entries in self._pending.values())

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # Say why before the thread ends; /healthz then reports the acker dead.
            log.critical("the acker thread failed; nothing will be deleted any more", exc_info=True)
            raise

    def _loop(self) -> None:
        while True:
            with self._changed:
                if not (self._stopping or self._has_full_batch()):
                    self._changed.wait(self._flush_interval / 2)
                ready = self._take_ready()
                if self._stopping and not ready and not any(self._pending.values()):
                    return
            self.last_progress = time.monotonic()
            failed_call = False
            for index, (action, queue_url, batch) in enumerate(ready):
                sent = self._send(action, queue_url, batch)
                self.last_progress = time.monotonic()
                if sent is _Sent.UNREACHABLE:
                    # SQS is down or hanging: each further call would wait out its own
                    # timeout. The rest waits for the backoff (not counted as attempts).
                    for later_action, later_url, later in ready[index + 1 :]:
                        self._requeue(
                            later_action, later_url, later, reason="SQS unreachable", count=False
                        )
                    failed_call = True
                    break
                failed_call |= sent is not _Sent.OK
            if failed_call:
                time.sleep(self._backoff.next_delay())
            else:
                self._backoff.reset()

    def _send(self, action: Action, queue_url: QueueUrl, batch: list[Entry]) -> _Sent:
        """Send one batch; when the call itself fails its entries are requeued."""
        by_id = {str(index): entry for index, entry in enumerate(batch)}
        try:
            if action is Action.DELETE:
                response = self._client.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": i, "ReceiptHandle": e.receipt} for i, e in by_id.items()],
                )
            else:
                response = self._client.change_message_visibility_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {
                            "Id": i,
                            "ReceiptHandle": e.receipt,
                            "VisibilityTimeout": e.visibility_seconds,
                        }
                        for i, e in by_id.items()
                    ],
                )
        except Exception as error:
            self._metrics.sqs_errors.labels(call=f"{action.value}_batch").inc()
            log.warning(
                "%s batch of %d failed: %s",
                action.value,
                len(batch),
                error,
                extra={"transient": is_transient(error)},
            )
            # An outage is not the entries' fault: keep them until SQS is back.
            self._requeue(
                action, queue_url, batch, reason=str(error), count=not is_transient(error)
            )
            return _Sent.UNREACHABLE if is_transient(error) else _Sent.REFUSED
        successful = response.get("Successful", [])
        if action is Action.DELETE and successful:
            # A batch is for one queue URL, so for one queue.
            self._metrics.queue(batch[0].queue).deleted.inc(len(successful))
        for item in successful:
            _done(by_id[item["Id"]], ok=True)
        retry = []
        for item in response.get("Failed", []):
            entry = by_id[item["Id"]]
            if item.get("Code") in _FINAL_ENTRY_CODES:
                log.warning(
                    "%s of message %s refused: %s %s; it will be delivered again",
                    action.value,
                    entry.message_id,
                    item.get("Code"),
                    item.get("Message", ""),
                    extra={"message_id": entry.message_id, "queue": entry.queue},
                )
                _done(entry, ok=False)
            else:
                retry.append(entry)
        if retry:
            self._requeue(action, queue_url, retry, reason="entries failed")
        return _Sent.OK

    def _requeue(
        self,
        action: Action,
        queue_url: QueueUrl,
        batch: list[Entry],
        *,
        reason: str,
        count: bool = True,
    ) -> None:
        for entry in batch:
            entry.attempts += 1 if count else 0
            if entry.attempts >= self._max_attempts:
                log.error(
                    "giving up %s of message %s after %d attempts (%s); it will be delivered again",
                    action.value,
                    entry.message_id,
                    entry.attempts,
                    reason,
                    extra={"message_id": entry.message_id, "queue": entry.queue},
                )
                _done(entry, ok=False)
            else:
                self._add(action, queue_url, entry)


def _done(entry: Entry, *, ok: bool) -> None:
    if entry.on_done is not None:
        try:
            entry.on_done(ok)
        except Exception:
            log.exception("acknowledgement callback failed")
