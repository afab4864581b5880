"""The running operator lets a Retain TaskQueue go when its credentials Secret is gone (as in
a namespace deletion, which removes Secrets first): it used to stay Terminating forever."""

from __future__ import annotations

from harness import wait_for
from operator_harness import condition, create_credentials_secret, events, get


def test_a_retain_taskqueue_without_its_secret_is_deleted(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues
):
    create_credentials_secret(control_plane, namespace, key_id="a", secret="b")
    document = make_manifest()
    document["spec"]["sqs"]["credentialsSecret"] = "sqs"
    assert kubectl_apply(document).returncode == 0
    wait_for(
        lambda: (
            (condition(get(control_plane, "tq", "app", namespace), "Ready") or {}).get("status")
            == "True"
        ),
        timeout=60,
    )
    control_plane.kubectl_run("delete", "secret", "sqs", "-n", namespace)
    control_plane.kubectl_run("delete", "tq", "app", "-n", namespace, "--wait=false")
    wait_for(lambda: get(control_plane, "tq", "app", namespace) is None, timeout=30)
    reasons = {e["reason"] for e in events(control_plane, namespace)}
    assert "QueuesNotReleased" in reasons
    assert {"other", "work", "work-dlq"} <= set(queues.names())  # Retain: kept
    assert "Traceback" not in operator.output()
