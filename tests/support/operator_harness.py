"""`kube-taskqueue operator` in a subprocess against the test control plane, and helpers to read
what it made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
from controlplane import ControlPlane
from harness import free_port, wait_for

WEBHOOK_CONFIGURATION = "taskqueue.dev"
#: The default policy of the tests' operators: the tests name their own prefixes (`t<hex>-`),
#: moto's loopback endpoint, adoption and Secrets; the tenancy tests set their own policy.
PERMISSIVE_POLICY = {
    "queuePrefixes": ["*"],
    "endpoints": ["*"],
    "allowAdoption": True,
    "allowDeletion": True,
    "credentialsSecrets": ["sqs", "sqs-credentials", "sqs-keys", "nowhere"],
    "images": ["*"],
    "serviceAccounts": ["*"],
}


class OperatorProcess:
    def __init__(
        self,
        plane: ControlPlane,
        directory: Path,
        *,
        kubeconfig: str | None = None,
        **settings: Any,
    ) -> None:
        self.plane = plane
        self.health_port = free_port()
        self.webhook_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig or str(plane.kubeconfig),
            # Its temporary files (the webhook's key material) in the test's own directory.
            "TMPDIR": str(directory),
            "TASKQUEUE_WEBHOOK_HOST": "127.0.0.1",
            "TASKQUEUE_WEBHOOK_LISTEN": "127.0.0.1",
            "TASKQUEUE_WEBHOOK_PORT": str(self.webhook_port),
            "TASKQUEUE_WEBHOOK_MANAGED": "true",
            "TASKQUEUE_HEALTH_PORT": str(self.health_port),
            "TASKQUEUE_HEALTH_LISTEN": "127.0.0.1",
            "TASKQUEUE_DRIFT_INTERVAL": "3",
            "TASKQUEUE_STATUS_INTERVAL": "2",
            "TASKQUEUE_QUEUE_DRIFT_INTERVAL": "3",
            "TASKQUEUE_SQS_CALL_TIMEOUT": "3",
            "TASKQUEUE_DEFAULT_POLICY": json.dumps(PERMISSIVE_POLICY),
        }
        env.update({f"TASKQUEUE_{k.upper()}": str(v) for k, v in settings.items()})
        self.log_path = directory / f"operator-{self.health_port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kube_taskqueue.cli", "operator"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.webhook = (
            str(settings.get("webhook_enabled", True)).lower() != "false"
            and str(settings.get("webhook_managed", True)).lower() != "false"
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.healthy() or self.process.poll() is not None, timeout=timeout)
        assert self.process.poll() is None, self.output()
        if self.webhook:
            wait_for(self._webhook_registered, timeout=timeout)

    def _webhook_registered(self) -> bool:
        result = self.plane.kubectl_run(
            "get",
            "validatingwebhookconfiguration",
            WEBHOOK_CONFIGURATION,
            "-o",
            "json",
            check=False,
        )
        if result.returncode != 0:
            return False
        hooks = json.loads(result.stdout).get("webhooks", [])
        return any(str(self.webhook_port) in h["clientConfig"].get("url", "") for h in hooks)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        # A registration left behind would send every later apply to a dead webhook.
        self.plane.kubectl_run(
            "delete",
            "validatingwebhookconfiguration",
            WEBHOOK_CONFIGURATION,
            "--ignore-not-found",
            check=False,
        )


def create_credentials_secret(
    plane: ControlPlane, namespace: str, *, key_id: str, secret: str, name: str = "sqs"
) -> None:
    """The Secret a TaskQueue names in spec.sqs.credentialsSecret."""
    plane.kubectl_run(
        "create",
        "secret",
        "generic",
        name,
        "-n",
        namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={key_id}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={secret}",
    )


def get(plane: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    result = plane.kubectl_run("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def roll_out(api: Any, namespace: str, name: str) -> None:
    """Write the status the Deployment controller would write once Deployment `name` is
    rolled out and available (the test control plane runs no controller-manager)."""
    apps = kubernetes.client.AppsV1Api(api)
    live = apps.read_namespaced_deployment(name, namespace)
    replicas = live.spec.replicas or 0
    apps.patch_namespaced_deployment_status(
        name,
        namespace,
        {
            "status": {
                "observedGeneration": live.metadata.generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        },
    )


def mounted_config_map(workload: dict[str, Any]) -> str:
    """The ConfigMap a Deployment's or CronJob's pod template mounts (processor ConfigMaps
    are named by their content, so tests find them through the object that mounts them)."""
    spec = workload["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    )
    [name] = [v["configMap"]["name"] for v in template["spec"]["volumes"] if "configMap" in v]
    return str(name)


def config_of(plane: ControlPlane, processor_deployment: str, namespace: str) -> str:
    """The processor.yaml a live processor Deployment mounts."""
    deployment = get(plane, "deployment", processor_deployment, namespace)
    assert deployment is not None, f"no Deployment {processor_deployment}"
    config_map = get(plane, "configmap", mounted_config_map(deployment), namespace)
    assert config_map is not None, f"the ConfigMap of {processor_deployment} is missing"
    return str(config_map["data"]["processor.yaml"])


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    if obj is None:
        return None
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def contains(live: Any, rendered: Any, path: str = "") -> list[str]:
    """Differences where `live` lacks or changes what `rendered` says (the server adds
    defaults, so extra live fields are fine)."""
    if isinstance(rendered, dict):
        if not isinstance(live, dict):
            return [f"{path}: {live!r} is not a mapping"]
        return [d for k, v in rendered.items() for d in contains(live.get(k), v, f"{path}.{k}")]
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return [f"{path}: {live!r} != {rendered!r}"]
        return [
            d
            for i, (a, b) in enumerate(zip(live, rendered, strict=True))
            for d in contains(a, b, f"{path}[{i}]")
        ]
    return [] if live == rendered else [f"{path}: {live!r} != {rendered!r}"]


def events(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    result = plane.kubectl_run("get", "events", "-n", namespace, "-o", "json")
    return json.loads(result.stdout)["items"]


def settle(seconds: float) -> None:
    time.sleep(seconds)
