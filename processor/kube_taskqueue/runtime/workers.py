"""The worker pool: threads that route each held message to its task and run it.

Workers do no network I/O of their own (the task's code aside): outcomes go to the acker.
A message that cannot be routed or parsed is never deleted silently: it is logged with the
reason, counted, and left for redelivery, so the queue's redrive policy decides its end.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kube_taskqueue.config import QueueSettings
from kube_taskqueue.logs import log_context
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime.acker import Acker, Entry
from kube_taskqueue.runtime.backoff import retry_delay_seconds
from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.task import PayloadError, Task, handling

log = logging.getLogger(__name__)


class UnroutableError(LookupError):
    """A message whose `JobName` this processor does not handle."""


class WorkerPool:
    def __init__(
        self,
        *,
        size: int,
        provider: Provider,
        handled: frozenset[str],
        queue_settings: Mapping[str, QueueSettings],
        in_flight: InFlight,
        slots: Slots,
        acker: Acker,
        metrics: Metrics,
        stopping: threading.Event,
    ) -> None:
        self._provider = provider
        self._handled = handled
        self._queue_settings = queue_settings
        self._in_flight = in_flight
        self._slots = slots
        self._acker = acker
        self._metrics = metrics
        self._stopping = stopping
        self._jobs: queue.SimpleQueue[Held | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"taskqueue-worker-{i}", daemon=True)
            for i in range(size)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, held: Held) -> None:
        self._jobs.put(held)

    def return_unstarted(self) -> int:
        """Make every message still waiting for a worker visible again at once."""
        returned = 0
        while True:
            try:
                held = self._jobs.get_nowait()
            except queue.Empty:
                return returned
            if held is None:
                continue  # a stop sentinel: its worker has left or is leaving anyway
            self._give_back(held)
            self._slots.give_back(1)
            returned += 1

    def stop(self, *, deadline: float) -> list[threading.Thread]:
        """Let running tasks finish until `deadline` (monotonic); returns threads still busy."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for thread in self._threads if thread.is_alive()]

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    # -- one worker ------------------------------------------------------------------------

    def _run(self) -> None:
        loop: asyncio.AbstractEventLoop | None = None
        while True:
            held = self._jobs.get()
            if held is None:
                break
            if self._stopping.is_set():
                # Shutting down: a message nobody started goes back at once.
                self._give_back(held)
                self._slots.give_back(1)
                continue
            try:
                if loop is None:
                    loop = asyncio.new_event_loop()
                self._handle(held, loop)
            except Exception:  # never let one message kill a worker
                log.exception("unexpected error handling message %s", held.message.message_id)
                self._retry(held)
            finally:
                self._slots.give_back(1)
        if loop is not None:
            loop.close()

    def _handle(self, held: Held, loop: asyncio.AbstractEventLoop) -> None:
        message = held.message
        context = {
            "queue": message.queue,
            "message_id": message.message_id,
            "receive_count": message.receive_count,
            "task": message.job_name,
            "trace_id": message.trace_id,
        }
        with log_context(**context):
            task = self._route(held)
            if task is None:
                return
            try:
                payload = task.parse_payload(message.body)
            except PayloadError as error:
                self._metrics.unroutable.labels(queue=message.queue, reason="bad_payload").inc()
                log.error("message not processed: %s", error)
                self._after_failure(held, task, error)
                return
            self._in_flight.start(
                message.receipt_handle,
                now=time.monotonic(),
                task=task.name,
                timeout=task.timeout_seconds,
            )
            started = time.perf_counter()
            try:
                with handling(message):
                    _run_process(task, payload, loop)
            except Exception as error:
                duration = time.perf_counter() - started
                series = self._metrics.task(message.queue, task.name)
                series.duration.observe(duration)
                series.failed.inc()
                log.error(
                    "task failed: %s: %s",
                    type(error).__name__,
                    error,
                    exc_info=error,
                    extra={"duration": round(duration, 6)},
                )
                self._after_failure(held, task, error)
                return
            duration = time.perf_counter() - started
            series = self._metrics.task(message.queue, task.name)
            series.duration.observe(duration)
            series.processed.inc()
            log.info("task done", extra={"duration": round(duration, 6)})
            self._delete(held)

    def _route(self, held: Held) -> Task[Any] | None:
        message = held.message
        name = message.job_name
        task = self._provider.get(name) if name else None
        if task is None or task.name not in self._handled:
            reason = "no_job_name" if not name else "unknown_task"
            self._metrics.unroutable.labels(queue=message.queue, reason=reason).inc()
            log.error(
                "message not processed: %s; left for redelivery (dead-letter queue after "
                "maxReceiveCount)",
                "it has no JobName attribute"
                if not name
                else f"task {name!r} is not handled by this processor",
            )
            self._retry(held)
            return None
        return task

    def _after_failure(self, held: Held, task: Task[Any], error: Exception) -> None:
        try:
            delete = bool(task.handle_error(error, held.message))
        except Exception:
            log.exception("error handler of task %s failed; keeping the message", task.name)
            delete = False
        if delete:
            log.info("error handler chose to delete the message")
            self._delete(held)
        else:
            self._retry(held)

    # -- outcomes, handed to the acker -----------------------------------------------------

    def _delete(self, held: Held) -> None:
        self._in_flight.release(held.message.receipt_handle)
        self._acker.delete(queue_url=held.queue_url, entry=_entry(held))
        self._metrics.queue(held.message.queue).in_flight.dec()

    def _retry(self, held: Held) -> None:
        settings = self._queue_settings[held.message.queue]
        delay = retry_delay_seconds(
            receive_count=held.message.receive_count,
            initial=settings.retry_backoff_initial,
            maximum=settings.retry_backoff_max,
        )
        self._in_flight.release(held.message.receipt_handle)
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=delay))
        self._metrics.queue(held.message.queue).retried.inc()
        self._metrics.queue(held.message.queue).in_flight.dec()

    def _give_back(self, held: Held) -> None:
        self._in_flight.release(held.message.receipt_handle)
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=0))
        self._metrics.queue(held.message.queue).returned.inc()
        self._metrics.queue(held.message.queue).in_flight.dec()


def _entry(held: Held, *, visibility: int = 0) -> Entry:
    return Entry(
        receipt=held.message.receipt_handle,
        message_id=held.message.message_id,
        queue=held.message.queue,
        visibility_seconds=visibility,
    )


def _run_process(task: Task[Any], payload: Any, loop: asyncio.AbstractEventLoop) -> None:
    process: Callable[[Any], Any] = task.process
    result = process(payload)
    if inspect.isawaitable(result):
        loop.run_until_complete(_bounded(result, task.timeout_seconds))


async def _bounded(awaitable: Any, timeout: float | None) -> None:
    await asyncio.wait_for(awaitable, timeout)
