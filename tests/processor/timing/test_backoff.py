"""Retry backoff of failed messages and of failing SQS calls."""

from __future__ import annotations

import random

from kube_taskqueue.runtime.backoff import CallBackoff, retry_delay_seconds


def test_retry_delay_doubles_with_each_receive_and_is_capped():
    delays = [retry_delay_seconds(receive_count=n, initial=5, maximum=60) for n in range(1, 7)]
    assert delays == [5, 10, 20, 40, 60, 60]


def test_retry_delay_never_exceeds_the_sqs_visibility_limit():
    assert retry_delay_seconds(receive_count=200, initial=5, maximum=10**9) == 43_200


def test_retry_delay_zero_initial_means_immediate_retry():
    assert retry_delay_seconds(receive_count=3, initial=0, maximum=900) == 0


def test_call_backoff_grows_within_a_capped_jittered_range_and_resets():
    backoff = CallBackoff(base=0.5, cap=4, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0 <= d <= 4 for d in delays)
    assert backoff.failures == 10
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= 1.0
