"""Concurrency and rate limits per task, within one processor.

A message whose task is at its limit is not run: it goes back to its queue for a short while
(a visibility change of a few seconds, jittered so the returns of a burst spread out) and the
worker takes the next message, so a limited task never holds workers that other tasks could
use. Each return is a receive SQS counts against the queue's maxReceiveCount
(docs/how-to/limits.md).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Mapping

from kube_taskqueue.config import ConfigError, ProcessorConfig
from kube_taskqueue.provider import Provider

#: Seconds a message of a task at its concurrency limit stays out of sight.
BUSY_RETURN_SECONDS = (1, 3)


@dataclasses.dataclass(frozen=True)
class Refusal:
    reason: str  # "concurrency" or "rate"
    retry_after: int


class TaskLimiter:
    """One task's running count and token bucket; thread-safe."""

    def __init__(
        self,
        *,
        max_concurrency: int | None,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_concurrency
        self._rate = rate
        self._clock = clock
        # A bucket of one second's worth (at least one run): short bursts, the rate on average.
        self._capacity = max(1.0, rate or 0.0)
        self._tokens = self._capacity
        self._filled_at = clock()
        self._running = 0
        self._lock = threading.Lock()

    def try_start(self) -> Refusal | None:
        with self._lock:
            if self._max is not None and self._running >= self._max:
                return Refusal("concurrency", random.randint(*BUSY_RETURN_SECONDS))
            if self._rate is not None:
                now = self._clock()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._filled_at) * self._rate
                )
                self._filled_at = now
                if self._tokens < 1:
                    wait = (1 - self._tokens) / self._rate
                    return Refusal("rate", max(1, math.ceil(wait)))
                self._tokens -= 1
            self._running += 1
            return None

    def finish(self) -> None:
        with self._lock:
            self._running = max(0, self._running - 1)

    @property
    def running(self) -> int:
        with self._lock:
            return self._running


class Limits:
    """The limiters of the tasks that have limits (a task without is never refused)."""

    def __init__(self, limiters: Mapping[str, TaskLimiter]) -> None:
        self._limiters = dict(limiters)

    @classmethod
    def of(cls, config: ProcessorConfig, provider: Provider, handled: frozenset[str]) -> Limits:
        unknown = sorted(set(config.task_limits) - handled)
        if unknown:
            raise ConfigError(
                f"taskLimits: {', '.join(unknown)} is not a task of processor "
                f"{config.processor!r} (its tasks: {', '.join(sorted(handled))})"
            )
        limiters = {}
        for name in sorted(handled):
            task = provider[name]
            override = config.task_limits.get(name)
            maximum = (override.max_concurrency if override else None) or task.max_concurrency
            rate = (override.rate_limit if override else None) or task.rate_limit
            if maximum is not None or rate is not None:
                limiters[name] = TaskLimiter(max_concurrency=maximum, rate=rate)
        return cls(limiters)

    def try_start(self, task: str) -> Refusal | None:
        limiter = self._limiters.get(task)
        return None if limiter is None else limiter.try_start()

    def finish(self, task: str) -> None:
        limiter = self._limiters.get(task)
        if limiter is not None:
            limiter.finish()
