"""Shared fixtures: moto's SQS server over real HTTP, queues, and processors to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kube_taskqueue_operator.resource.crd import CRD_PATH, POLICY_CRD_PATH
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).parent / "support"))

from controlplane import ControlPlane
from harness import REGION, ProcessorProcess, Queues, Records, free_port
from operator_harness import OperatorProcess

ROOT = Path(__file__).resolve().parents[1]

# moto accepts any credentials; never let a developer's real ones be picked up.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION=REGION,
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()


@pytest.fixture(scope="session")
def sqs_endpoint(moto_port: int) -> str:
    return f"http://127.0.0.1:{moto_port}"


@pytest.fixture
def sqs(sqs_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=REGION)


@pytest.fixture
def prefix() -> str:
    """A queue-name prefix of this test's own, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def queues(sqs: Any, prefix: str) -> Queues:
    return Queues(sqs, prefix)


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Records:
    path = tmp_path / "records.log"
    monkeypatch.setenv("RECORD_FILE", str(path))
    return Records(path)


@pytest.fixture
def spawn(tmp_path: Path, records: Records) -> Iterator[Callable[..., ProcessorProcess]]:
    started: list[ProcessorProcess] = []

    def start(config: dict[str, Any]) -> ProcessorProcess:
        process = ProcessorProcess(config, tmp_path, {"RECORD_FILE": str(records.path)})
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A real kube-apiserver + etcd for the session (see tests/support/controlplane.py).

    KUBECONFIG points at it for subprocesses (kubectl, helm, an operator) and kopf's login.
    """
    plane = ControlPlane()
    plane.start()
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(plane.kubeconfig)
    try:
        yield plane
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        plane.stop()


@pytest.fixture(scope="session")
def kube_client(control_plane: ControlPlane) -> Any:
    """A `kubernetes` ApiClient logged in as the admin user."""
    import kubernetes

    return kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture
def namespace(control_plane: ControlPlane, kube_client: Any) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards."""
    import kubernetes

    name = f"test-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def crd(control_plane):
    for path in (CRD_PATH, POLICY_CRD_PATH):
        control_plane.kubectl_run("apply", "--server-side", "-f", str(path))
    control_plane.kubectl_run(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/taskqueues.taskqueue.dev",
        "crd/taskqueuepolicies.taskqueue.dev",
    )


@pytest.fixture(scope="session")
def keda_crds(control_plane) -> None:
    """KEDA's ScaledObject and TriggerAuthentication CRDs, from KEDA's release source on the Go
    module proxy (hack/keda/crds.sh), so rendered ScaledObjects meet KEDA's real schema."""
    listed = subprocess.run(
        [str(ROOT / "hack" / "keda" / "crds.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    for path in listed.stdout.split():
        control_plane.kubectl_run("apply", "--server-side", "-f", path)
    control_plane.kubectl_run(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/scaledobjects.keda.sh",
        "crd/triggerauthentications.keda.sh",
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
