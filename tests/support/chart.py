"""The chart under test, rendered and installed with the real `helm` against a test API
server (tests/chart and its conftest)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "kube-taskqueue-operator"
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
