"""The worker pool: threads that route each held message to its task and run it.

Workers do no network I/O of their own (the task's code aside): outcomes go to the acker.
A message that cannot be routed or parsed is never deleted silently: it is logged with the
reason, counted, and left for redelivery, so the queue's redrive policy decides its end.
Whatever a task raises, `BaseException`s included (`SystemExit` from `sys.exit()`,
`KeyboardInterrupt`, `asyncio.CancelledError`, `GeneratorExit`), is a failure of that
message, and the worker carries on: a task cannot end its worker, strand its message or
shrink the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from kube_taskqueue import tracing
from kube_taskqueue.logs import SUCCESS, log_context
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime.deferral import Deferrer, Hold, due_in, plan
from kube_taskqueue.runtime.inflight import Held, InFlight, Slots
from kube_taskqueue.runtime.limits import Limits
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.runtime.outcomes import Outcomes
from kube_taskqueue.runtime.timed import Abandoned, is_async, run_with_timeout
from kube_taskqueue.task import PayloadError, Task, TaskAborted, handling

log = logging.getLogger(__name__)
#: One line per task that succeeded, at DEBUG (see kube_taskqueue.logs); failures are ERROR.
done_log = logging.getLogger(SUCCESS)

#: How long a worker lets the leftovers of an event loop a task broke out of finish their
#: cancellation before it closes that loop.
_LOOP_CLEANUP_SECONDS = 1.0
#: How often a stop waiting for running tasks looks whether it was told to hurry.
_STOP_POLL_SECONDS = 0.1


class UnroutableError(LookupError):
    """A message whose `JobName` this processor does not handle."""


class Handled(NamedTuple):
    loop_ok: bool
    """False when a task broke out of its event loop (the worker makes a new one)."""
    deleted: bool
    """The message is done (deleted): the next of its FIFO group may run."""


class WorkerPool:
    def __init__(
        self,
        *,
        size: int,
        provider: Provider,
        handled: frozenset[str],
        in_flight: InFlight,
        slots: Slots,
        outcomes: Outcomes,
        metrics: Metrics,
        stopping: threading.Event,
        deferrer: Deferrer,
        limits: Limits,
    ) -> None:
        self._deferrer = deferrer
        self._limits = limits
        self.abandoned = Abandoned()
        self._provider = provider
        self._handled = handled
        self._in_flight = in_flight
        self._slots = slots
        self._outcomes = outcomes
        self._metrics = metrics
        self._stopping = stopping
        self._jobs: queue.SimpleQueue[list[Held] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"taskqueue-worker-{i}", daemon=True)
            for i in range(size)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, held: Held) -> None:
        self._jobs.put([held])

    def submit_group(self, group: list[Held]) -> None:
        """Messages of one FIFO message group from one receive: run in order on one worker;
        after one that is not done (failed, retried, put back), the rest go back unstarted,
        so SQS hands them out again only after it, in order."""
        self._jobs.put(group)

    def return_unstarted(self) -> int:
        """Make every message still waiting for a worker visible again at once."""
        returned = 0
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return returned
            if job is None:
                continue  # a stop sentinel: its worker has left or is leaving anyway
            for held in job:
                returned += self._outcomes.give_back(held)
                self._slots.give_back(1)

    def stop(self, *, deadline: float, hurry: threading.Event) -> list[threading.Thread]:
        """Let running tasks finish until `deadline` (monotonic) or until `hurry` is set;
        returns the threads still busy."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            # In short joins, so a forced stop does not wait for a long task.
            while thread.is_alive() and not hurry.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                thread.join(min(remaining, _STOP_POLL_SECONDS))
        return [thread for thread in self._threads if thread.is_alive()]

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    # -- one worker ------------------------------------------------------------------------

    def _run(self) -> None:
        loop: asyncio.AbstractEventLoop | None = None
        while True:
            job = self._jobs.get()
            if job is None:
                break
            ordered = True  # within a group, every earlier message is done
            for held in job:
                try:
                    if self._stopping.is_set() or not ordered:
                        # Shutting down, or an earlier message of its group is not done: a
                        # message nobody started goes back at once.
                        self._outcomes.give_back(held)
                        continue
                    if loop is None:
                        loop = asyncio.new_event_loop()
                    result = self._handle(held, loop)
                    ordered = result.deleted
                    if not result.loop_ok:
                        # A task broke out of its event loop; the next one gets a fresh loop.
                        _close_loop(loop)
                        loop = None
                except BaseException:  # never let one message end a worker
                    log.exception("unexpected error handling message %s", held.message.message_id)
                    self._outcomes.retry(held)  # sends nothing if the message was settled
                    ordered = False
                finally:
                    self._slots.give_back(1)
        if loop is not None:
            _close_loop(loop)

    def _handle(self, held: Held, loop: asyncio.AbstractEventLoop) -> Handled:
        """Run one message: whether its loop may be reused, whether it was deleted."""
        message = held.message
        context = {
            "queue": message.queue,
            "message_id": message.message_id,
            "receive_count": message.receive_count,
            "task": message.job_name,
            "trace_id": message.trace_id,
        }
        with log_context(**context):
            remaining = due_in(held, now_ms=time.time() * 1000)
            if remaining is not None:
                self._defer(held, remaining)
                return Handled(loop_ok=True, deleted=False)
            task = self._route(held)
            if task is None:
                return Handled(loop_ok=True, deleted=False)
            try:
                payload = task.parse_payload(message.body)
            except PayloadError as error:
                self._metrics.unroutable.labels(queue=message.queue, reason="bad_payload").inc()
                log.error("message not processed: %s", error)
                return Handled(loop_ok=True, deleted=self._after_failure(held, task, error))
            refusal = self._limits.try_start(task.name)
            if refusal is not None:
                self._outcomes.postpone(
                    held, seconds=refusal.retry_after, task=task.name, reason=refusal.reason
                )
                return Handled(loop_ok=True, deleted=False)
            try:
                return self._run_task(held, task, payload, loop)
            finally:
                self._limits.finish(task.name)

    def _run_task(
        self, held: Held, task: Task[Any], payload: Any, loop: asyncio.AbstractEventLoop
    ) -> Handled:
        """Run a routed message's task and settle the message."""
        message = held.message
        self._in_flight.start(
            message.receipt_handle,
            now=time.monotonic(),
            task=task.name,
            timeout=task.timeout_seconds,
        )
        started = time.perf_counter()
        try:
            with (
                tracing.processing(
                    queue=message.queue,
                    task=task.name,
                    message_id=message.message_id,
                    attributes=message.attributes,
                    receive_count=message.receive_count,
                ),
                handling(message),
            ):
                _run_process(task, payload, loop, self.abandoned)
        # BaseException: a task's SystemExit or KeyboardInterrupt is that task's failure,
        # not the process's (signals reach the main thread only, never a worker).
        except BaseException as raised:
            duration = time.perf_counter() - started
            series = self._metrics.task(message.queue, task.name)
            series.duration.observe(duration)
            series.failed.inc()
            log.error(
                "task failed: %s: %s",
                type(raised).__name__,
                raised,
                exc_info=raised,
                extra={"duration": round(duration, 6)},
            )
            failure = raised if isinstance(raised, Exception) else TaskAborted(raised)
            deleted = self._after_failure(held, task, failure)
            return Handled(loop_ok=isinstance(raised, Exception), deleted=deleted)
        duration = time.perf_counter() - started
        series = self._metrics.task(message.queue, task.name)
        series.duration.observe(duration)
        series.processed.inc()
        if done_log.isEnabledFor(logging.DEBUG):
            done_log.debug("task done", extra={"duration": round(duration, 6)})
        self._outcomes.delete(held)
        return Handled(loop_ok=True, deleted=True)

    def _defer(self, held: Held, remaining: float) -> None:
        """Hide a message sent for later until it is due (see runtime.deferral)."""
        message = held.message
        now_ms = time.time() * 1000
        try:
            step = plan(
                remaining=remaining,
                receive_count=message.receive_count,
                age_seconds=(now_ms - message.sent_at_ms) / 1000 if message.sent_at_ms else 0,
                facts=self._deferrer.facts(held.queue_url),
            )
            if isinstance(step, Hold):
                self._outcomes.hold(held, step.seconds)
            else:
                self._deferrer.resend(held, delay_seconds=step.delay_seconds)
                self._outcomes.resent(held)
        except Exception as error:  # SQS trouble: it comes back after its backoff
            log.warning("message due in %.0f s not deferred: %s; retrying", remaining, error)
            self._outcomes.retry(held)
            return
        log.info("message not due yet, deferred", extra={"due_in": round(remaining, 1)})

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
            if name:
                self._outcomes.unroutable(held)  # a newer revision may run it: wait longer
            else:
                self._outcomes.retry(held)  # no revision ever routes it
            return None
        return task

    def _after_failure(self, held: Held, task: Task[Any], error: Exception) -> bool:
        """Delete or retry a failed message as its task's error handler says; True if
        deleted."""
        try:
            delete = bool(task.handle_error(error, held.message))
        except BaseException:  # an error handler cannot end the worker either
            log.exception("error handler of task %s failed; keeping the message", task.name)
            delete = False
        if delete:
            log.info("error handler chose to delete the message")
            self._outcomes.delete(held)
        else:
            self._outcomes.retry(held)
        return delete


def _run_process(
    task: Task[Any], payload: Any, loop: asyncio.AbstractEventLoop, abandoned: Abandoned
) -> None:
    if task.timeout_seconds is not None and not is_async(task):
        run_with_timeout(task, payload, timeout=task.timeout_seconds, abandoned=abandoned)
        return
    process: Callable[[Any], Any] = task.process
    result = process(payload)
    if inspect.isawaitable(result):
        loop.run_until_complete(_bounded(result, task.timeout_seconds))


async def _bounded(awaitable: Any, timeout: float | None) -> None:
    await asyncio.wait_for(awaitable, timeout)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what a task left running on `loop` (briefly), then close it."""
    try:
        pending = asyncio.all_tasks(loop)
        for leftover in pending:
            leftover.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=_LOOP_CLEANUP_SECONDS))
    except BaseException:  # a leftover that refuses to go is abandoned with its loop
        log.debug("leftover tasks of a closed event loop did not finish", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            loop.close()
