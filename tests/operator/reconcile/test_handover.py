"""Moving a queue between processors never leaves it unpolled, and every Deployment revision
keeps the configuration it was made with (#14 item 10).

The processor taking a queue over is applied first; the one giving it up keeps its old
Deployment (still polling the queue) until the new one is rolled out and available. The
test cluster runs no Deployment controller: the test writes the status it would write
(operator_harness.roll_out) and, where a ReplicaSet matters, makes the one it would make."""

from __future__ import annotations

from typing import Any

import kubernetes
from kube_taskqueue_operator.resource.render import QUEUES_ANNOTATION
from operator_harness import mounted_config_map, roll_out


def _apps(api: Any) -> Any:
    return kubernetes.client.AppsV1Api(api)


def _deployment(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        live = _apps(api).read_namespaced_deployment(name, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(api.sanitize_for_serialization(live))


def _move_other_to_main(make_manifest) -> dict[str, Any]:
    spec = make_manifest()["spec"]
    spec["processors"] = [
        {"name": "main", "tasks": ["record:job", "record_async:job", "other:job"], "replicas": 2}
    ]
    return spec


def test_the_processor_giving_up_a_queue_waits_for_the_one_taking_it(
    driver, make_manifest, kube_client
):
    driver.create(make_manifest())
    driver.reconcile()
    before = _deployment(kube_client, driver.namespace, "app-others")
    assert before is not None
    assert before["metadata"]["annotations"][QUEUES_ANNOTATION] == "other"

    driver.patch_spec("app", _move_other_to_main(make_manifest))
    outcome = driver.reconcile()
    main = _deployment(kube_client, driver.namespace, "app-main")
    assert main is not None
    assert main["metadata"]["annotations"][QUEUES_ANNOTATION] == "other,work"
    after = _deployment(kube_client, driver.namespace, "app-others")
    assert after is not None  # untouched, still polling `other`
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert outcome.retry_after is not None
    ready = driver.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "HandingOver")
    assert (
        "processor others keeps polling other until processor main, which takes over, is "
        "rolled out (Deployment app-main: its controller has not seen the latest spec)"
    ) in ready["message"]
    assert driver.condition("Degraded")["status"] == "False"

    # Rolled out but not yet available: still waiting, and saying so.
    roll_out(kube_client, driver.namespace, "app-main")
    _apps(kube_client).patch_namespaced_deployment_status(
        "app-main", driver.namespace, {"status": {"availableReplicas": 1}}
    )
    driver.reconcile()
    assert "1 of 2 replicas available" in driver.condition("Ready")["message"]
    assert _deployment(kube_client, driver.namespace, "app-others") is not None

    roll_out(kube_client, driver.namespace, "app-main")
    outcome = driver.reconcile()
    assert outcome.retry_after is None
    assert _deployment(kube_client, driver.namespace, "app-others") is None
    assert driver.condition("Ready")["status"] == "True"


def test_a_stalled_rollout_keeps_the_old_processor_and_a_restart_keeps_waiting(
    driver, make_manifest, kube_client, make_reconciler
):
    driver.create(make_manifest())
    driver.reconcile()
    driver.patch_spec("app", _move_other_to_main(make_manifest))
    driver.reconcile()
    live = _apps(kube_client).read_namespaced_deployment("app-main", driver.namespace)
    _apps(kube_client).patch_namespaced_deployment_status(
        "app-main",
        driver.namespace,
        {
            "status": {
                "observedGeneration": live.metadata.generation,
                "replicas": 3,
                "updatedReplicas": 1,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "app-main-5d9" has timed out progressing.',
                    }
                ],
            }
        },
    )
    driver.reconciler = make_reconciler()  # an operator restarted in the middle
    driver.reconcile()
    message = driver.condition("Ready")["message"]
    assert "Deployment app-main: 1 of 2 replicas updated" in message
    assert "has timed out progressing" in message
    assert _deployment(kube_client, driver.namespace, "app-others") is not None


def test_queues_swapped_between_processors_are_applied_together(driver, make_manifest, kube_client):
    driver.create(make_manifest())
    driver.reconcile()
    spec = make_manifest()["spec"]
    spec["processors"] = [
        {"name": "main", "tasks": ["other:job"]},
        {"name": "others", "tasks": ["record:job", "record_async:job"]},
    ]
    driver.patch_spec("app", spec)
    outcome = driver.reconcile()  # no order is safe for both: each waits for nobody
    assert outcome.retry_after is None
    assert driver.condition("Ready")["status"] == "True"
    for name, queues in (("app-main", "other"), ("app-others", "work")):
        live = _deployment(kube_client, driver.namespace, name)
        assert live is not None
        assert live["metadata"]["annotations"][QUEUES_ANNOTATION] == queues


def _replica_set_of(api: Any, namespace: str, deployment: dict[str, Any]) -> str:
    """The ReplicaSet the Deployment controller would make for the current revision."""
    template = deployment["spec"]["template"]
    name = f"{deployment['metadata']['name']}-{deployment['metadata']['generation']}"
    _apps(api).create_namespaced_replica_set(
        namespace,
        {
            "metadata": {
                "name": name,
                "labels": template["metadata"]["labels"],
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment["metadata"]["name"],
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": deployment["spec"]["selector"],
                "template": template,
            },
        },
    )
    return name


def test_each_revision_keeps_its_own_immutable_configuration(driver, make_manifest, kube_client):
    core = kubernetes.client.CoreV1Api(kube_client)
    driver.create(make_manifest())
    driver.reconcile()
    first = _deployment(kube_client, driver.namespace, "app-main")
    assert first is not None
    old_name = mounted_config_map(first)
    old = core.read_namespaced_config_map(old_name, driver.namespace)
    assert old.immutable is True
    replica_set = _replica_set_of(kube_client, driver.namespace, first)

    spec = make_manifest()["spec"]
    spec["processors"][0]["workers"] = 7
    driver.patch_spec("app", spec)
    driver.reconcile()
    second = _deployment(kube_client, driver.namespace, "app-main")
    assert second is not None
    new_name = mounted_config_map(second)
    assert new_name != old_name
    assert (
        "workers: 7"
        in core.read_namespaced_config_map(new_name, driver.namespace).data["processor.yaml"]
    )
    # The old revision's pods (a restart, a rollback) still read what they were made with.
    kept = core.read_namespaced_config_map(old_name, driver.namespace)
    assert kept.data == old.data

    _apps(kube_client).delete_namespaced_replica_set(replica_set, driver.namespace)
    driver.reconcile()
    names = {c.metadata.name for c in core.list_namespaced_config_map(driver.namespace).items}
    assert old_name not in names and new_name in names


def test_a_chain_of_handovers_goes_one_rollout_at_a_time(driver, make_manifest, kube_client):
    # third gives `spare` to others, which gives `other` to main: third must wait for others
    # to be updated and rolled out, and others for main.
    document = make_manifest()
    document["spec"]["queues"].append({"name": "spare"})
    document["spec"]["tasks"].append({"name": "spare:job", "queue": "spare"})
    document["spec"]["processors"].append({"name": "third", "tasks": ["spare:job"]})
    driver.create(document)
    driver.reconcile()
    for name in ("app-main", "app-others", "app-third"):
        roll_out(kube_client, driver.namespace, name)
    spec = document["spec"]
    spec["processors"] = [
        {"name": "main", "tasks": ["record:job", "record_async:job", "other:job"]},
        {"name": "others", "tasks": ["spare:job"]},
    ]
    driver.patch_spec("app", spec)

    def polls(name: str) -> str | None:
        live = _deployment(kube_client, driver.namespace, name)
        return None if live is None else live["metadata"]["annotations"][QUEUES_ANNOTATION]

    driver.reconcile()
    assert (polls("app-main"), polls("app-others"), polls("app-third")) == (
        "other,work",
        "other",
        "spare",
    )
    assert (
        "Deployment app-others is not yet updated to poll spare"
        in (driver.condition("Ready")["message"])
    )
    roll_out(kube_client, driver.namespace, "app-main")
    driver.reconcile()
    assert (polls("app-others"), polls("app-third")) == ("spare", "spare")
    roll_out(kube_client, driver.namespace, "app-others")
    driver.reconcile()
    assert polls("app-third") is None
    assert driver.condition("Ready")["status"] == "True"
