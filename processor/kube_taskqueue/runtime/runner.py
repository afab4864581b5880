"""Run a processor in the foreground until SIGTERM/SIGINT, then shut it down gracefully."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import ProcessorConfig
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime.app import Processor

log = logging.getLogger(__name__)


def run_processor(
    config: ProcessorConfig,
    *,
    provider: Provider | None = None,
    on_started: Callable[[Processor], None] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Start, wait for a signal (or `stop_event`), stop. Returns the exit code (0).

    Raises `AssignmentError` before anything starts when the task set is unsafe.
    """
    provider, assignment = resolve(config, provider)
    processor = Processor(config=config, provider=provider, assignment=assignment)
    stop = stop_event or threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        processor.start()
        if on_started is not None:
            on_started(processor)
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        processor.stop()
    return 0
