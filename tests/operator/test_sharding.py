"""Past one operator (issue #21): shards by label selector each reconcile only their own
TaskQueues, while the queue-claim check still sees every TaskQueue, across shards."""

from __future__ import annotations

import json
import time
from typing import Any

from harness import wait_for
from kube_taskqueue_operator.settings import OperatorSettings, from_environment
from operator_harness import condition, get

SHARD = "taskqueue.dev/shard"


def labelled(document: dict[str, Any], shard: str, prefix: str) -> dict[str, Any]:
    document["metadata"]["labels"] = {SHARD: shard}
    document["spec"]["sqs"]["queuePrefix"] = prefix
    return document


def generation_seen(plane, namespace: str, name: str) -> int | None:
    obj = get(plane, "tq", name, namespace)
    if obj is None or condition(obj, "Ready") is None:
        return None
    return int(obj["status"].get("observedGeneration") or 0)


def test_each_shard_reconciles_its_own_and_clashes_are_seen_across_shards(
    control_plane, start_operator, namespace, make_manifest, prefix
):
    create = lambda document: control_plane.kubectl_run(  # noqa: E731
        "create", "-f", "-", input=json.dumps(document), check=False
    )
    # Shard b runs first, alone and without a webhook (a bypassed admission).
    shard_b = start_operator(shard_selector=f"{SHARD}=b", webhook_enabled="false")
    a1 = labelled(make_manifest("a1"), "a", f"{prefix}a-")
    assert create(a1).returncode == 0
    b1 = labelled(make_manifest("b1"), "b", f"{prefix}b-")
    assert create(b1).returncode == 0
    time.sleep(1.1)  # creationTimestamp counts whole seconds: a1 is the senior claimant
    clash = labelled(make_manifest("b2"), "b", f"{prefix}a-")  # a1's queues
    assert create(clash).returncode == 0

    assert wait_for(lambda: generation_seen(control_plane, namespace, "b1"), timeout=60) == 1
    invalid = wait_for(
        lambda: condition(get(control_plane, "tq", "b2", namespace), "Invalid"), timeout=60
    )
    assert invalid["status"] == "True"
    assert f"TaskQueue {namespace}/a1" in invalid["message"]  # seen though shard a owns it
    assert generation_seen(control_plane, namespace, "a1") is None  # not shard b's

    shard_a = start_operator(shard_selector=f"{SHARD}=a")  # with the webhook
    assert wait_for(lambda: generation_seen(control_plane, namespace, "a1"), timeout=60) == 1
    # Admission covers every shard: shard a's webhook refuses a clash labelled for shard b.
    refused = create(labelled(make_manifest("b3"), "b", f"{prefix}a-"))
    assert refused.returncode != 0 and f"TaskQueue {namespace}/a1" in refused.stderr

    # With shard b gone, an edit of its TaskQueue waits; shard a's are still reconciled.
    shard_b.stop()
    for name in ("a1", "b1"):
        control_plane.kubectl_run(
            "patch", "tq", name, "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/queues/1/pollInterval", "value": 3}]',
        )  # fmt: skip
    assert wait_for(lambda: generation_seen(control_plane, namespace, "a1") == 2, timeout=60)
    assert generation_seen(control_plane, namespace, "b1") == 1
    assert shard_a.process.poll() is None


def test_shard_settings_are_equality_selectors_and_namespace_shards_see_every_claim():
    settings = from_environment({"TASKQUEUE_SHARD_SELECTOR": "taskqueue.dev/shard=a, team=x"})
    assert settings.shard_labels == {"taskqueue.dev/shard": "a", "team": "x"}
    assert OperatorSettings(namespaces=["a", "b"]).claim_scopes == ["a", "b"]
    assert OperatorSettings(namespaces=["a"], claims_cluster_wide=True).claim_scopes == []
    try:
        from_environment({"TASKQUEUE_SHARD_SELECTOR": "shard in (a,b)"})
    except ValueError as error:
        assert "is not key=value" in str(error)
    else:
        raise AssertionError("a set-based selector was accepted")
