"""`kube-taskqueue render` as a kubectl user runs it: piped into `kubectl apply` on the real API
server, and a scheduled FIFO send run the way its CronJob runs it."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"


def fifo_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The example with an autoscaled processor and a scheduled task on a FIFO queue."""
    document = copy.deepcopy(manifest)
    spec = document["spec"]
    spec["queues"].append({"name": "orders.fifo", "deadLetter": {"maxReceiveCount": 2}})
    spec["tasks"].append(
        {
            "name": "orders:report",
            "queue": "orders.fifo",
            "schedule": "*/10 * * * *",
            "payload": {"note": "costs $5 and $(AWS_REGION)"},
        }
    )
    spec["processors"][1]["tasks"].append("orders:report")
    spec["processors"][1]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    return document


def test_render_piped_into_kubectl_apply_is_accepted_by_the_api_server(
    control_plane, namespace, manifest, tmp_path
):
    document = fifo_manifest(manifest)
    del document["metadata"]["namespace"]
    path = tmp_path / "tq.yaml"
    path.write_text(yaml.safe_dump(document))
    command = (
        f"{TASKQUEUE} render -f {path} --namespace {namespace} "
        f"| {control_plane.kubectl} --kubeconfig={control_plane.kubeconfig} "
        "apply --dry-run=server -o json -f -"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout)["items"]
    # ConfigMap names end in ten hex digits of their content.
    names = [
        (
            o["kind"],
            o["metadata"]["name"][:-11] if o["kind"] == "ConfigMap" else o["metadata"]["name"],
        )
        for o in applied
    ]
    assert names == [
        ("ConfigMap", "accounts-main"),
        ("Deployment", "accounts-main"),
        ("ConfigMap", "accounts-examples"),
        ("Deployment", "accounts-examples"),
        ("HorizontalPodAutoscaler", "accounts-examples"),
        ("CronJob", "accounts-partitions-maintenance-job"),
        ("CronJob", "accounts-orders-report"),
    ]
    # The server kept the FIFO CronJob's ids and downward-API variable as rendered.
    cronjob = applied[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert cronjob["command"][-3:] == [
        "--group-id=orders:report",
        "--deduplication-id=$(TASKQUEUE_JOB_NAME)",
        '{"note":"costs $$5 and $$(AWS_REGION)"}',
    ]
    assert cronjob["env"][-1]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )


# -- the CronJob's send, as its pod runs it --------------------------------------------------


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet does to a command argument: $(VAR) from the container's env, `$$`
    to `$`, anything else kept (a port of Kubernetes' third_party/forked/golang/expansion)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return re.sub(r"\$\$|\$\(([^)]*)\)", replace, text)


FIFO_APP = textwrap.dedent(
    """
    from pydantic import BaseModel
    from kube_taskqueue import Provider

    class Report(BaseModel):
        note: str

    provider = Provider()

    @provider.task("orders:report", queue="orders.fifo")
    def report(payload: Report) -> None: ...

    # The TaskQueue's other queue has a task too: the rendered config carries its settings,
    # and settings for a queue no task uses are refused.
    @provider.task("example:job", queue="example_queue")
    def example(payload: Report) -> None: ...
    """
)


def test_the_scheduled_fifo_send_is_accepted_and_a_retried_run_is_deduplicated(
    manifest, sqs, sqs_endpoint, prefix, tmp_path
):
    document = fifo_manifest(manifest)
    document["spec"]["sqs"] = {"region": "us-east-1", "queuePrefix": prefix}
    objects = render(parse(document))
    [config_map] = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("accounts-examples-")
    ]
    config = yaml.safe_load(config_map["data"]["processor.yaml"])
    config["app"] = "fifoapp:provider"
    config["sqs"]["endpoint"] = sqs_endpoint
    (tmp_path / "processor.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "fifoapp.py").write_text(FIFO_APP)
    url = sqs.create_queue(QueueName=f"{prefix}orders.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    [cronjob] = [o for o in objects if o["metadata"]["name"] == "accounts-orders-report"]
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]

    python_path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]

    def run_job(job_name: str) -> subprocess.CompletedProcess[str]:
        env = {"TASKQUEUE_JOB_NAME": job_name, "AWS_REGION": "us-east-1"}
        command = [kubelet_expand(argument, env) for argument in container["command"]]
        command[command.index("--config") + 1] = str(tmp_path / "processor.yaml")
        assert command[0] == "kube-taskqueue"
        return subprocess.run(
            [str(TASKQUEUE), *command[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(python_path)},
        )

    for job in ("accounts-orders-report-29400000", "accounts-orders-report-29400000"):
        result = run_job(job)  # the second is the first run retried: same Job name
        assert result.returncode == 0, result.stderr
    assert run_job("accounts-orders-report-29400010").returncode == 0  # the next run
    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert len(received) == 2
    assert {m["Attributes"]["MessageGroupId"] for m in received} == {"orders:report"}
    assert {m["Attributes"]["MessageDeduplicationId"] for m in received} == {
        "accounts-orders-report-29400000",
        "accounts-orders-report-29400010",
    }
    assert json.loads(received[0]["Body"]) == {"note": "costs $5 and $(AWS_REGION)"}


def test_a_queue_driven_processors_keda_objects_meet_kedas_schema(
    control_plane, namespace, keda_crds, manifest, tmp_path
):
    """Server-side dry run against KEDA's own CRDs (from its release source)."""
    document = copy.deepcopy(manifest)
    examples = document["spec"]["processors"][1]
    del examples["replicas"]
    examples["autoscaling"] = {"minReplicas": 0, "maxReplicas": 5, "queueLength": 10}
    document["metadata"]["namespace"] = namespace
    objects = [o for o in render(parse(document)) if o["apiVersion"] == "keda.sh/v1alpha1"]
    assert sorted(o["kind"] for o in objects) == ["ScaledObject", "TriggerAuthentication"]
    result = control_plane.kubectl_run(
        "apply", "--dry-run=server", "--validate=strict", "-o", "json", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = {o["kind"]: o for o in json.loads(result.stdout)["items"]}
    assert stored["ScaledObject"]["spec"]["minReplicaCount"] == 0
    assert stored["ScaledObject"]["spec"]["triggers"][0]["type"] == "aws-sqs-queue"
    assert stored["TriggerAuthentication"]["spec"]["secretTargetRef"][0]["parameter"] == (
        "awsAccessKeyID"
    )
