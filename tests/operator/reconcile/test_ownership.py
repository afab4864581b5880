"""Objects are applied over and pruned only when this TaskQueue is their controller (#14:
items 5 and 13): names that collide across TaskQueues, and a user's object wearing our
labels."""

from __future__ import annotations

from typing import Any

import kubernetes
from kube_taskqueue_operator.resource.naming import LABEL_TASKQUEUE


def _config_map(api: Any, namespace: str, name: str) -> Any:
    return kubernetes.client.CoreV1Api(api).read_namespaced_config_map(name, namespace)


def test_a_users_config_map_with_our_labels_is_not_pruned(driver, make_manifest, kube_client):
    driver.create(make_manifest())
    driver.reconcile()
    kubernetes.client.CoreV1Api(kube_client).create_namespaced_config_map(
        driver.namespace,
        {
            "metadata": {
                "name": "users-own",
                "labels": {
                    LABEL_TASKQUEUE: "app",
                    "app.kubernetes.io/managed-by": "kube-taskqueue-operator",
                },
            },
            "data": {"keep": "me"},
        },
    )
    driver.reconcile()
    assert _config_map(kube_client, driver.namespace, "users-own").data == {"keep": "me"}
    assert driver.condition("Ready")["status"] == "True"


def test_a_name_another_taskqueue_controls_is_a_condition_not_a_takeover(
    driver, make_manifest, kube_client
):
    # `a` + processor `b-c` and `a-b` + processor `c` both name their objects `a-b-c`.
    first = make_manifest("a")
    first["spec"]["processors"] = [
        {"name": "b-c", "tasks": ["record:job", "record_async:job", "other:job"]}
    ]
    second = make_manifest("a-b")
    second["spec"]["sqs"]["queuePrefix"] += "second-"
    second["spec"]["processors"] = [
        {"name": "c", "tasks": ["record:job", "record_async:job", "other:job"]}
    ]
    owner = driver.create(first)["metadata"]["uid"]
    driver.create(second)
    apps = kubernetes.client.AppsV1Api(kube_client)
    for _ in range(2):  # the drift timer would run both again and again
        assert driver.reconcile("a").retry_after is None
        driver.reconcile("a-b")
        deployment = apps.read_namespaced_deployment("a-b-c", driver.namespace)
        assert [r.uid for r in deployment.metadata.owner_references] == [owner]
    assert driver.condition("Ready", "a")["status"] == "True"
    ready = driver.condition("Ready", "a-b")
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert "Deployment a-b-c " in ready["message"]
    assert "controlled by TaskQueue a " in ready["message"]
    assert ready["observedGeneration"] == driver.get("a-b")["metadata"]["generation"]
    assert ("Warning", "NameConflict") in [(k, r) for k, r, _ in driver.events]


def test_cronjob_names_collide_the_same_way_and_are_not_taken_over(
    driver, make_manifest, kube_client
):
    # `x` + task `y:z` and `x-y` + task `z` both name their CronJob `x-y-z`.
    def scheduled(name: str, task: str) -> dict[str, Any]:
        document = make_manifest(name)
        document["spec"]["sqs"]["queuePrefix"] += f"{name}-"
        for entry in document["spec"]["tasks"]:
            if entry["name"] == "other:job":
                entry["name"] = task
        document["spec"]["processors"][1]["tasks"] = [task]
        return document

    owner = driver.create(scheduled("x", "y:z"))["metadata"]["uid"]
    driver.create(scheduled("x-y", "z"))
    driver.reconcile("x")
    driver.reconcile("x-y")
    driver.reconcile("x")
    batch = kubernetes.client.BatchV1Api(kube_client)
    cronjob = batch.read_namespaced_cron_job("x-y-z", driver.namespace)
    assert [r.uid for r in cronjob.metadata.owner_references] == [owner]
    assert driver.condition("Ready", "x")["status"] == "True"
    ready = driver.condition("Ready", "x-y")
    assert (ready["reason"], ready["status"]) == ("NameConflict", "False")
    assert "CronJob x-y-z" in ready["message"]
