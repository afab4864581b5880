"""Metric series are looked up once per queue and task, and still land in the registry."""

from __future__ import annotations

import botocore.exceptions
import pytest
from kube_taskqueue.runtime.metrics import Metrics
from kube_taskqueue.sqs import make_client
from prometheus_client import generate_latest


def test_series_are_cached_and_exported():
    metrics = Metrics()
    assert metrics.queue("work") is metrics.queue("work")
    assert metrics.task("work", "a:job") is metrics.task("work", "a:job")
    assert metrics.task("work", "a:job") is not metrics.task("work", "b:job")
    metrics.queue("work").deleted.inc(10)
    metrics.task("work", "a:job").processed.inc()
    text = generate_latest(metrics.registry).decode()
    assert 'taskqueue_messages_deleted_total{queue="work"} 10.0' in text
    assert 'taskqueue_messages_processed_total{queue="work",task="a:job"} 1.0' in text


def test_only_the_processor_skips_client_side_parameter_validation():
    common = {"region": "us-east-1", "endpoint": "http://127.0.0.1:1", "call_timeout_seconds": 1}
    bad = {"QueueUrl": "http://127.0.0.1:1/q", "MaxNumberOfMessages": "ten"}
    with pytest.raises(botocore.exceptions.ParamValidationError):
        make_client(**common).receive_message(**bad)  # type: ignore[arg-type]
    # Without the check the request goes out (and here finds nobody listening).
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        make_client(**common, validate_parameters=False).receive_message(**bad)  # type: ignore[arg-type]
