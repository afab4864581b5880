"""KEDA's kinds are optional: without KEDA, reconciles never ask the dynamic client for them
(a kind it cannot find makes it rebuild its discovery cache under the other reconcile
threads' feet: KeyError 'resources', seen at 1,000 TaskQueues), and a queue-driven
TaskQueue is told KEDA is missing."""

from __future__ import annotations

import threading
from typing import Any

from kube_taskqueue_operator.workloads import Workloads

FIELD_MANAGER = "kube-taskqueue-operator-test"


def test_an_unserved_group_is_answered_from_the_group_list_and_remembered(kube_client: Any):
    workloads = Workloads(kube_client, field_manager=FIELD_MANAGER)
    assert workloads._serves("apps/v1", "Deployment") is True
    assert workloads._serves("nothere.example.com/v1", "Thing") is False
    answers: list[bool] = []

    def ask() -> None:
        for _ in range(50):
            answers.append(workloads._serves("nothere.example.com/v1", "Thing"))
            workloads._resource("apps/v1", "Deployment")  # the dynamic client, meanwhile

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [False] * 400
