"""Fixtures for operator tests: the CRD installed, an operator running, manifests to apply."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operator_harness import OperatorProcess
from taskqueue_operator.resource.crd import CRD_PATH


@pytest.fixture(scope="session")
def crd(control_plane):
    control_plane.kubectl_run("apply", "--server-side", "-f", str(CRD_PATH))
    control_plane.kubectl_run(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/taskqueues.taskqueue.dev"
    )


@pytest.fixture(scope="module")
def operator(control_plane, crd, tmp_path_factory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(control_plane, tmp_path_factory.mktemp("operator"))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def manifest(*, name: str, namespace: str, endpoint: str, prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "registry.example.test/app:1.0",
            "app": "sampleapp:provider",
            "sqs": {"region": "us-east-1", "endpoint": endpoint, "queuePrefix": prefix},
            "queues": [
                {
                    "name": "work",
                    "pollInterval": 1,
                    "messageVisibilityTimeout": 10,
                    "deadLetter": {"maxReceiveCount": 3},
                },
                {"name": "other", "messageVisibilityTimeout": 20},
            ],
            "tasks": [
                {"name": "record:job", "queue": "work"},
                {"name": "record_async:job", "queue": "work"},
                {
                    "name": "other:job",
                    "queue": "other",
                    "schedule": "*/5 * * * *",
                    "payload": {"n": 1},
                },
            ],
            "processors": [
                {"name": "main", "tasks": ["record:job", "record_async:job"], "replicas": 2},
                {"name": "others", "tasks": ["other:job"]},
            ],
        },
    }


@pytest.fixture
def make_manifest(namespace, sqs_endpoint, prefix) -> Callable[..., dict[str, Any]]:
    def make(name: str = "app", **overrides: Any) -> dict[str, Any]:
        document = manifest(name=name, namespace=namespace, endpoint=sqs_endpoint, prefix=prefix)
        document["spec"].update(overrides)
        return document

    return make


@pytest.fixture
def kubectl_apply(control_plane) -> Callable[[dict[str, Any]], Any]:
    def apply(document: dict[str, Any]) -> Any:
        return control_plane.kubectl_run(
            "apply", "-f", "-", input=json.dumps(document), check=False
        )

    return apply
