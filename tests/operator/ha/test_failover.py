"""Two replicas with kopf peering, as values-prod runs them: one reconciles, the other stands
by and still admits correctly; when the active one is killed, the standby takes over within
the peering lifetime."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import wait_for
from operator_harness import OperatorProcess, condition, get

CHART = Path(__file__).parents[3] / "charts" / "kube-taskqueue-operator"
LIFETIME = 10  # seconds: the bound on failover after a kill


@pytest.fixture
def peering_crds(control_plane) -> None:
    """kopf's peering CRDs, as the chart ships them."""
    rendered = subprocess_helm(control_plane)
    for document in rendered:
        control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(document))
    for document in rendered:
        control_plane.kubectl_run(
            "wait", "--for=condition=Established", "--timeout=30s",
            f"crd/{document['metadata']['name']}",
        )  # fmt: skip


def subprocess_helm(plane) -> list[dict[str, Any]]:
    import subprocess

    result = subprocess.run(
        [
            str(plane.helm), "template", "t", str(CHART), "-n", "ops",
            "--set", "image.repository=example.test/operator",
            "--set", "peering.enabled=true", "--show-only", "templates/peering.yaml",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _review(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "taskqueue.dev", "version": "v1alpha1", "kind": "TaskQueue"},
            "resource": {"group": "taskqueue.dev", "version": "v1alpha1", "resource": "taskqueues"},
            "requestKind": {"group": "taskqueue.dev", "version": "v1alpha1", "kind": "TaskQueue"},
            "requestResource": {
                "group": "taskqueue.dev", "version": "v1alpha1", "resource": "taskqueues",
            },
            "name": document["metadata"]["name"],
            "namespace": document["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": document,
            "oldObject": None,
            "dryRun": False,
            "options": None,
        },
    }  # fmt: skip


def _admit(process: OperatorProcess, document: dict[str, Any]) -> dict[str, Any]:
    """Ask this replica's webhook directly (the registration points at one replica only)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        f"https://127.0.0.1:{process.webhook_port}/taskqueue",
        data=json.dumps(_review(document)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return dict(json.load(response)["response"])


def _reconciled_by(process: OperatorProcess, namespace: str, name: str) -> bool:
    for line in process.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        target = entry.get("object") or {}
        if entry.get("message") == "Handler 'reconcile' succeeded." and (
            target.get("namespace"),
            target.get("name"),
        ) == (namespace, name):
            return True
    return False


def _priority(process: OperatorProcess) -> int:
    for line in process.output().splitlines():
        if "starting the TaskQueue operator" in line:
            return int(json.loads(line)["priority"])
    raise AssertionError("no start-up line")


def get_cluster(plane, kind: str, name: str) -> dict[str, Any] | None:
    result = plane.kubectl_run("get", kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _valid(plane, namespace: str, name: str) -> bool:
    found = condition(get(plane, "tq", name, namespace), "Invalid")
    return found is not None and found["status"] == "False"


def test_one_replica_reconciles_both_admit_and_the_standby_takes_over(
    control_plane, crd, peering_crds, tmp_path, namespace, make_manifest, prefix
):
    peering = f"ha-{uuid.uuid4().hex[:8]}"
    settings = {"peering": peering, "peering_lifetime": LIFETIME}
    replicas: list[OperatorProcess] = []
    try:
        for _ in range(2):  # one after the other: each registers the webhook at its own URL
            replicas.append(OperatorProcess(control_plane, tmp_path, **settings))
            replicas[-1].wait_ready()

        # The operator created the peering object; both replicas keep their records alive
        # there, each with its own priority. The highest reconciles; the other stands by.
        def peers() -> dict[str, Any]:
            found = get_cluster(control_plane, "clusterkopfpeering", peering) or {}
            return dict(found.get("status") or {})

        wait_for(lambda: len(peers()) == 2, timeout=30)
        priorities = [_priority(r) for r in replicas]
        assert len(set(priorities)) == 2, priorities
        assert sorted(p["priority"] for p in peers().values()) == sorted(priorities)
        active, standby = sorted(replicas, key=_priority, reverse=True)
        assert "Possibly conflicting" not in active.output() + standby.output()

        first = make_manifest("first")
        control_plane.kubectl_run("create", "-f", "-", input=json.dumps(first))
        wait_for(lambda: _valid(control_plane, namespace, "first"), timeout=60)
        assert _reconciled_by(active, namespace, "first")
        assert not _reconciled_by(standby, namespace, "first")

        # Both webhooks answer from a complete index: a clash is refused by each, an
        # unrelated resource admitted by each.
        clash = make_manifest("clash")
        unrelated = make_manifest("unrelated")
        unrelated["spec"]["sqs"]["queuePrefix"] = f"{prefix}u-"
        for replica in replicas:
            refused = _admit(replica, clash)
            assert not refused["allowed"]
            assert f"{namespace}/first" in refused["status"]["message"]
            assert _admit(replica, unrelated)["allowed"]

        # Kill the active replica (no goodbye); the webhook registration points at a
        # replica that may be gone, so take it away for the rest of the test.
        active.kill()
        killed_at = time.monotonic()
        control_plane.kubectl_run(
            "delete", "validatingwebhookconfiguration", "taskqueue.dev", "--ignore-not-found"
        )
        second = make_manifest("second")
        second["spec"]["sqs"]["queuePrefix"] = f"{prefix}s-"
        control_plane.kubectl_run("create", "-f", "-", input=json.dumps(second))
        wait_for(lambda: _valid(control_plane, namespace, "second"), timeout=LIFETIME + 30)
        failover = time.monotonic() - killed_at
        assert _reconciled_by(standby, namespace, "second")
        print(f"failover after kill: {failover:.1f} s (peering lifetime {LIFETIME} s)")
        assert failover < LIFETIME + 15
    finally:
        for replica in replicas:
            replica.stop()
        control_plane.kubectl_run(
            "delete", "clusterkopfpeering", peering, "--ignore-not-found", check=False
        )


def test_ha_defaults_are_pinned():
    from kube_taskqueue_operator.settings import OperatorSettings

    settings = OperatorSettings()
    # No fixed priority (each replica draws its own: a tie pauses all), a 15 s lifetime
    # (failover bound), one Warning per problem per 10 minutes.
    assert (settings.priority, settings.peering_lifetime) == (None, 15)
    assert settings.warning_repeat_interval == 600
    assert settings.claims_initial_delay == 0
