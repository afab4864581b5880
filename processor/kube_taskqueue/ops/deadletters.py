"""Dead-letter queues: counts, a look at their messages, redrive and purge.

A dead-letter queue (DLQ) is read with ReceiveMessage, which hides what it returns: every
look holds the messages for a short visibility window and gives them back (visibility 0)
when done, so nothing is deleted and the source queue is never read. Messages returned
twice during one scan are recognised by their message id, so a scan ends when the DLQ has
nothing new to show.

A redrive sends a copy of each message to its source queue — the body and every message
attribute (JobName, TraceId and the user's), a fresh deduplication id on FIFO queues — and
deletes the DLQ message only once the copy is sent. A journal of what was sent makes an
interrupted redrive safe to re-run: a message already copied is deleted, not sent again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kube_taskqueue.ops.journal import RedriveJournal
from kube_taskqueue.sqs import MAX_BATCH
from kube_taskqueue.task import JOB_NAME_ATTRIBUTE, TRACE_ID_ATTRIBUTE

#: Seconds a scanned message stays hidden before it is given back (long enough for a batch
#: to be copied and deleted; a scan gives messages back as soon as it is done).
SCAN_VISIBILITY_SECONDS = 60
#: Set to `after-send` (tests only), a redrive exits at once after its first copies are sent
#: and journaled but before their dead letters are deleted: the worst moment to be killed.
FAILPOINT_ENV = "TASKQUEUE_REDRIVE_FAILPOINT"
#: Empty receives in a row after which a DLQ counts as scanned (SQS samples its servers:
#: one empty short poll does not prove a queue empty).
EMPTY_RECEIVES_TO_STOP = 2


class DeadLetterError(Exception):
    """A queue without a dead-letter queue, or one this tool cannot use; one line."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueuePair:
    """A source queue and its dead-letter queue."""

    queue: str
    """The logical queue name (as in the processor config or the TaskQueue)."""
    url: str
    arn: str
    dead_letter_url: str
    dead_letter_arn: str
    fifo: bool

    @property
    def dead_letter_name(self) -> str:
        return self.dead_letter_url.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Counts:
    visible: int
    in_flight: int
    delayed: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One message of a dead-letter queue, as received."""

    message_id: str
    receipt_handle: str
    body: str
    task: str | None
    trace_id: str | None
    receive_count: int
    sent: datetime | None
    first_receive: datetime | None
    source_arn: str | None
    group_id: str | None
    message_attributes: Mapping[str, Any]

    def as_dict(self, *, body_limit: int | None) -> dict[str, Any]:
        body = self.body if body_limit is None else _truncate(self.body, body_limit)
        return {
            "id": self.message_id,
            "task": self.task,
            "traceId": self.trace_id,
            "receiveCount": self.receive_count,
            "sent": _iso(self.sent),
            "firstReceive": _iso(self.first_receive),
            "groupId": self.group_id,
            "body": body,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class Selection:
    """Which dead letters an operation takes: by task name and by age (since sent)."""

    task: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    limit: int | None = None

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.task, self.older_than, self.newer_than))

    def matches(self, message: DeadLetter, now: datetime) -> bool:
        if self.task is not None and message.task != self.task:
            return False
        age = None if message.sent is None else now - message.sent
        if self.older_than is not None and (age is None or age < self.older_than):
            return False
        return not (self.newer_than is not None and (age is None or age > self.newer_than))


@dataclasses.dataclass(kw_only=True)
class Summary:
    """What a redrive or purge did."""

    path: str
    moved: int = 0
    deleted: int = 0
    skipped: int = 0
    """Messages left in the DLQ: not selected, or from another source queue."""
    failed: int = 0
    """Messages that could not be sent or deleted (still in the DLQ; re-run)."""
    dry_run: bool = False
    tasks: Counter[str] = dataclasses.field(default_factory=Counter)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def age_text(moment: datetime | None) -> str:
    """How long ago, in its largest whole unit (`3d`, `5h`, `12m`, `40s`); `-` for never."""
    if moment is None:
        return "-"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _timestamp(attributes: Mapping[str, str], name: str) -> datetime | None:
    value = attributes.get(name)
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _string_attribute(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name) or {}
    text = value.get("StringValue")
    return None if text is None else str(text)


def dead_letter(message: Mapping[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes") or {}
    user = message.get("MessageAttributes") or {}
    return DeadLetter(
        message_id=str(message["MessageId"]),
        receipt_handle=str(message["ReceiptHandle"]),
        body=str(message.get("Body", "")),
        task=_string_attribute(user, JOB_NAME_ATTRIBUTE),
        trace_id=_string_attribute(user, TRACE_ID_ATTRIBUTE),
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        sent=_timestamp(attributes, "SentTimestamp"),
        first_receive=_timestamp(attributes, "ApproximateFirstReceiveTimestamp"),
        source_arn=attributes.get("DeadLetterQueueSourceArn"),
        group_id=attributes.get("MessageGroupId"),
        message_attributes=user,
    )


def locate(client: Any, *, queue: str, url: str) -> QueuePair:
    """The queue at `url` and its dead-letter queue (from the queue's RedrivePolicy)."""
    attributes = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy", "FifoQueue"]
    )["Attributes"]
    policy = attributes.get("RedrivePolicy")
    if not policy:
        raise DeadLetterError(
            f"queue {queue!r} ({url.rsplit('/', 1)[-1]}) has no dead-letter queue (no "
            "RedrivePolicy); give the queue a deadLetter setting in its TaskQueue"
        )
    target = str(json.loads(policy)["deadLetterTargetArn"])
    dead_letter_url = client.get_queue_url(
        QueueName=target.rsplit(":", 1)[-1], QueueOwnerAWSAccountId=target.split(":")[4]
    )["QueueUrl"]
    return QueuePair(
        queue=queue,
        url=url,
        arn=str(attributes["QueueArn"]),
        dead_letter_url=str(dead_letter_url),
        dead_letter_arn=target,
        fifo=str(attributes.get("FifoQueue", "false")).lower() == "true",
    )


def counts(client: Any, url: str) -> Counts:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return Counts(
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


class Scan:
    """Receives a DLQ's messages once each, holding them hidden until `release()`."""

    def __init__(self, client: Any, url: str, *, visibility: int = SCAN_VISIBILITY_SECONDS) -> None:
        self._client = client
        self._url = url
        self._visibility = visibility
        self._held: dict[str, str] = {}  # message id -> latest receipt handle

    def batches(self, *, until: int | None = None) -> Iterator[list[DeadLetter]]:
        """Batches of messages not seen before in this scan, until the DLQ shows nothing
        new (or `until` messages have been seen)."""
        empty = 0
        while empty < EMPTY_RECEIVES_TO_STOP and (until is None or len(self._held) < until):
            response = self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=MAX_BATCH,
                VisibilityTimeout=self._visibility,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            fresh = []
            for raw in response.get("Messages") or []:
                message = dead_letter(raw)
                if message.message_id not in self._held:
                    fresh.append(message)
                self._held[message.message_id] = message.receipt_handle
            empty = 0 if fresh else empty + 1
            if fresh:
                yield fresh

    def forget(self, message_id: str) -> None:
        """A message deleted by the caller: nothing to give back."""
        self._held.pop(message_id, None)

    def release(self) -> None:
        """Give back every message still held (visible again at once)."""
        handles = list(self._held.items())
        self._held.clear()
        for start in range(0, len(handles), MAX_BATCH):
            chunk = handles[start : start + MAX_BATCH]
            self._client.change_message_visibility_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, (_, handle) in enumerate(chunk)
                ],
            )


def peek(
    client: Any,
    pair: QueuePair,
    selection: Selection,
    *,
    now: datetime | None = None,
    visibility: int = SCAN_VISIBILITY_SECONDS,
) -> list[DeadLetter]:
    """Up to `selection.limit` dead letters that match, left in place."""
    moment = now or datetime.now(UTC)
    scan = Scan(client, pair.dead_letter_url, visibility=visibility)
    found: list[DeadLetter] = []
    try:
        for batch in scan.batches():
            found.extend(m for m in batch if selection.matches(m, moment))
            if selection.limit is not None and len(found) >= selection.limit:
                break
    finally:
        scan.release()
    return found[: selection.limit] if selection.limit is not None else found


def breakdown(
    client: Any, pair: QueuePair, *, visibility: int = SCAN_VISIBILITY_SECONDS
) -> tuple[Counter[str], datetime | None]:
    """Dead letters per task name, and when the oldest was sent (from one full scan)."""
    tasks: Counter[str] = Counter()
    oldest: datetime | None = None
    for message in peek(client, pair, Selection(), visibility=visibility):
        tasks[message.task or "(no JobName)"] += 1
        if message.sent is not None and (oldest is None or message.sent < oldest):
            oldest = message.sent
    return tasks, oldest


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueReport:
    """A queue and its dead-letter queue at a glance."""

    pair: QueuePair
    source: Counts
    dead_letters: Counts
    by_task: Counter[str]
    oldest: datetime | None
    """When the oldest dead letter was sent (None: the DLQ is empty)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.pair.queue,
            "visible": self.source.visible,
            "inFlight": self.source.in_flight,
            "delayed": self.source.delayed,
            "deadLetterQueue": self.pair.dead_letter_name,
            "deadLetters": self.dead_letters.visible + self.dead_letters.in_flight,
            "oldestDeadLetter": _iso(self.oldest),
            "deadLettersByTask": dict(self.by_task.most_common()),
        }


def report(
    client: Any, pair: QueuePair, *, visibility: int = SCAN_VISIBILITY_SECONDS
) -> QueueReport:
    tasks, oldest = breakdown(client, pair, visibility=visibility)
    return QueueReport(
        pair=pair,
        source=counts(client, pair.url),
        dead_letters=counts(client, pair.dead_letter_url),
        by_task=tasks,
        oldest=oldest,
    )


def _copy_entry(index: int, message: DeadLetter, fifo: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
    attributes = {
        name: {
            key: value[key]
            for key in ("DataType", "StringValue", "BinaryValue")
            if value.get(key) is not None
        }
        for name, value in message.message_attributes.items()
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    if fifo:
        entry["MessageGroupId"] = message.group_id or message.task or "redrive"
        # Not the original id: SQS would drop a copy sent with it within its 5-minute window.
        # One id per DLQ message: a copy re-sent after an interruption is deduplicated.
        entry["MessageDeduplicationId"] = f"redrive-{message.message_id}"[:128]
    return entry


Progress = Callable[[int], None]


def redrive(
    client: Any,
    pair: QueuePair,
    selection: Selection,
    *,
    journal: RedriveJournal,
    rate: float | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
    visibility: int = SCAN_VISIBILITY_SECONDS,
) -> Summary:
    """Move the selected dead letters back to their source queue, at least once and, with
    the journal, without duplicates across re-runs. Messages from another source queue
    (a DLQ shared by several queues) are left in place."""
    moment = now or datetime.now(UTC)
    summary = Summary(path="receive, send, delete", dry_run=dry_run)
    scan = Scan(client, pair.dead_letter_url, visibility=visibility)
    started = time.monotonic()
    try:
        for batch in scan.batches():
            chosen = []
            for message in batch:
                wanted = selection.matches(message, moment) and (
                    message.source_arn in (None, pair.arn)
                )
                if wanted and (selection.limit is None or summary.moved < selection.limit):
                    chosen.append(message)
                    summary.moved += 1
                else:
                    summary.skipped += 1
            if dry_run:
                summary.tasks.update(m.task or "(no JobName)" for m in chosen)
                continue
            moved = _move(client, pair, chosen, journal, summary)
            for message in moved:
                scan.forget(message.message_id)
            if progress is not None and moved:
                progress(len(moved))
            if rate:  # messages per second, over the whole run
                ahead = summary.moved / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if selection.limit is not None and summary.moved >= selection.limit:
                break
    finally:
        scan.release()
    return summary


def _move(
    client: Any,
    pair: QueuePair,
    messages: Sequence[DeadLetter],
    journal: RedriveJournal,
    summary: Summary,
) -> list[DeadLetter]:
    """Copy (unless the journal says it is copied already), then delete; returns those gone
    from the DLQ. A message whose copy or delete failed stays and is counted as failed."""
    to_send = [m for m in messages if not journal.sent(m.message_id)]
    sent_ids = {m.message_id for m in messages} - {m.message_id for m in to_send}
    if to_send:
        response = client.send_message_batch(
            QueueUrl=pair.url,
            Entries=[_copy_entry(i, m, pair.fifo) for i, m in enumerate(to_send)],
        )
        for entry in response.get("Successful") or []:
            message = to_send[int(entry["Id"])]
            journal.record(message.message_id)
            sent_ids.add(message.message_id)
    if to_send and os.environ.get(FAILPOINT_ENV) == "after-send":
        os._exit(70)
    sent = [m for m in messages if m.message_id in sent_ids]
    summary.failed += len(messages) - len(sent)
    summary.moved -= len(messages) - len(sent)
    if not sent:
        return []
    response = client.delete_message_batch(
        QueueUrl=pair.dead_letter_url,
        Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(sent)],
    )
    gone = [sent[int(entry["Id"])] for entry in response.get("Successful") or []]
    for message in gone:
        journal.done(message.message_id)
        summary.tasks[message.task or "(no JobName)"] += 1
    # A failed delete leaves a message that is already copied: the journal has it, so a
    # re-run deletes it without sending it again.
    summary.failed += len(sent) - len(gone)
    summary.moved -= len(sent) - len(gone)
    return gone


def move_task(client: Any, pair: QueuePair, *, rate: float | None) -> str | None:
    """Start SQS's own message move task (DLQ → source, attributes kept); its handle, or
    None when the server does not offer it (then the caller moves messages itself)."""
    options: dict[str, Any] = {"SourceArn": pair.dead_letter_arn, "DestinationArn": pair.arn}
    if rate:
        options["MaxNumberOfMessagesPerSecond"] = max(1, int(rate))
    try:
        response = client.start_message_move_task(**options)
    except Exception as error:
        if _unsupported(error):
            return None
        raise
    return str(response["TaskHandle"])


def _unsupported(error: Exception) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, Mapping):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    # moto answers 500 (NotImplementedError); others an unknown-operation error.
    return status in (400, 404, 500, 501) and (
        status >= 500 or "Unknown" in code or "Invalid" in code or "NotImplemented" in code
    )


def wait_for_move(
    client: Any,
    pair: QueuePair,
    *,
    timeout: float,
    progress: Progress | None = None,
    poll: float = 1.0,
) -> Summary:
    """Follow the move task of the DLQ until it ends; its counts as a Summary."""
    deadline = time.monotonic() + timeout
    reported = 0
    while True:
        tasks = client.list_message_move_tasks(SourceArn=pair.dead_letter_arn, MaxResults=1)
        latest = (tasks.get("Results") or [{}])[0]
        moved = int(latest.get("ApproximateNumberOfMessagesMoved", 0))
        if progress is not None and moved > reported:
            progress(moved - reported)
            reported = moved
        status = latest.get("Status")
        if status in ("COMPLETED", "CANCELLED", "FAILED"):
            summary = Summary(path="SQS message move task", moved=moved)
            if status != "COMPLETED":
                summary.failed = max(0, int(latest.get("ApproximateNumberOfMessagesToMove", 0)))
                raise DeadLetterError(
                    f"the message move task ended {status}: {latest.get('FailureReason', '')}"
                    f" ({moved} moved; re-run to move the rest)"
                )
            return summary
        if time.monotonic() > deadline:
            raise DeadLetterError(
                f"the message move task is still running after {timeout:.0f} s ({moved} moved "
                "so far); it goes on in SQS — check with `dlq stats`"
            )
        time.sleep(poll)


def purge(
    client: Any,
    pair: QueuePair,
    selection: Selection,
    *,
    now: datetime | None = None,
    visibility: int = SCAN_VISIBILITY_SECONDS,
) -> Summary:
    """Delete dead letters: all of them (SQS PurgeQueue) or the selected ones."""
    if not selection.filtered and selection.limit is None:
        before = counts(client, pair.dead_letter_url)
        client.purge_queue(QueueUrl=pair.dead_letter_url)
        return Summary(path="PurgeQueue", deleted=before.visible + before.in_flight)
    moment = now or datetime.now(UTC)
    summary = Summary(path="receive, delete")
    scan = Scan(client, pair.dead_letter_url, visibility=visibility)
    try:
        for batch in scan.batches():
            chosen = [m for m in batch if selection.matches(m, moment)]
            if selection.limit is not None:
                chosen = chosen[: max(0, selection.limit - summary.deleted)]
            summary.skipped += len(batch) - len(chosen)
            if not chosen:
                continue
            response = client.delete_message_batch(
                QueueUrl=pair.dead_letter_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chosen)
                ],
            )
            for entry in response.get("Successful") or []:
                message = chosen[int(entry["Id"])]
                scan.forget(message.message_id)
                summary.deleted += 1
                summary.tasks[message.task or "(no JobName)"] += 1
            summary.failed += len(response.get("Failed") or [])
            if selection.limit is not None and summary.deleted >= selection.limit:
                break
    finally:
        scan.release()
    return summary
