"""A queue removed from the spec does not leak tagged as owned (#14 item 8): once every
processor Deployment of the new spec is rolled out (nothing polls it any more) it is released
(Retain: untagged, kept) or deleted (Delete).

The test cluster runs no Deployment controller, so the test writes the Deployment status
that controller would write (operator_harness.roll_out)."""

from __future__ import annotations

from typing import Any

import pytest
from kube_taskqueue_operator.resource.naming import TAG_OWNER
from operator_harness import roll_out


def _without_other(make_manifest) -> dict[str, Any]:
    spec = make_manifest()["spec"]
    spec["queues"] = [q for q in spec["queues"] if q["name"] != "other"]
    spec["tasks"] = [t for t in spec["tasks"] if t["queue"] != "other"]
    spec["processors"] = [p for p in spec["processors"] if p["name"] == "main"]
    return spec


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_a_removed_queue_is_retired_once_processors_are_rolled_out(
    driver, make_manifest, kube_client, queues, policy
):
    driver.create(make_manifest(deletionPolicy=policy))
    driver.reconcile()
    other = queues.url("other")
    spec = _without_other(make_manifest)
    spec["deletionPolicy"] = policy
    driver.patch_spec("app", spec)

    driver.reconcile()  # app-main is not rolled out yet: its old pods may still poll
    assert "other" in queues.names()
    assert TAG_OWNER in queues.sqs.list_queue_tags(QueueUrl=other).get("Tags", {})
    status = driver.get()["status"]
    assert [e["url"] for e in status["leavingQueues"]] == [other]
    assert "left the spec" in driver.condition("Ready")["message"]

    roll_out(kube_client, driver.namespace, "app-main")
    driver.reconcile()
    if policy == "Delete":
        assert "other" not in queues.names()
    else:
        assert "other" in queues.names()
        assert TAG_OWNER not in queues.sqs.list_queue_tags(QueueUrl=other).get("Tags", {})
    assert driver.get()["status"]["leavingQueues"] == []
    assert {"work", "work-dlq"} <= set(queues.names())
    assert driver.condition("Ready")["status"] == "True"
