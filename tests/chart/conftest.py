"""The chart under test, rendered and installed with the real `helm` against the test API
server."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).parents[2] / "charts" / "kube-taskqueue-operator"
#: Where a user pushed the operator image; the chart has no default (none is published).
IMAGE = ("--set", "image.repository=registry.example.test/kube-taskqueue-operator")
#: The Kubernetes version `helm template` renders for (the test API server's).
KUBE_VERSION = ("--kube-version", "1.34.4")


class Chart:
    path = CHART
    image = IMAGE

    def __init__(self, plane: Any) -> None:
        self.plane = plane

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.plane.helm), *args, "--kubeconfig", str(self.plane.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {result.stderr}")
        return result

    def template(
        self, *extra: str, release: str = "t", namespace: str = "ops"
    ) -> list[dict[str, Any]]:
        """The rendered objects (offline, as GitOps tools render)."""
        result = self.helm(
            "template", release, str(CHART), "-n", namespace, *KUBE_VERSION, *IMAGE, *extra
        )
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture
def chart(control_plane: Any) -> Chart:
    return Chart(control_plane)


@pytest.fixture
def tenant_namespace(control_plane: Any) -> Iterator[str]:
    """A namespace for a tenant's TaskQueues, deleted afterwards."""
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl_run("create", "namespace", name)
    yield name
    control_plane.kubectl_run("delete", "namespace", name, "--wait=false")
