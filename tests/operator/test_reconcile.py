"""The operator against the real API server and moto's SQS: apply, update, admission,
drift repair, deletion policies."""

from __future__ import annotations

import json

from harness import wait_for
from kube_taskqueue_operator.resource.naming import TAG_OWNER
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse
from operator_harness import (
    condition,
    config_of,
    contains,
    events,
    get,
    mounted_config_map,
    roll_out,
)


def ready(plane, namespace, name="app", generation=None):
    obj = get(plane, "tq", name, namespace)
    found = condition(obj, "Ready")
    if not found or found["status"] != "True":
        return None
    if generation is not None and obj["status"].get("observedGeneration") != generation:
        return None
    return obj


def test_apply_creates_queues_workloads_and_status(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues, prefix
):
    document = make_manifest()
    assert kubectl_apply(document).returncode == 0
    obj = wait_for(lambda: ready(control_plane, namespace), timeout=60)

    # Queues: attributes, dead-letter queue first, redrive policy, owner tags.
    sqs = queues.sqs
    work = queues.url("work")
    attributes = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "10"
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=queues.url("work-dlq"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == 3
    assert sqs.list_queue_tags(QueueUrl=work)["Tags"][TAG_OWNER] == f"{namespace}/app"
    assert (
        "RedrivePolicy"
        not in sqs.get_queue_attributes(QueueUrl=queues.url("other"), AttributeNames=["All"])[
            "Attributes"
        ]
    )

    # Workloads: exactly what `render` says, owned by the TaskQueue.
    live_document = {
        **document,
        "metadata": {**document["metadata"], "uid": obj["metadata"]["uid"]},
    }
    for rendered in render(parse(live_document)):
        live = get(control_plane, rendered["kind"], rendered["metadata"]["name"], namespace)
        assert live is not None, rendered["metadata"]["name"]
        assert contains(live, rendered) == [], rendered["metadata"]["name"]
        managers = json.loads(
            control_plane.kubectl_run(
                "get",
                rendered["kind"],
                rendered["metadata"]["name"],
                "-n",
                namespace,
                "-o",
                "json",
                "--show-managed-fields",
            ).stdout
        )["metadata"]["managedFields"]
        assert {"manager": "kube-taskqueue-operator", "operation": "Apply"}.items() <= managers[
            0
        ].items()

    # Status.
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert (status["queueCount"], status["processorCount"]) == (2, 2)
    assert {q["name"]: q["url"] for q in status["queues"]} == {
        "work": work,
        "other": queues.url("other"),
    }
    assert status["queues"][0]["deadLetterUrl"] == queues.url("work-dlq")
    assert {p["name"]: p["desiredReplicas"] for p in status["processors"]} == {
        "main": 2,
        "others": 1,
    }
    assert condition(obj, "Invalid")["status"] == "False"
    assert condition(obj, "Degraded")["status"] == "False"
    # Depth is refreshed by the status timer.
    sqs.send_message(QueueUrl=work, MessageBody="{}")
    wait_for(
        lambda: (
            get(control_plane, "tq", "app", namespace)["status"]["queues"][0].get(
                "approximateMessages"
            )
            == 1
        ),
        timeout=20,
    )
    # The operator never writes the spec.
    assert get(control_plane, "tq", "app", namespace)["spec"]["processors"][0]["replicas"] == 2
    assert any(e["reason"] == "Reconciled" for e in events(control_plane, namespace))


def test_updates_converge(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues, kube_client
):
    document = make_manifest()
    kubectl_apply(document)
    obj = wait_for(lambda: ready(control_plane, namespace), timeout=60)
    hash_before = get(control_plane, "deployment", "app-main", namespace)["spec"]["template"][
        "metadata"
    ]["annotations"]["taskqueue.dev/config-hash"]

    spec = document["spec"]
    spec["queues"][0]["messageVisibilityTimeout"] = 40
    spec["processors"][0]["replicas"] = 3
    # Move the whole `other` queue to the main processor: queues stay whole.
    spec["processors"][0]["tasks"].append("other:job")
    spec["processors"] = [spec["processors"][0]]
    assert kubectl_apply(document).returncode == 0
    # `others` keeps polling `other` until `main`, which takes it over, is rolled out.
    handing_over = wait_for(
        lambda: (
            (c := condition(get(control_plane, "tq", "app", namespace), "Ready"))
            and c["reason"] == "HandingOver"
            and c
        ),
        timeout=60,
    )
    assert "processor others keeps polling other until processor main" in handing_over["message"]
    assert get(control_plane, "deployment", "app-others", namespace) is not None
    roll_out(kube_client, namespace, "app-main")
    wait_for(
        lambda: ready(control_plane, namespace, generation=obj["metadata"]["generation"] + 1),
        timeout=60,
    )

    deployment = get(control_plane, "deployment", "app-main", namespace)
    assert deployment["spec"]["replicas"] == 3
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"]["taskqueue.dev/config-hash"]
        != hash_before
    )
    config = config_of(control_plane, "app-main", namespace)
    assert "other:job" in config and "messageVisibilityTimeout: 40" in config
    assert get(control_plane, "deployment", "app-others", namespace) is None
    left = control_plane.kubectl_run(
        "get", "configmaps", "-n", namespace, "-l", "taskqueue.dev/processor=others", "-o", "name"
    ).stdout.split()
    assert left == []  # no ReplicaSet of the pruned Deployment mounts them any more
    cron = get(control_plane, "cronjob", "app-other-job", namespace)
    assert mounted_config_map(cron) == mounted_config_map(deployment)
    attributes = queues.sqs.get_queue_attributes(
        QueueUrl=queues.url("work"), AttributeNames=["VisibilityTimeout"]
    )
    assert attributes["Attributes"]["VisibilityTimeout"] == "40"


def test_the_webhook_rejects_a_split_queue_with_the_message(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues
):
    document = make_manifest()
    document["spec"]["processors"] = [
        {"name": "main", "tasks": ["record:job", "other:job"]},
        {"name": "half", "tasks": ["record_async:job"]},
    ]
    result = kubectl_apply(document)
    assert result.returncode != 0
    assert 'admission webhook "taskqueue.taskqueue.dev" denied the request' in result.stderr
    assert (
        "queue 'work' is split across processors (half: record_async:job; main: record:job)"
        in result.stderr
    )
    assert get(control_plane, "tq", "app", namespace) is None
    assert queues.sqs.list_queues(QueueNamePrefix=queues.prefix).get("QueueUrls") is None


def test_a_second_resource_claiming_the_same_queue_is_rejected(
    control_plane, operator, namespace, make_manifest, kubectl_apply
):
    assert kubectl_apply(make_manifest("first")).returncode == 0
    wait_for(lambda: ready(control_plane, namespace, "first"), timeout=60)
    result = kubectl_apply(make_manifest("second"))
    assert result.returncode != 0
    assert (
        "is also declared by TaskQueue" in result.stderr and f"{namespace}/first" in result.stderr
    )


def test_out_of_band_deletions_are_repaired(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues
):
    kubectl_apply(make_manifest())
    wait_for(lambda: ready(control_plane, namespace), timeout=60)
    queues.sqs.delete_queue(QueueUrl=queues.url("other"))
    control_plane.kubectl_run("delete", "deployment", "app-main", "-n", namespace)
    # Processor ConfigMaps are immutable (one per revision): a deleted one is made again.
    config_map = mounted_config_map(get(control_plane, "deployment", "app-others", namespace))
    tampered = control_plane.kubectl_run(
        "patch",
        "configmap",
        config_map,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"data": {"processor.yaml": "tampered"}}',
        check=False,
    )
    assert tampered.returncode != 0 and "immutable" in tampered.stderr
    control_plane.kubectl_run("delete", "configmap", config_map, "-n", namespace)
    wait_for(
        lambda: get(control_plane, "deployment", "app-main", namespace) is not None, timeout=30
    )
    wait_for(
        lambda: queues.sqs.list_queues(QueueNamePrefix=queues.prefix + "other").get("QueueUrls"),
        timeout=30,
    )
    wait_for(lambda: get(control_plane, "configmap", config_map, namespace), timeout=30)
    messages = " ".join(
        e["message"] for e in events(control_plane, namespace) if e["reason"] == "Reconciled"
    )
    assert "created Deployment app-main" in messages
    assert f"created queue {queues.prefix}other" in messages


def test_deletion_retains_queues_by_default_and_deletes_them_on_request(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues
):
    kubectl_apply(make_manifest("kept"))
    wait_for(lambda: ready(control_plane, namespace, "kept"), timeout=60)
    control_plane.kubectl_run("delete", "tq", "kept", "-n", namespace, "--timeout=60s")
    urls = queues.sqs.list_queues(QueueNamePrefix=queues.prefix)["QueueUrls"]
    assert len(urls) == 3  # work, work-dlq, other: retained
    assert TAG_OWNER not in queues.sqs.list_queue_tags(QueueUrl=queues.url("work")).get("Tags", {})

    # Re-created with adoption (the retained queues carry no owner tag now), then deleted.
    kubectl_apply(make_manifest("gone", deletionPolicy="Delete", adoptExistingQueues=True))
    wait_for(lambda: ready(control_plane, namespace, "gone"), timeout=60)
    control_plane.kubectl_run("delete", "tq", "gone", "-n", namespace, "--timeout=60s")
    assert queues.sqs.list_queues(QueueNamePrefix=queues.prefix).get("QueueUrls") is None


def test_an_existing_queue_is_not_taken_over_without_adoption(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues
):
    queues.create("other")
    kubectl_apply(make_manifest())
    obj = wait_for(
        lambda: (o := get(control_plane, "tq", "app", namespace)) and condition(o, "Ready") and o,
        timeout=60,
    )
    ready_condition = condition(obj, "Ready")
    assert ready_condition["status"] == "False"
    assert ready_condition["reason"] == "QueueNotOwned"
    assert "spec.adoptExistingQueues: true" in ready_condition["message"]
    assert get(control_plane, "deployment", "app-main", namespace) is None
