"""The operator's Prometheus metrics: what each TaskQueue's status says, as series to alert
and scale on (queue depth, dead letters, readiness, processor replicas).

Set from the status the operator writes (each reconcile, and the status timer's refresh of
queue depths), so the numbers and `kubectl get tq -o yaml` never disagree. Only the replica
that reconciles (kopf peering's active one) sets them; a TaskQueue's series go when it is
deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

_KEY = ("namespace", "taskqueue")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Gauge(
            "taskqueue_queue_messages",
            "Approximate messages of a TaskQueue's queue by state (visible: waiting; "
            "in_flight: received, not yet deleted; delayed: sent with a delay not yet passed), "
            "from SQS at the last status refresh; processor is the one that polls the queue.",
            [*_KEY, "queue", "processor", "state"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "taskqueue_dead_letter_messages",
            "Approximate messages in the dead-letter queue of a TaskQueue's queue.",
            [*_KEY, "queue", "processor"],
            registry=r,
        )
        self.ready = Gauge(
            "taskqueue_ready",
            "1 when the TaskQueue's Ready condition is True, else 0.",
            list(_KEY),
            registry=r,
        )
        self.replicas = Gauge(
            "taskqueue_processor_replicas",
            "Replicas of a TaskQueue's processor Deployment (desired, ready).",
            [*_KEY, "processor", "state"],
            registry=r,
        )
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], set[tuple[Gauge, tuple[str, ...]]]] = {}

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Set the series from a status (a partial one, as the timer writes, sets what it has)."""
        key = (namespace, name)
        with self._lock:
            series = self._series.setdefault(key, set())

            def put(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
                if value is None:
                    return
                gauge.labels(*labels).set(value)
                series.add((gauge, labels))

            for entry in status.get("queues") or []:
                queue = (*key, str(entry.get("name")), str(entry.get("processor") or ""))
                put(self.messages, (*queue, "visible"), entry.get("approximateMessages"))
                put(self.messages, (*queue, "in_flight"), entry.get("approximateInFlight"))
                put(self.messages, (*queue, "delayed"), entry.get("approximateDelayed"))
                put(self.dead_letters, queue, entry.get("approximateDeadLetters"))
            for entry in status.get("processors") or []:
                processor = str(entry.get("name"))
                put(self.replicas, (*key, processor, "desired"), entry.get("desiredReplicas"))
                put(self.replicas, (*key, processor, "ready"), entry.get("readyReplicas"))
            ready = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
            )
            if ready is not None:
                put(self.ready, key, 1.0 if ready.get("status") == "True" else 0.0)

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of a deleted TaskQueue."""
        with self._lock:
            for gauge, labels in self._series.pop((namespace, name), set()):
                try:
                    gauge.remove(*labels)
                except KeyError:
                    continue
