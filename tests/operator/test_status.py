"""What goes wrong after a TaskQueue was accepted shows in its status, not as a traceback in
the operator's log: a queue deleted behind the operator's back, a missing credentials
Secret, an object in the way."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from harness import wait_for
from operator_harness import OperatorProcess, events, get


@pytest.fixture
def start_operator(control_plane, crd, tmp_path, namespace) -> Iterator:
    """An operator of this test's namespace alone (others' leftovers never reach its log),
    without the webhook, so the API server's schema is the only gate."""
    started: list[OperatorProcess] = []

    def start(**settings) -> OperatorProcess:
        process = OperatorProcess(
            control_plane, tmp_path, webhook_enabled="false", namespaces=namespace, **settings
        )
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def conditions_of(plane, namespace, name="app") -> dict[str, dict]:
    obj = get(plane, "tq", name, namespace) or {}
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def has(plane, namespace, kind, status, reason=None):
    def check():
        found = conditions_of(plane, namespace).get(kind)
        if found and found["status"] == status and reason in (None, found["reason"]):
            return found
        return None

    return check


def test_a_queue_deleted_behind_the_operators_back_is_degraded_until_the_drift_check_recreates_it(
    control_plane, start_operator, namespace, make_manifest, kubectl_apply, queues, prefix
):
    # The first drift check runs DRIFT s after the resource appears; the status timer sees
    # the deletion within a second or two, long before.
    operator = start_operator(drift_interval=30, status_interval=1)
    assert kubectl_apply(make_manifest()).returncode == 0
    wait_for(has(control_plane, namespace, "Ready", "True"), timeout=60)

    queues.sqs.delete_queue(QueueUrl=queues.url("other"))
    degraded = wait_for(
        has(control_plane, namespace, "Degraded", "True", "QueueMissing"), timeout=30
    )
    assert degraded["message"] == (
        f"SQS queue '{prefix}other' of queue 'other' is gone: deleted outside the operator; "
        "the next drift check re-creates it"
    )
    ready = conditions_of(control_plane, namespace)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "QueueMissing")
    status = get(control_plane, "tq", "app", namespace)["status"]
    other = next(q for q in status["queues"] if q["name"] == "other")
    assert "approximateMessages" not in other  # no stale depth for a queue that is gone

    # The drift check re-creates the queue, and the conditions clear.
    wait_for(
        lambda: (
            f"{prefix}other"
            in " ".join(queues.sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []))
        ),
        timeout=120,
    )
    wait_for(has(control_plane, namespace, "Degraded", "False", "Healthy"), timeout=60)
    wait_for(has(control_plane, namespace, "Ready", "True"), timeout=60)
    repairs = [
        e["message"] for e in events(control_plane, namespace) if e["reason"] == "Reconciled"
    ]
    assert any(f"created queue {prefix}other" in m for m in repairs)
    assert "Traceback" not in operator.output()


def test_a_missing_credentials_secret_is_a_condition_naming_it(
    control_plane, start_operator, namespace, make_manifest, kubectl_apply
):
    operator = start_operator()
    document = make_manifest()
    document["spec"]["sqs"]["credentialsSecret"] = "sqs-keys"
    assert kubectl_apply(document).returncode == 0
    ready = wait_for(
        has(control_plane, namespace, "Ready", "False", "CredentialsSecretMissing"), timeout=60
    )
    assert ready["message"] == (
        "the Secret 'sqs-keys' named by spec.sqs.credentialsSecret does not exist in namespace "
        f"{namespace}; it needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )
    assert get(control_plane, "deployment", "app-main", namespace) is None
    assert "Traceback" not in operator.output()


def test_an_object_in_the_way_is_a_condition_naming_it(
    control_plane, start_operator, namespace, make_manifest, kubectl_apply
):
    """Someone's Deployment of the same name (no controller owner reference): never applied
    over (it used to be, and failed on its immutable selector)."""
    theirs = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app-main", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "theirs"}},
            "template": {
                "metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "c", "image": "registry.example/theirs"}]},
            },
        },
    }
    control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(theirs))
    operator = start_operator()
    assert kubectl_apply(make_manifest()).returncode == 0
    ready = wait_for(has(control_plane, namespace, "Ready", "False", "NameConflict"), timeout=60)
    assert ready["message"].startswith(
        f"Deployment app-main in {namespace} already exists and is not managed by TaskQueue app"
    )
    assert conditions_of(control_plane, namespace)["Degraded"]["reason"] == "NameConflict"
    theirs_now = get(control_plane, "deployment", "app-main", namespace)
    assert theirs_now["spec"]["selector"] == {"matchLabels": {"app": "theirs"}}
    warnings = [e for e in events(control_plane, namespace) if e["reason"] == "NameConflict"]
    assert warnings and warnings[0]["type"] == "Warning"
    assert "Traceback" not in operator.output()
