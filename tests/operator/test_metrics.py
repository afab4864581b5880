"""The operator's /metrics: queue depth, dead letters, readiness and processor replicas of
every TaskQueue, from the status it writes; a deleted TaskQueue's series go with it."""

from __future__ import annotations

import urllib.request

import pytest
from harness import wait_for
from kube_taskqueue_operator.metrics import OperatorMetrics
from operator_harness import get
from prometheus_client.parser import text_string_to_metric_families


def _samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_follow_the_status(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues
):
    assert kubectl_apply(make_manifest()).returncode == 0
    wait_for(
        lambda: (get(control_plane, "tq", "app", namespace) or {}).get("status", {}).get("queues"),
        timeout=60,
    )
    for index in range(2):
        queues.sqs.send_message(QueueUrl=queues.url("work"), MessageBody=f"{index}")
    queues.sqs.send_message(QueueUrl=queues.url("work"), MessageBody="later", DelaySeconds=900)
    queues.sqs.send_message(QueueUrl=queues.url("work-dlq"), MessageBody="dead")
    key = {("namespace", namespace), ("taskqueue", "app")}
    work = {("queue", "work"), ("processor", "main")}  # the processor that polls it

    def seen() -> bool:
        samples = _samples(operator.health_port)
        return (
            samples.get(
                (
                    "taskqueue_queue_messages",
                    frozenset({*key, *work, ("state", "visible")}),
                )
            )
            == 2
            and samples.get(
                (
                    "taskqueue_queue_messages",
                    frozenset({*key, *work, ("state", "delayed")}),
                )
            )
            == 1
            and samples.get(("taskqueue_dead_letter_messages", frozenset({*key, *work}))) == 1
            and samples.get(("taskqueue_ready", frozenset(key))) == 1
            and samples.get(
                (
                    "taskqueue_processor_replicas",
                    frozenset({*key, ("processor", "main"), ("state", "desired")}),
                )
            )
            == 2
        )

    wait_for(seen, timeout=30)
    status = get(control_plane, "tq", "app", namespace)["status"]
    work = next(q for q in status["queues"] if q["name"] == "work")
    assert work["approximateDeadLetters"] == 1  # the same number in the status
    control_plane.kubectl_run("delete", "tq", "app", "-n", namespace, "--wait=false")
    try:
        wait_for(lambda: get(control_plane, "tq", "app", namespace) is None, timeout=120)
    except pytest.fail.Exception:
        pytest.fail(f"the TaskQueue was not deleted; operator log:\n{operator.output()[-4000:]}")
    wait_for(
        lambda: (
            not any(
                dict(labels).get("namespace") == namespace
                for _, labels in _samples(operator.health_port)
            )
        ),
        timeout=30,
    )


def test_forget_removes_only_that_taskqueues_series():
    metrics = OperatorMetrics()
    status = {
        "queues": [{"name": "q", "approximateMessages": 3, "approximateInFlight": 1}],
        "processors": [{"name": "p", "desiredReplicas": 2, "readyReplicas": 1}],
        "conditions": [{"type": "Ready", "status": "False"}],
    }
    metrics.observe("a", "one", status)
    metrics.observe("b", "two", status)
    metrics.forget("a", "one")
    names = {
        sample.labels.get("namespace")
        for family in metrics.registry.collect()
        for sample in family.samples
    }
    assert names == {"b"}
    value = metrics.registry.get_sample_value(
        "taskqueue_ready", {"namespace": "b", "taskqueue": "two"}
    )
    assert value == 0.0
