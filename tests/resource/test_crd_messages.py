"""The API server's own rejections (the CRD's CEL rules, no webhook) name the culprit: the
queue, task or processor, as `kube-taskqueue validate` and the webhook do."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from kube_taskqueue_operator.resource.crd import build_crd
from kube_taskqueue_operator.resource.models import SCALE_TO_ZERO

Change = Callable[[dict[str, Any]], Any]

#: (static message of the rule, how to break it, what the API server must say).
CASES: list[tuple[str, Change, str]] = [
    (
        "queue names must be unique",
        lambda s: s["queues"].append(copy.deepcopy(s["queues"][1])),
        "spec: Invalid value: \"object\": queue names must be unique: 'example_queue' is "
        "declared more than once",
    ),
    (
        "task names must be unique",
        lambda s: s["tasks"].append(copy.deepcopy(s["tasks"][1])),
        "task names must be unique: 'cleanup:job' is declared more than once",
    ),
    (
        "processor names must be unique",
        lambda s: s["processors"].append({"name": "examples", "tasks": ["example:job"]}),
        "processor names must be unique: 'examples' is declared more than once",
    ),
    (
        "every task's queue must be declared in spec.queues",
        lambda s: s["tasks"][2].update(queue="nowhere"),
        "spec: Invalid value: \"object\": task 'example:job' uses queue 'nowhere', which is "
        "not declared in spec.queues",
    ),
    (
        "processors may only name tasks declared in spec.tasks",
        lambda s: s["processors"][1]["tasks"].append("ghost:job"),
        "spec: Invalid value: \"object\": processor 'examples' names unknown task "
        "'ghost:job', which is not declared in spec.tasks",
    ),
    (
        "contentBasedDeduplication is only for FIFO queues (names ending in .fifo)",
        lambda s: s["queues"][1].update(contentBasedDeduplication=True),
        "spec.queues[1]: Invalid value: \"object\": queue 'example_queue': "
        "contentBasedDeduplication is only for FIFO queues (names ending in .fifo)",
    ),
    (
        "retryBackoffInitial must not exceed retryBackoffMax",
        lambda s: s["queues"][1].update(retryBackoffInitial=60, retryBackoffMax=10),
        "spec.queues[1]: Invalid value: \"object\": queue 'example_queue': "
        "retryBackoffInitial must not exceed retryBackoffMax",
    ),
    (
        "payload is only sent on a schedule",
        lambda s: s["tasks"][1].update(payload={"a": 1}),
        "spec.tasks[1]: Invalid value: \"object\": task 'cleanup:job' has a payload but no "
        "schedule to send it on",
    ),
    (
        "minReplicas must not exceed maxReplicas",
        lambda s: s["processors"][1].update(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "spec.processors[1]: Invalid value: \"object\": processor 'examples': "
        "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
    ),
    (
        f"autoscaling.minReplicas is 0: {SCALE_TO_ZERO}",
        lambda s: s["processors"][1].update(autoscaling={"minReplicas": 0}),
        "spec.processors[1]: Invalid value: \"object\": processor 'examples': "
        "autoscaling.minReplicas is 0: scale-to-zero needs queue-driven autoscaling",
    ),
    (
        "autoscaling.queueLength (queue depth, KEDA) excludes external and "
        "targetCPUUtilizationPercentage",
        lambda s: s["processors"][1].update(
            autoscaling={"queueLength": 10, "targetCPUUtilizationPercentage": 50}
        ),
        "spec.processors[1]: Invalid value: \"object\": processor 'examples': "
        "autoscaling.queueLength (queue depth, KEDA) excludes external and "
        "targetCPUUtilizationPercentage: choose one autoscaler",
    ),
]


def all_rules(node: dict[str, Any]) -> list[dict[str, str]]:
    rules = list(node.get("x-kubernetes-validations", []))
    for child in node.get("properties", {}).values():
        rules += all_rules(child)
    if "items" in node:
        rules += all_rules(node["items"])
    return rules


def test_every_cel_rule_has_a_message_expression_and_a_case_here():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = all_rules(schema)
    assert all(rule.get("messageExpression") for rule in rules)
    assert sorted(rule["message"] for rule in rules) == sorted(case[0] for case in CASES)


@pytest.mark.parametrize(("rule", "change", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_the_api_server_names_the_culprit(
    control_plane, crd, namespace, manifest, rule, change, expected
):
    manifest["metadata"]["namespace"] = namespace
    change(manifest["spec"])
    result = control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0, f"{rule}: accepted"
    assert "admission webhook" not in result.stderr  # the API server's own rules
    assert expected in result.stderr, result.stderr
