"""Run a processor in the foreground until SIGTERM/SIGINT, then shut it down gracefully.

The signal handlers stay ours until the processor has stopped, so a repeated signal never
falls through to Python's defaults (a second SIGTERM killing the process mid-drain, a second
Ctrl-C raising KeyboardInterrupt inside the shutdown):
- SIGTERM again: changes nothing; draining goes on (Kubernetes sends one SIGTERM, and SIGKILL
  after the grace period, which covers `shutdownTimeout`);
- SIGINT again (Ctrl-C on a terminal): a forced stop. Every held message, running or not, is
  returned at once (visibility 0), that is flushed to SQS, and the process exits with 130;
  the log says which tasks were abandoned.

The handlers only put the signal number on a queue (`SimpleQueue.put` is safe in a signal
handler, where taking a lock the interrupted code holds would deadlock); the main thread
reads it, logs and acts, while the shutdown itself runs in a thread of its own.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from types import FrameType

from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import ProcessorConfig
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime.app import Processor

log = logging.getLogger(__name__)

#: The exit code of a forced stop: what a shell reports for a command ended by Ctrl-C.
FORCED_EXIT_CODE = 128 + signal.SIGINT
#: How often the main thread looks at `stop_event` while it waits for a signal.
_WAKE_SECONDS = 0.5


def run_processor(
    config: ProcessorConfig,
    *,
    provider: Provider | None = None,
    on_started: Callable[[Processor], None] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Start, wait for a signal (or `stop_event`), stop. Returns the exit code: 0, or
    `FORCED_EXIT_CODE` after a forced stop.

    Raises `AssignmentError` before anything starts when the task set is unsafe.
    """
    provider, assignment = resolve(config, provider)
    processor = Processor(config=config, provider=provider, assignment=assignment)
    stop = stop_event or threading.Event()
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals.put(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            processor.start()
            if on_started is not None:
                on_started(processor)
            _wait_for_stop(signals, stop, processor)
        finally:
            _stop(processor, signals)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return FORCED_EXIT_CODE if processor.forced else 0


def _wait_for_stop(
    signals: queue.SimpleQueue[int], stop: threading.Event, processor: Processor
) -> None:
    while not stop.is_set():
        try:
            signum = signals.get(timeout=_WAKE_SECONDS)
        except queue.Empty:
            continue
        name = signal.Signals(signum).name
        timeout = processor.config.shutdown_timeout
        if signum == signal.SIGINT:
            log.info(
                "received %s: stopping; running tasks get up to %g s (Ctrl-C again returns "
                "every held message and exits now)",
                name,
                timeout,
            )
        else:
            log.info("received %s: stopping; running tasks get up to %g s", name, timeout)
        return


def _stop(processor: Processor, signals: queue.SimpleQueue[int]) -> None:
    """Run the shutdown in a thread; meanwhile the main thread answers repeated signals."""
    failure: list[BaseException] = []

    def shut_down() -> None:
        try:
            processor.stop()
        except BaseException as error:  # raised again in the main thread, as before
            failure.append(error)

    stopper = threading.Thread(target=shut_down, name="taskqueue-shutdown", daemon=True)
    stopper.start()
    while stopper.is_alive():
        try:
            signum = signals.get(timeout=_WAKE_SECONDS)
        except queue.Empty:
            continue
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and not processor.forced:
            log.warning(
                "received %s again: forced stop; returning every held message at once "
                "(visibility 0), abandoning running tasks",
                name,
            )
            processor.force_stop()
        elif signum == signal.SIGINT:
            log.info("received %s again: the forced stop is under way", name)
        else:
            log.info(
                "received %s again: still draining; running tasks keep their shutdownTimeout "
                "(SIGKILL ends the process after the grace period)",
                name,
            )
    stopper.join()
    if failure:
        raise failure[0]
