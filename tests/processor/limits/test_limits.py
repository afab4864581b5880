"""Concurrency and rate limits per task: a task at its limit runs one at a time (or at its
rate) while other tasks of the same queue and pool go on; its messages are postponed, never
failed. Against moto's server with a processor in this test process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings
from kube_taskqueue.config import ConfigError, ProcessorConfig
from kube_taskqueue.runtime.limits import Limits, TaskLimiter

sys.path.insert(0, str(Path(__file__).parent))

import limitsapp  # importable once its directory is on the path


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_concurrency_limit_refuses_beyond_it_until_a_run_finishes():
    limiter = TaskLimiter(max_concurrency=2, rate=None)
    assert limiter.try_start() is None and limiter.try_start() is None
    refused = limiter.try_start()
    assert refused is not None and refused.reason == "concurrency"
    assert 1 <= refused.retry_after <= 3
    limiter.finish()
    assert limiter.try_start() is None


def test_a_rate_limit_spaces_the_starts():
    clock = Clock()
    limiter = TaskLimiter(max_concurrency=None, rate=2, clock=clock)
    assert limiter.try_start() is None and limiter.try_start() is None  # a second's burst
    refused = limiter.try_start()
    assert refused is not None and (refused.reason, refused.retry_after) == ("rate", 1)
    clock.now += 0.5
    assert limiter.try_start() is None  # one token back after half a second at 2/s
    assert limiter.try_start() is not None


def test_limits_in_the_config_replace_the_tasks_own_and_name_real_tasks():
    handled = frozenset(limitsapp.provider.names)
    config = ProcessorConfig.model_validate(
        {"app": "limitsapp:provider", "taskLimits": {"fast:job": {"maxConcurrency": 3}}}
    )
    limits = Limits.of(config, limitsapp.provider, handled)
    for _ in range(3):
        assert limits.try_start("fast:job") is None
    assert limits.try_start("fast:job") is not None
    wrong = ProcessorConfig.model_validate(
        {"app": "limitsapp:provider", "taskLimits": {"fsat:job": {"rateLimit": 1}}}
    )
    with pytest.raises(ConfigError, match="taskLimits: fsat:job is not a task of processor"):
        Limits.of(wrong, limitsapp.provider, handled)


def _postponed(processor, task: str, reason: str) -> float:
    value = processor.metrics.registry.get_sample_value(
        "taskqueue_messages_postponed_total", {"queue": "work", "task": task, "reason": reason}
    )
    return value or 0.0


def test_a_task_at_its_limit_does_not_hold_up_the_others(
    sqs_endpoint, prefix, queues, start_processor
):
    queues.create("work", max_receive_count=20)
    limitsapp.done.clear()
    limitsapp.peak["slow:job"] = 0
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="limitsapp:provider")
    config["queues"] = {"work": {"pollInterval": 1, "messageVisibilityTimeout": 10}}
    processor = start_processor(config)
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    producer.enqueue_many(limitsapp.provider["slow:job"], [{"id": f"s{i}"} for i in range(4)])
    producer.enqueue_many(limitsapp.provider["fast:job"], [{"id": f"f{i}"} for i in range(20)])
    producer.enqueue_many(limitsapp.provider["metered:job"], [{"id": f"m{i}"} for i in range(6)])
    # Every fast one is done before the slow ones, which run one at a time, are.
    wait_for(lambda: len([d for d in limitsapp.done if d.startswith("f")]) == 20, timeout=60)
    assert len([d for d in limitsapp.done if d.startswith("s")]) < 4
    wait_for(lambda: len(set(limitsapp.done)) == 30, timeout=90)
    assert limitsapp.peak["slow:job"] == 1
    assert _postponed(processor, "slow:job", "concurrency") > 0
    assert _postponed(processor, "metered:job", "rate") > 0
    assert processor.snapshot()["failed"] == 0
    wait_for(lambda: queues.counts("work") == (0, 0))
    assert queues.counts("work-dlq") == (0, 0)
