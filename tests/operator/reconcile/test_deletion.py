"""Deletion never gets stuck (#14 item 7): Retain needs no SQS call to succeed, Delete gives
up after a bounded number of attempts or at once with taskqueue.dev/abandon-queues, and a
queue tagged for another owner uid is never deleted."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kube_taskqueue_operator.queues import QueueError
from kube_taskqueue_operator.resource.naming import TAG_OWNER, TAG_OWNER_UID
from operator_harness import create_credentials_secret
from proxy import OutageProxy

#: The documented annotation (docs/concepts/queues-and-processors.md, "What the operator does").
ABANDON_QUEUES_ANNOTATION = "taskqueue.dev/abandon-queues"


def test_retain_lets_go_when_the_credentials_secret_is_gone(
    driver, make_manifest, control_plane, kube_client, queues
):
    create_credentials_secret(control_plane, driver.namespace, key_id="a", secret="b")
    document = make_manifest()
    document["spec"]["sqs"]["credentialsSecret"] = "sqs"
    driver.create(document)
    driver.reconcile()
    assert driver.condition("Ready")["status"] == "True"
    # A namespace deletion removes Secrets before the TaskQueue's finalizer runs.
    kubernetes.client.CoreV1Api(kube_client).delete_namespaced_secret("sqs", driver.namespace)
    driver.reconciler.finalize(driver.get(), emit=driver.emit)  # no exception: finalized
    kind, reason, message = driver.events[-1]
    assert (kind, reason) == ("Warning", "QueuesNotReleased")
    assert "'sqs'" in message and queues.prefix + "work" in message
    assert sorted(queues.names()) == ["other", "work", "work-dlq"]  # kept


@pytest.fixture
def proxy(moto_port: int) -> Any:
    outage = OutageProxy(moto_port)
    yield outage
    outage.close()


def _behind_proxy(driver, make_manifest, proxy, **metadata: Any) -> dict[str, Any]:
    document = make_manifest(deletionPolicy="Delete")
    document["spec"]["sqs"]["endpoint"] = proxy.endpoint
    document["metadata"].update(metadata)
    driver.create(document)
    driver.reconcile()
    assert driver.condition("Ready")["status"] == "True"
    proxy.down()
    return driver.get()


def test_delete_gives_up_after_bounded_attempts_and_names_what_is_left(
    driver, make_manifest, make_reconciler, proxy, queues
):
    body = _behind_proxy(driver, make_manifest, proxy)
    reconciler = make_reconciler(delete_attempts=3)
    for attempt in (1, 2):
        with pytest.raises(QueueError):
            reconciler.finalize(driver.get(), emit=driver.emit)
        degraded = driver.condition("Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "SQSUnavailable")
        assert f"attempt {attempt} of 3" in degraded["message"]
        assert ABANDON_QUEUES_ANNOTATION in degraded["message"]
    reconciler.finalize(body, emit=driver.emit)
    kind, reason, message = driver.events[-1]
    assert (kind, reason) == ("Warning", "QueuesLeftBehind")
    assert f"{queues.prefix}work-dlq" in message


def test_the_abandon_annotation_lets_go_at_once(
    driver, make_manifest, make_reconciler, proxy, queues
):
    body = _behind_proxy(
        driver, make_manifest, proxy, annotations={ABANDON_QUEUES_ANNOTATION: "true"}
    )
    driver.reconciler.finalize(body, emit=driver.emit)
    kind, reason, message = driver.events[-1]
    assert (kind, reason) == ("Warning", "QueuesAbandoned")
    assert f"{queues.prefix}work" in message


def test_delete_spares_a_queue_tagged_for_another_owner_uid(driver, make_manifest, queues):
    driver.create(make_manifest(deletionPolicy="Delete"))
    driver.reconcile()
    work = queues.url("work")
    assert queues.sqs.list_queue_tags(QueueUrl=work)["Tags"][TAG_OWNER].endswith("/app")
    # Same namespace/name, another object: a TaskQueue deleted and created again.
    queues.sqs.tag_queue(QueueUrl=work, Tags={TAG_OWNER_UID: "another-uid"})
    driver.reconciler.finalize(driver.get(), emit=driver.emit)
    assert "work" in queues.names()
    assert "other" not in queues.names()
