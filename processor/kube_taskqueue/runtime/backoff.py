"""Backoff policies: retry delays of failed messages, and waits after failed SQS calls."""

from __future__ import annotations

import random

from kube_taskqueue.sqs import MAX_VISIBILITY_SECONDS


def retry_delay_seconds(*, receive_count: int, initial: float, maximum: float) -> int:
    """How long a failed message stays hidden before its next attempt.

    Doubles with every receive (1st failure: `initial`, 2nd: twice that…), capped by `maximum`
    and by SQS's 12-hour visibility limit. Whole seconds, as SQS takes them.
    """
    exponent = max(receive_count - 1, 0)
    delay = initial * 2 ** min(exponent, 32)
    return int(min(delay, maximum, MAX_VISIBILITY_SECONDS))


class CallBackoff:
    """Exponential backoff with full jitter for a loop whose SQS calls fail.

    Full jitter spreads the retries of many pods hitting the same throttled endpoint.
    """

    def __init__(
        self, *, base: float = 0.2, cap: float = 5.0, rng: random.Random | None = None
    ) -> None:
        self._base = base
        self._cap = cap
        self._failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        self._failures += 1
        ceiling = min(self._cap, self._base * 2 ** min(self._failures, 32))
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures
