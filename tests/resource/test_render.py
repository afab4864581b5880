"""Rendering: golden output, the processor config contract, pod security, Kubernetes schemas."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kube_taskqueue.assignment import assign
from kube_taskqueue.config import parse_config
from kube_taskqueue.provider import Provider
from kube_taskqueue_operator.resource.render import (
    CONFIG_HASH_ANNOTATION,
    render,
    render_queue_plan,
    render_text,
)
from kube_taskqueue_operator.resource.validation import parse

GOLDEN = Path(__file__).parent / "golden"
MODELS = {
    "ConfigMap": "V1ConfigMap",
    "Deployment": "V1Deployment",
    "CronJob": "V1CronJob",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_render_matches_the_golden_file(manifest):
    text = render_text(parse(manifest))
    golden = GOLDEN / "accounts.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), "rendering changed; review and rerun with UPDATE_GOLDEN=1"


def test_one_configmap_and_deployment_per_processor_and_a_cronjob_per_schedule(manifest):
    objects = render(parse(manifest))
    assert [o["metadata"]["name"] for o in by_kind(objects, "Deployment")] == [
        "accounts-main",
        "accounts-examples",
    ]
    # ConfigMaps are named by their content: the workload name and ten hex digits.
    assert [o["metadata"]["name"][:-11] for o in by_kind(objects, "ConfigMap")] == [
        "accounts-main",
        "accounts-examples",
    ]
    assert all(
        re.fullmatch(r"-[0-9a-f]{10}", o["metadata"]["name"][-11:])
        for o in by_kind(objects, "ConfigMap")
    )
    [cron] = by_kind(objects, "CronJob")
    assert cron["metadata"]["name"] == "accounts-partitions-maintenance-job"
    assert cron["spec"]["schedule"] == "0 * * * *"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["kube-taskqueue", "enqueue"]
    assert container["command"][-2:] == ["--name=partitions_maintenance:job", "{}"]


def test_the_configmap_holds_a_valid_processor_config_that_keeps_queues_whole(manifest):
    objects = render(parse(manifest))
    for config_map in by_kind(objects, "ConfigMap"):
        config = parse_config(yaml.safe_load(config_map["data"]["processor.yaml"]), source="cm")
        assert config.app == "accounts.tasks:provider"
        assert config.sqs.queue_prefix == "accounts-dev-"
        assert config.http.port == 8080
    main = parse_config(
        yaml.safe_load(by_kind(objects, "ConfigMap")[0]["data"]["processor.yaml"]), source="cm"
    )
    assert main.tasks == ["partitions_maintenance:job", "cleanup:job"]
    assert list(main.queues) == ["shared"]
    assert main.queues["shared"].message_visibility_timeout == 30


def test_the_rendered_config_passes_the_processors_own_split_check(manifest):
    from pydantic import BaseModel

    class Empty(BaseModel):
        pass

    provider = Provider()
    for task in manifest["spec"]["tasks"]:
        provider.task(task["name"], queue=task["queue"], payload_model=Empty)(lambda payload: None)
    for config_map in by_kind(render(parse(manifest)), "ConfigMap"):
        config = parse_config(yaml.safe_load(config_map["data"]["processor.yaml"]), source="cm")
        assign(provider, processor=config.processor, tasks=config.tasks)


def test_pods_meet_the_restricted_pod_security_standard(manifest):
    objects = render(parse(manifest))
    pods = [o["spec"]["template"]["spec"] for o in by_kind(objects, "Deployment")]
    pods += [
        o["spec"]["jobTemplate"]["spec"]["template"]["spec"] for o in by_kind(objects, "CronJob")
    ]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "hostNetwork" not in pod and "hostPID" not in pod
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert not security.get("privileged")
        assert all("hostPath" not in volume for volume in pod["volumes"])


def test_credentials_come_from_the_secret_and_never_appear_inline(manifest):
    objects = render(parse(manifest))
    [deployment] = [
        o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "accounts-main"
    ]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "sqs-credentials",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    for config_map in by_kind(objects, "ConfigMap"):
        assert "AWS_SECRET" not in config_map["data"]["processor.yaml"]


def test_probes_grace_period_and_replicas(manifest):
    manifest["spec"]["processors"][0]["shutdownTimeout"] = 600
    [main, _] = by_kind(render(parse(manifest)), "Deployment")
    pod = main["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert pod["terminationGracePeriodSeconds"] == 615  # covers the longest task's shutdown
    assert main["spec"]["replicas"] == 2


def test_a_changed_config_changes_the_pod_template_hash(manifest):
    resource = parse(manifest)
    before = by_kind(render(resource), "Deployment")[0]["spec"]["template"]["metadata"][
        "annotations"
    ]
    manifest["spec"]["queues"][0]["pollInterval"] = 20
    after = by_kind(render(parse(manifest)), "Deployment")[0]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert before[CONFIG_HASH_ANNOTATION] != after[CONFIG_HASH_ANNOTATION]


def test_autoscaled_processors_leave_replicas_alone(manifest):
    manifest["spec"]["processors"][0]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 6}
    manifest["spec"]["processors"][1]["autoscaling"] = {"external": True}
    objects = render(parse(manifest))
    for deployment in by_kind(objects, "Deployment"):
        assert "replicas" not in deployment["spec"]
    [hpa] = by_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "accounts-main"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)


def test_owner_references_when_the_uid_is_known(manifest):
    assert all("ownerReferences" not in o["metadata"] for o in render(parse(manifest)))
    manifest["metadata"]["uid"] = "1234-abcd"
    for obj in render(parse(manifest)):
        [owner] = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "taskqueue.dev/v1alpha1",
            "kind": "TaskQueue",
            "name": "accounts",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_queue_plan_has_attributes_dead_letters_and_owner_tags(manifest):
    manifest["spec"]["queues"].append(
        {
            "name": "orders.fifo",
            "contentBasedDeduplication": True,
            "deadLetter": {"maxReceiveCount": 2},
        }
    )
    manifest["spec"]["tasks"].append({"name": "order:job", "queue": "orders.fifo"})
    manifest["spec"]["processors"][1]["tasks"].append("order:job")
    plan = render_queue_plan(parse(manifest))["queues"]
    shared = plan[0]
    assert shared["name"] == "accounts-dev-shared"
    assert shared["attributes"] == {"VisibilityTimeout": "30"}
    assert shared["tags"] == {"taskqueue.dev/owner": "billing/accounts"}
    assert shared["deadLetter"]["name"] == "accounts-dev-shared-dlq"
    assert shared["deadLetter"]["maxReceiveCount"] == 5
    fifo = plan[2]
    assert fifo["name"] == "accounts-dev-orders.fifo"
    assert fifo["attributes"]["FifoQueue"] == "true"
    assert fifo["attributes"]["ContentBasedDeduplication"] == "true"
    assert fifo["deadLetter"]["name"] == "accounts-dev-orders-dlq.fifo"


@pytest.mark.parametrize("autoscaling", [None, {"minReplicas": 1, "maxReplicas": 3}])
def test_rendered_objects_fit_the_kubernetes_openapi_models(manifest, autoscaling):
    """Deserialise into the kubernetes client's models and back: an unknown or misspelt
    field is dropped on the way, so the round trip would differ."""
    if autoscaling:
        manifest["spec"]["processors"][0]["autoscaling"] = autoscaling
    client = kubernetes.client.ApiClient()
    for obj in render(parse(manifest)):
        model = client._ApiClient__deserialize(obj, MODELS[obj["kind"]])  # type: ignore[attr-defined]
        assert client.sanitize_for_serialization(model) == obj, obj["kind"]


def with_fifo_schedule(manifest, payload=None):
    """The example plus a FIFO queue with a scheduled task, run by the `examples` processor."""
    spec = manifest["spec"]
    spec["queues"].append({"name": "orders.fifo", "deadLetter": {"maxReceiveCount": 2}})
    spec["tasks"].append(
        {
            "name": "orders:report",
            "queue": "orders.fifo",
            "schedule": "*/10 * * * *",
            "payload": payload or {"days": 1},
        }
    )
    spec["processors"][1]["tasks"].append("orders:report")
    return manifest


def cronjobs(manifest) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        for o in by_kind(render(parse(manifest)), "CronJob")
    }


def test_a_scheduled_task_on_a_fifo_queue_sends_a_group_and_a_deduplication_id(manifest):
    containers = cronjobs(with_fifo_schedule(manifest))
    fifo = containers["accounts-orders-report"]
    assert fifo["command"] == [
        "kube-taskqueue",
        "enqueue",
        "--config",
        "/etc/taskqueue/processor.yaml",
        "--name=orders:report",
        "--group-id=orders:report",
        "--deduplication-id=$(TASKQUEUE_JOB_NAME)",
        '{"days":1}',
    ]
    # The Job's name: a CronJob names it after the scheduled time.
    assert fifo["env"][-1] == {
        "name": "TASKQUEUE_JOB_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}},
    }
    # A standard queue's CronJob is as before: no ids, no extra variable.
    standard = containers["accounts-partitions-maintenance-job"]
    assert standard["command"][-2:] == ["--name=partitions_maintenance:job", "{}"]
    assert all(e["name"] != "TASKQUEUE_JOB_NAME" for e in standard["env"])


def test_a_payload_with_dollars_survives_the_kubelets_variable_expansion(manifest):
    """The kubelet expands $(VAR) in a command and turns $$ into $: the rendered payload is
    escaped so that what arrives is what the spec says."""
    payload = {"note": "costs $5, $$ and $(AWS_REGION)"}
    containers = cronjobs(with_fifo_schedule(manifest, payload))
    rendered = containers["accounts-orders-report"]["command"][-1]
    assert rendered == '{"note":"costs $$5, $$$$ and $$(AWS_REGION)"}'


def test_the_hpa_keeps_the_spec_minimum(manifest):
    manifest["spec"]["processors"][1]["autoscaling"] = {"minReplicas": 3, "maxReplicas": 4}
    [hpa] = by_kind(render(parse(manifest)), "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3
