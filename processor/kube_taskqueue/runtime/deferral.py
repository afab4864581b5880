"""Messages due later than SQS can delay them: kept out of sight until due, never run early,
never counted as failures, never dead-lettered for waiting.

SQS delays a message by at most 15 minutes (DelaySeconds). A task sent for later carries its
due time in the `TaskQueueDueAt` attribute (epoch milliseconds) and arrives early; the
processor then hides it again, in hops:
- a *hold*: ChangeMessageVisibility for up to 12 hours (SQS's limit), which costs one receive
  of the queue's maxReceiveCount budget each time it comes back;
- a *resend*: a fresh copy (same body and attributes, DelaySeconds up to 15 minutes), then
  the received one is deleted: the copy starts again from receive count 0 and a new
  retention period.
The last hop is always a resend that lands on the due time, so the task runs on a fresh
message with its whole retry budget. A hold is used only while it keeps the receive count
below the dead-letter threshold and the message within its retention period; otherwise the
hop is a resend. Holding is cheap (one call per 12 hours); a resend costs a send and a
delete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from typing import Any

from kube_taskqueue.runtime.inflight import Held
from kube_taskqueue.sqs import MAX_VISIBILITY_SECONDS, SqsClient
from kube_taskqueue.task import DUE_AT_ATTRIBUTE, MAX_DELAY_SECONDS

log = logging.getLogger(__name__)

#: A message due within this many seconds runs now (clocks are never exact).
DUE_SLACK_SECONDS = 1.0
#: Room kept before a message's retention period ends.
RETENTION_MARGIN_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class Hold:
    seconds: int


@dataclasses.dataclass(frozen=True)
class Resend:
    delay_seconds: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueFacts:
    """What a hop must respect: the dead-letter threshold and the retention period."""

    max_receive_count: int | None
    retention_seconds: int


def plan(
    *,
    remaining: float,
    receive_count: int,
    age_seconds: float,
    facts: QueueFacts,
) -> Hold | Resend:
    """The next hop of a message due in `remaining` seconds (more than DUE_SLACK_SECONDS)."""
    if remaining <= MAX_DELAY_SECONDS:
        return Resend(delay_seconds=max(1, math.ceil(remaining)))
    # Hold until the last hop can be a resend landing on the due time.
    hold = min(math.ceil(remaining - MAX_DELAY_SECONDS), MAX_VISIBILITY_SECONDS)
    threshold_ok = facts.max_receive_count is None or receive_count + 1 < facts.max_receive_count
    retention_ok = age_seconds + hold < facts.retention_seconds - RETENTION_MARGIN_SECONDS
    if threshold_ok and retention_ok:
        return Hold(seconds=hold)
    return Resend(delay_seconds=MAX_DELAY_SECONDS)


class Deferrer:
    """Hides early messages (holds go through the outcomes, resends are sent here)."""

    def __init__(self, client: SqsClient) -> None:
        self._client = client
        self._facts: dict[str, QueueFacts] = {}
        self._lock = threading.Lock()

    def facts(self, queue_url: str) -> QueueFacts:
        with self._lock:
            known = self._facts.get(queue_url)
        if known is not None:
            return known
        attributes = self._client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy", "MessageRetentionPeriod"]
        )["Attributes"]
        policy = attributes.get("RedrivePolicy")
        facts = QueueFacts(
            max_receive_count=int(json.loads(policy)["maxReceiveCount"]) if policy else None,
            retention_seconds=int(attributes.get("MessageRetentionPeriod", 345_600)),
        )
        with self._lock:
            self._facts[queue_url] = facts
        return facts

    def resend(self, held: Held, *, delay_seconds: int) -> str:
        """Send a fresh copy of the message (before the caller deletes it); its id."""
        message = held.message
        attributes: dict[str, Any] = {
            name: {
                key: value[key]
                for key in ("DataType", "StringValue", "BinaryValue")
                if key in value
            }
            for name, value in message.raw_attributes.items()
        } or {
            name: {"DataType": "String", "StringValue": value}
            for name, value in message.attributes.items()
        }
        arguments: dict[str, Any] = {
            "QueueUrl": held.queue_url,
            "MessageBody": message.body,
            "MessageAttributes": attributes,
            "DelaySeconds": delay_seconds,
        }
        response = self._client.send_message(**arguments)
        return str(response["MessageId"])


def due_in(held: Held, *, now_ms: float) -> float | None:
    """Seconds until the message is due; None when it is due (or carries no due time)."""
    value = held.message.attributes.get(DUE_AT_ATTRIBUTE)
    if not value:
        return None
    try:
        remaining = (float(value) - now_ms) / 1000
    except ValueError:
        log.warning("ignoring a malformed %s attribute: %r", DUE_AT_ATTRIBUTE, value)
        return None
    return remaining if remaining > DUE_SLACK_SECONDS else None
