"""The processor application: wires pollers, workers, heartbeat and acker, and shuts down
in a fixed order.

Shutdown order (SIGTERM/SIGINT), after dramatiq's:
1. stop receiving: pollers see the stop flag; whatever a last long poll returns goes back;
2. return the messages no worker has started (visibility 0), so another replica takes them now;
3. let running tasks finish until the deadline, while the heartbeat keeps renewing them;
4. stop the heartbeat; messages of tasks still running return after one visibility window;
5. flush the acker (deletes and visibility changes), then stop the HTTP endpoint.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from kube_taskqueue.assignment import Assignment
from kube_taskqueue.config import ProcessorConfig, QueueSettings
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime.acker import Acker
from kube_taskqueue.runtime.health import HealthServer
from kube_taskqueue.runtime.heartbeat import Heartbeat
from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.runtime.poller import Poller
from kube_taskqueue.runtime.workers import WorkerPool
from kube_taskqueue.sqs import SqsClient, make_client

log = logging.getLogger(__name__)


class Processor:
    """Runs the tasks of one assignment. `start()`, then `stop()` from any thread."""

    def __init__(
        self,
        *,
        config: ProcessorConfig,
        provider: Provider,
        assignment: Assignment,
        client: SqsClient | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.assignment = assignment
        self.metrics = metrics or Metrics()
        self._client = client or make_client(
            region=config.sqs.region,
            endpoint=config.sqs.endpoint,
            call_timeout_seconds=config.sqs.call_timeout,
            max_connections=len(assignment.queues) + 8,
            validate_parameters=False,  # every request is built here, and tested
        )
        self.stopping = threading.Event()
        self._stopped = threading.Event()
        self.in_flight = InFlight()
        self._slots = Slots(config.workers)
        settings: dict[str, QueueSettings] = {
            queue: config.queue_settings(queue) for queue in assignment.queues
        }
        self._acker = Acker(client=self._client, metrics=self.metrics)
        self._workers = WorkerPool(
            size=config.workers,
            provider=provider,
            handled=assignment.tasks,
            queue_settings=settings,
            in_flight=self.in_flight,
            slots=self._slots,
            acker=self._acker,
            metrics=self.metrics,
            stopping=self.stopping,
        )
        share = math.ceil(config.workers / max(1, len(assignment.queues)))
        self.pollers = [
            Poller(
                queue=queue,
                physical_name=config.physical_name(queue),
                settings=settings[queue],
                client=self._client,
                slots=self._slots,
                share=share,
                in_flight=self.in_flight,
                metrics=self.metrics,
                submit=self._workers.submit,
                give_back=self._give_back,
                stopping=self.stopping,
            )
            for queue in assignment.queues
        ]
        shortest = min((s.message_visibility_timeout for s in settings.values()), default=30)
        self._heartbeat = Heartbeat(
            client=self._client,
            in_flight=self.in_flight,
            metrics=self.metrics,
            tick=min(5.0, max(0.2, shortest / 6)),
        )
        self._http = HealthServer(
            host=config.http.host,
            port=config.http.port,
            registry=self.metrics.registry,
            liveness=self.liveness_problems,
            readiness=self.readiness_problems,
        )
        self.started_at = time.monotonic()

    @property
    def http_port(self) -> int:
        return self._http.port

    def start(self) -> None:
        self._http.start()
        self._acker.start()
        self._heartbeat.start()
        self._workers.start()
        for poller in self.pollers:
            poller.start()
        log.info(
            "processor %r started: %d workers, queues %s, tasks %s, http port %d",
            self.assignment.processor,
            self.config.workers,
            ", ".join(self.assignment.queues),
            ", ".join(sorted(self.assignment.tasks)),
            self.http_port,
        )

    def stop(self, *, timeout: float | None = None) -> bool:
        """Shut down in the documented order; True when every running task finished."""
        if self._stopped.is_set():
            return True
        deadline = time.monotonic() + (self.config.shutdown_timeout if timeout is None else timeout)
        log.info("shutting down: %d messages held", self.in_flight.count())
        self.stopping.set()
        returned = self._workers.return_unstarted()
        busy = self._workers.stop(deadline=deadline)
        for poller in self.pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
        # A poller may have been mid-receive; anything it queued since goes back too.
        returned += self._workers.return_unstarted()
        self._heartbeat.stop()
        if busy:
            running = [held.message.message_id for held in self.in_flight.running()]
            log.error(
                "shutdown deadline passed with %d tasks running; their messages return after "
                "the visibility timeout",
                len(busy),
                extra={"message_ids": running},
            )
        self._acker.stop(timeout=max(5.0, deadline - time.monotonic()))
        self._http.stop()
        self._stopped.set()
        log.info("processor stopped; %d unstarted messages returned", returned)
        return not busy

    # -- health ----------------------------------------------------------------------------

    def liveness_problems(self) -> list[str]:
        now = time.monotonic()
        problems: list[str] = []
        if self.stopping.is_set():
            return problems
        for poller in self.pollers:
            if not poller.is_alive():
                problems.append(f"poller of queue {poller.queue!r} died")
            elif now - poller.last_progress > self.config.stall_timeout:
                problems.append(
                    f"poller of queue {poller.queue!r} made no progress for "
                    f"{now - poller.last_progress:.0f} s"
                )
        if not self._heartbeat.is_alive():
            problems.append("visibility heartbeat died")
        if self._workers.alive() < self.config.workers:
            problems.append(f"only {self._workers.alive()} of {self.config.workers} workers alive")
        for held in self.in_flight.hung(now=now):
            problems.append(
                f"task {held.task!r} hung: message {held.message.message_id} running for "
                f"{now - (held.started_at or now):.0f} s, past its {held.timeout_seconds} s timeout"
            )
        return problems

    def readiness_problems(self) -> list[str]:
        if self.stopping.is_set():
            return ["shutting down"]
        return [
            f"queue {poller.queue!r} not reachable yet"
            for poller in self.pollers
            if not poller.ready
        ]

    def snapshot(self) -> dict[str, Any]:
        """Counts for progress displays (the dev mode), summed over queues and tasks."""

        def total(name: str) -> float:
            return sum(
                sample.value
                for metric in self.metrics.registry.collect()
                if metric.name == name
                for sample in metric.samples
                if sample.name.endswith("_total")
            )

        return {
            "received": int(total("taskqueue_messages_received")),
            "processed": int(total("taskqueue_messages_processed")),
            "failed": int(total("taskqueue_messages_failed")),
            "unroutable": int(total("taskqueue_messages_unroutable")),
            "deleted": int(total("taskqueue_messages_deleted")),
            "in_flight": self.in_flight.count(),
        }

    def _give_back(self, held: list[Held]) -> None:
        for item in held:
            self._workers.submit(item)  # the stopping workers return it at once
