"""`dlq -n NAMESPACE TASKQUEUE QUEUE`: the queues come from the TaskQueue's status in the
cluster (the test control plane), read with the user's kubeconfig."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION


def test_a_taskqueue_names_its_queues(
    control_plane, crd, kube_client, namespace, make_manifest, queues, cli
):
    def dlq(*args: str) -> Any:
        return cli("dlq", *args, env={"KUBECONFIG": str(control_plane.kubeconfig)}, timeout=120)

    work = queues.create("work", max_receive_count=3)
    queues.sqs.send_message(
        QueueUrl=queues.url("work-dlq"),
        MessageBody="{}",
        MessageAttributes={"JobName": {"DataType": "String", "StringValue": "record:job"}},
    )
    custom = kubernetes.client.CustomObjectsApi(kube_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, make_manifest())
    missing = dlq("stats", "-n", namespace, "app")
    assert missing.returncode == 2 and "reports no queues yet" in missing.stderr
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "app",
        {"status": {"queues": [{"name": "work", "url": work, "deadLetterUrl": "x"}]}},
    )
    result = dlq("stats", "-n", namespace, "app", "work", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["deadLettersByTask"] == {"record:job": 1}
    absent = dlq("stats", "-n", namespace, "nope")
    assert absent.returncode == 2
    assert f"TaskQueue {namespace}/nope does not exist" in absent.stderr
