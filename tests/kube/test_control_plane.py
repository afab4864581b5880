"""The test control plane: a real kube-apiserver that kubectl, helm, the kubernetes client and
kopf all talk to, with our CRD installed and enforcing its schema."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import kopf
import kubernetes
import pytest
import yaml
from kube_taskqueue_operator.resource.crd import CRD_PATH
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse

EXAMPLE = Path(__file__).parents[2] / "examples" / "manifests" / "accounts.yaml"


@pytest.fixture(scope="module")
def crd(control_plane):
    control_plane.kubectl_run("apply", "--server-side", "-f", str(CRD_PATH))
    control_plane.kubectl_run(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/taskqueues.taskqueue.dev"
    )


def example(namespace: str) -> dict:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["namespace"] = namespace
    return manifest


def apply(control_plane, manifest: dict) -> subprocess.CompletedProcess[str]:
    return control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(manifest), check=False)


def test_kubectl_and_the_server_report_version_1_34(control_plane):
    version = json.loads(control_plane.kubectl_run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.34.4"
    assert version["clientVersion"]["minor"] == "34"


def test_helm_talks_to_the_server(control_plane):
    result = subprocess.run(
        [
            str(control_plane.helm),
            "list",
            "--all-namespaces",
            "--kubeconfig",
            str(control_plane.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("NAME")


def test_the_kubernetes_client_and_kopf_log_in(control_plane, kube_client):
    namespaces = kubernetes.client.CoreV1Api(kube_client).list_namespace()
    assert "kube-system" in {item.metadata.name for item in namespaces.items}
    credentials = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert credentials is not None
    assert credentials.server == control_plane.url
    assert credentials.token == control_plane.tokens["admin"]


def test_the_limited_user_has_no_rights_until_bound(control_plane, namespace):
    result = control_plane.kubectl_run("get", "pods", "-n", namespace, limited=True, check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr


def test_a_taskqueue_is_stored_and_read_back(control_plane, crd, namespace):
    result = apply(control_plane, example(namespace))
    assert result.returncode == 0, result.stderr
    stored = json.loads(
        control_plane.kubectl_run("get", "tq", "accounts", "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"]["queues"][0]["maxBatchSize"] == 10
    # Defaults from the models are filled in by the API server.
    assert stored["spec"]["processors"][1]["workers"] == 8
    assert stored["spec"]["tasks"][0]["payload"] == {}
    table = control_plane.kubectl_run("get", "taskqueues", "-n", namespace).stdout
    assert table.split()[:5] == ["NAME", "QUEUES", "PROCESSORS", "READY", "AGE"]
    assert table.splitlines()[1].startswith("accounts ")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["queues"][0].update(maxBatchSize=11), "should be less than or equal to 10"),
        (lambda s: s["queues"].append(copy.deepcopy(s["queues"][0])), "queue names must be unique"),
        (
            lambda s: s["tasks"][2].update(queue="nowhere"),
            "task 'example:job' uses queue 'nowhere', which is not declared in spec.queues",
        ),
        (
            lambda s: s["processors"][0]["tasks"].append("ghost:job"),
            "names unknown task 'ghost:job', which is not declared in spec.tasks",
        ),
        (
            lambda s: s["queues"][0].update(contentBasedDeduplication=True),
            "contentBasedDeduplication is only for FIFO",
        ),
        (lambda s: s.update(surprise=True), 'unknown field "spec.surprise"'),
    ],
)
def test_the_api_server_rejects_what_the_schema_can_tell(
    control_plane, crd, namespace, change, message
):
    manifest = example(namespace)
    change(manifest["spec"])
    result = apply(control_plane, manifest)
    assert result.returncode != 0
    assert message in result.stderr


def test_rendered_objects_pass_server_side_dry_run(control_plane, namespace):
    manifest = example(namespace)
    manifest["spec"]["processors"][0]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4}
    stream = "\n---\n".join(json.dumps(obj) for obj in render(parse(manifest)))
    result = control_plane.kubectl_run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=stream, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/accounts-main created (server dry run)" in result.stdout
    assert (
        "cronjob.batch/accounts-partitions-maintenance-job created (server dry run)"
        in result.stdout
    )
