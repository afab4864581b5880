"""The processor application: wires pollers, workers, heartbeat and acker, and shuts down
in a fixed order.

Shutdown order (SIGTERM/SIGINT), after dramatiq's:
1. stop receiving: no receive is sent once stop begins; whatever a long poll already under
   way returns goes back at once;
2. return the messages no worker has started (visibility 0), so another replica takes them now;
3. let running tasks finish until the deadline, while the heartbeat keeps renewing them;
4. stop the heartbeat; messages of tasks still running return after one visibility window;
5. flush the acker (deletes and visibility changes), then stop the HTTP endpoint.

`force_stop()` (a second Ctrl-C) cuts step 3 short: every held message, running or not, is
returned at once (visibility 0) and the acker flushes that before the process exits; the
tasks still running are abandoned and run again elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kube_taskqueue.assignment import Assignment
from kube_taskqueue.config import ProcessorConfig, QueueSettings
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime import clients
from kube_taskqueue.runtime.acker import Acker
from kube_taskqueue.runtime.deferral import Deferrer
from kube_taskqueue.runtime.health import HealthServer
from kube_taskqueue.runtime.heartbeat import Heartbeat
from kube_taskqueue.runtime.inflight import InFlight, Slots
from kube_taskqueue.runtime.limits import Limits
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.runtime.outcomes import Outcomes
from kube_taskqueue.runtime.poller import Poller
from kube_taskqueue.runtime.workers import WorkerPool
from kube_taskqueue.sqs import SqsClient, make_client

log = logging.getLogger(__name__)

#: How long a forced stop lets the acker send the returned messages' visibility changes.
_FORCED_FLUSH_SECONDS = 5.0


class Processor:
    """Runs the tasks of one assignment. `start()`, then `stop()` from any thread."""

    def __init__(
        self,
        *,
        config: ProcessorConfig,
        provider: Provider,
        assignment: Assignment,
        client: SqsClient | None = None,
        renewal_client: SqsClient | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.assignment = assignment
        self.metrics = metrics or Metrics()
        settings: dict[str, QueueSettings] = {
            queue: config.queue_settings(queue) for queue in assignment.queues
        }
        loops = {
            queue: clients.receive_loops(
                workers=config.workers, max_batch_size=settings[queue].max_batch_size
            )
            for queue in assignment.queues
        }
        self.connection_pool_size = clients.connection_pool_size(
            loops=list(loops.values()), workers=config.workers
        )
        self._client = client or make_client(
            region=config.sqs.region,
            endpoint=config.sqs.endpoint,
            call_timeout_seconds=config.sqs.call_timeout,
            max_connections=self.connection_pool_size,
            validate_parameters=False,  # every request is built here, and tested
        )
        shortest = min((s.message_visibility_timeout for s in settings.values()), default=30)
        self.shortest_visibility = shortest
        self.renewal_timeout = clients.renewal_timeout_seconds(
            shortest_visibility=shortest, call_timeout=config.sqs.call_timeout
        )
        if renewal_client is None:
            # An injected client serves renewals too; a built one gets its bounded sibling.
            renewal_client = client or clients.make_renewal_client(
                region=config.sqs.region,
                endpoint=config.sqs.endpoint,
                timeout=self.renewal_timeout,
            )
        self.stopping = threading.Event()
        self._forced = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopped = threading.Event()
        self._finished_cleanly = True
        # A settled message waits at most for one renewal call (plus slack) before its outcome.
        self.in_flight = InFlight(renewal_wait_seconds=self.renewal_timeout + 1.0)
        self._slots = Slots(config.workers)
        self._acker = Acker(client=self._client, metrics=self.metrics)
        self._outcomes = Outcomes(
            in_flight=self.in_flight,
            acker=self._acker,
            metrics=self.metrics,
            queue_settings=settings,
        )
        self._workers = WorkerPool(
            size=config.workers,
            provider=provider,
            handled=assignment.tasks,
            in_flight=self.in_flight,
            slots=self._slots,
            outcomes=self._outcomes,
            metrics=self.metrics,
            stopping=self.stopping,
            deferrer=Deferrer(self._client),
            limits=Limits.of(config, provider, assignment.tasks),
        )
        self.pollers = [
            Poller(
                queue=queue,
                physical_name=config.physical_name(queue),
                settings=settings[queue],
                client=self._client,
                slots=self._slots,
                loops=loops[queue],
                in_flight=self.in_flight,
                metrics=self.metrics,
                submit=self._workers.submit,
                submit_group=self._workers.submit_group,
                give_back=self._outcomes.give_back,
                stopping=self.stopping,
            )
            for queue in assignment.queues
        ]
        self._heartbeat = Heartbeat(
            client=renewal_client,
            in_flight=self.in_flight,
            metrics=self.metrics,
            tick=min(5.0, max(0.2, shortest / 6)),
            call_timeout=self.renewal_timeout,
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

    @property
    def forced(self) -> bool:
        """A forced stop was asked for (its tasks were abandoned, their messages returned)."""
        return self._forced.is_set()

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

    def force_stop(self) -> None:
        """Cut a stop under way short: return every held message now and let stop() end.
        Safe from any thread; a stop must be under way or follow."""
        self._forced.set()

    def stop(self, *, timeout: float | None = None) -> bool:
        """Shut down in the documented order; True when every running task finished."""
        with self._stop_lock:  # a second caller waits for the first stop, then returns
            if self._stopped.is_set():
                return self._finished_cleanly
            self._finished_cleanly = self._stop(timeout)
            self._stopped.set()
            return self._finished_cleanly

    def _stop(self, timeout: float | None) -> bool:
        deadline = time.monotonic() + (self.config.shutdown_timeout if timeout is None else timeout)
        log.info("shutting down: %d messages held", self.in_flight.count())
        # First of all: from here on no poller sends a receive.
        self.stopping.set()
        returned = self._workers.return_unstarted()
        busy = self._workers.stop(deadline=deadline, hurry=self._forced)
        for poller in self.pollers:
            while poller.any_alive() and not self._forced.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                poller.join(min(remaining, 0.1))
        # A poller may have been mid-receive; anything it queued since goes back too.
        returned += self._workers.return_unstarted()
        if self._forced.is_set():
            self._return_everything(returned)
            busy = []
        self._heartbeat.stop()
        if busy:
            running = [held.message.message_id for held in self.in_flight.running()]
            log.error(
                "shutdown deadline passed with %d tasks running; their messages return after "
                "the visibility timeout",
                len(busy),
                extra={"message_ids": running},
            )
        flush = _FORCED_FLUSH_SECONDS if self._forced.is_set() else None
        self._acker.stop(timeout=flush or max(5.0, deadline - time.monotonic()))
        self._http.stop()
        log.info("processor stopped; %d unstarted messages returned", returned)
        return not busy and not self._forced.is_set()

    def _return_everything(self, returned: int) -> None:
        released = self._outcomes.give_back_all()
        running = [held.message.message_id for held in released if held.started_at is not None]
        receiving = [poller.queue for poller in self.pollers if poller.any_alive()]
        log.warning(
            "forced stop: %d held messages returned at once (visibility 0), %d of them of "
            "tasks still running, which are abandoned and will run again elsewhere (%d "
            "unstarted messages had been returned already)",
            len(released),
            len(running),
            returned,
            extra={"message_ids": running},
        )
        if receiving:
            log.warning(
                "forced stop: a long poll was still under way on %s; what it brings back "
                "stays hidden for its visibility window",
                ", ".join(repr(queue) for queue in receiving),
            )

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
        problems += self._pipeline_problems(now)
        if self._workers.alive() < self.config.workers:
            problems.append(f"only {self._workers.alive()} of {self.config.workers} workers alive")
        abandoned = self._workers.abandoned.running()
        if abandoned >= self.config.workers:
            problems.append(
                f"{abandoned} sync tasks given up on after their timeout are still running "
                f"(as many as the {self.config.workers} workers)"
            )
        for held in self.in_flight.hung(now=now):
            problems.append(
                f"task {held.task!r} hung: message {held.message.message_id} running for "
                f"{now - (held.started_at or now):.0f} s, past its {held.timeout_seconds} s timeout"
            )
        return problems

    def _pipeline_problems(self, now: float) -> list[str]:
        """The acker and the heartbeat: dead or stuck, nothing is deleted or renewed."""
        problems: list[str] = []
        if not self._acker.is_alive():
            problems.append("acker died: finished messages are no longer deleted")
        elif now - self._acker.last_progress > self.config.stall_timeout:
            problems.append(
                f"acker made no progress for {now - self._acker.last_progress:.0f} s: "
                "finished messages are not being deleted"
            )
        # A heartbeat silent for a whole window has let held messages be redelivered.
        heartbeat_stall = min(self.config.stall_timeout, float(self.shortest_visibility))
        if not self._heartbeat.is_alive():
            problems.append("visibility heartbeat died")
        elif now - self._heartbeat.last_progress > heartbeat_stall:
            problems.append(
                f"visibility heartbeat made no progress for "
                f"{now - self._heartbeat.last_progress:.0f} s"
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
