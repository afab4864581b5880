"""Sync tasks with a timeout: run in a thread of their own, so the worker can give up on
them when the time is up.

Python has no way to stop a thread. A sync task past its `timeout_seconds` fails with
`TaskTimeout` (its message is retried as any failure is) and is *abandoned*: its thread runs
on in the background until it returns, with `kube_taskqueue.cancelled()` True so a loop can
stop early. The worker and its slot are free at once, so one hung task does not stop the
pod's other work; abandoned threads still running are counted, and `/healthz` fails when
there are as many as workers (the pod is then restarted, as before).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import Any

from kube_taskqueue.task import Task, cancellable


class TaskTimeout(TimeoutError):
    """A task ran past its timeout_seconds."""


def is_async(task: Task[Any]) -> bool:
    target = getattr(task, "function", None) or task.process
    return inspect.iscoroutinefunction(target)


class Abandoned:
    """The threads of sync tasks given up on that are still running."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def add(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.append(thread)

    def running(self) -> int:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return len(self._threads)


def run_with_timeout(
    task: Task[Any], payload: Any, *, timeout: float, abandoned: Abandoned
) -> None:
    """Run a sync task's process in a thread, waiting up to `timeout` seconds; raise what it
    raised, or TaskTimeout (leaving it running) when the time is up."""
    flag = threading.Event()
    outcome: dict[str, BaseException] = {}
    context = contextvars.copy_context()  # the message, log fields and trace go along

    def body() -> None:
        with cancellable(flag):
            process: Callable[[Any], Any] = task.process
            result = process(payload)
            if inspect.isawaitable(result):  # a sync function that returned a coroutine
                asyncio.run(asyncio.wait_for(_awaited(result), timeout))

    def target() -> None:
        try:
            context.run(body)
        except BaseException as error:  # handed to the worker, which decides
            outcome["error"] = error

    thread = threading.Thread(target=target, name=f"taskqueue-timed-{task.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        flag.set()
        abandoned.add(thread)
        raise TaskTimeout(
            f"task {task.name!r} ran past its timeout of {timeout:g} s; left running in the "
            "background (kube_taskqueue.cancelled() is now True for it)"
        )
    if "error" in outcome:
        raise outcome["error"]


async def _awaited(awaitable: Any) -> None:
    await awaitable
