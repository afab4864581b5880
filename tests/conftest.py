"""Shared fixtures: moto's SQS server over real HTTP, queues, and processors to run."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).parent / "support"))

from controlplane import ControlPlane
from harness import REGION, ProcessorProcess, Queues, Records, free_port

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
