"""Prometheus metrics of one processor, in a registry of its own (several can share a process)."""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclasses.dataclass(frozen=True)
class QueueSeries:
    """The labelled children of one queue, looked up once: `labels()` costs a lock and a
    tuple per call, which adds up at thousands of messages per second."""

    received: Any
    in_flight: Any
    retried: Any
    returned: Any
    deleted: Any
    extended: Any
    age: Any


@dataclasses.dataclass(frozen=True)
class TaskSeries:
    processed: Any
    failed: Any
    duration: Any


class Metrics:
    """Every metric the processor exports, labelled by queue (and task where known)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "taskqueue_messages_received", "Messages received from SQS.", ["queue"], registry=r
        )
        self.processed = Counter(
            "taskqueue_messages_processed",
            "Messages whose task succeeded.",
            ["queue", "task"],
            registry=r,
        )
        self.failed = Counter(
            "taskqueue_messages_failed",
            "Task runs that raised or timed out (one per attempt of a message).",
            ["queue", "task"],
            registry=r,
        )
        self.deleted = Counter(
            "taskqueue_messages_deleted", "Messages deleted from SQS.", ["queue"], registry=r
        )
        self.retried = Counter(
            "taskqueue_messages_retried",
            "Messages left for redelivery after a backoff.",
            ["queue"],
            registry=r,
        )
        self.returned = Counter(
            "taskqueue_messages_returned",
            "Unstarted messages made visible again at shutdown.",
            ["queue"],
            registry=r,
        )
        self.age = Histogram(
            "taskqueue_message_age_seconds",
            "How long messages waited in their queue, from their send to this receive (SQS "
            "delays included; messages sent for later than 15 minutes are left out).",
            ["queue"],
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 21_600, 86_400),
            registry=r,
        )
        self.postponed = Counter(
            "taskqueue_messages_postponed",
            "Receives put back for a few seconds because their task was at its concurrency "
            "limit or rate limit (reason).",
            ["queue", "task", "reason"],
            registry=r,
        )
        self.deferred = Counter(
            "taskqueue_messages_deferred",
            "Receives of messages not due yet, hidden again until their due time (hop: hold, "
            "a visibility change; resend, a fresh copy).",
            ["queue", "hop"],
            registry=r,
        )
        self.extended = Counter(
            "taskqueue_visibility_extended",
            "Visibility extensions of in-flight messages.",
            ["queue"],
            registry=r,
        )
        self.unroutable = Counter(
            "taskqueue_messages_unroutable",
            "Receives of messages this processor could not hand to a task (each is left for "
            "redelivery, so one message counts once per receive).",
            ["queue", "reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "taskqueue_messages_in_flight",
            "Messages held by this processor (queued for or running in a worker).",
            ["queue"],
            registry=r,
        )
        self.duration = Histogram(
            "taskqueue_task_duration_seconds",
            "Time a task's process function ran.",
            ["queue", "task"],
            registry=r,
        )
        self.sqs_errors = Counter(
            "taskqueue_sqs_errors", "Failed SQS calls, by call.", ["call"], registry=r
        )
        self._queues: dict[str, QueueSeries] = {}
        self._tasks: dict[tuple[str, str], TaskSeries] = {}

    def queue(self, queue: str) -> QueueSeries:
        series = self._queues.get(queue)
        if series is None:  # a race creates the same children twice: harmless
            series = self._queues[queue] = QueueSeries(
                received=self.received.labels(queue=queue),
                in_flight=self.in_flight.labels(queue=queue),
                retried=self.retried.labels(queue=queue),
                returned=self.returned.labels(queue=queue),
                deleted=self.deleted.labels(queue=queue),
                extended=self.extended.labels(queue=queue),
                age=self.age.labels(queue=queue),
            )
        return series

    def task(self, queue: str, task: str) -> TaskSeries:
        key = (queue, task)
        series = self._tasks.get(key)
        if series is None:
            series = self._tasks[key] = TaskSeries(
                processed=self.processed.labels(queue=queue, task=task),
                failed=self.failed.labels(queue=queue, task=task),
                duration=self.duration.labels(queue=queue, task=task),
            )
        return series
