"""Queue-driven autoscaling through the operator (issue #18), on the real API server with
KEDA's CRDs: the ScaledObject and TriggerAuthentication it applies, a replica count it never
owns (what GitOps tools and KEDA rely on), and the switch back to CPU autoscaling."""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import wait_for
from operator_harness import condition, get

OPERATOR_MANAGER = "kube-taskqueue-operator"


@pytest.fixture(autouse=True)
def _keda(keda_crds: None) -> None:
    """KEDA's CRDs before the module's operator starts."""


def ready(plane, namespace: str, generation: int) -> Any:
    obj = get(plane, "tq", "app", namespace)
    found = condition(obj, "Ready")
    if found and found["status"] == "True" and obj["status"]["observedGeneration"] >= generation:
        return obj
    return None


def owned_by_operator(deployment: dict[str, Any]) -> list[str]:
    """The spec fields the operator's field manager owns (server-side apply's managedFields)."""
    fields: list[str] = []
    for entry in deployment["metadata"].get("managedFields", []):
        if entry["manager"] == OPERATOR_MANAGER:
            fields += list((entry.get("fieldsV1") or {}).get("f:spec", {}))
    return fields


def test_queue_driven_processors_scale_with_keda_and_the_operator_never_owns_replicas(
    control_plane, operator, namespace, make_manifest, kubectl_apply
):
    document = make_manifest()
    main = document["spec"]["processors"][0]
    del main["replicas"]
    main["autoscaling"] = {"minReplicas": 0, "maxReplicas": 4, "queueLength": 5}
    assert kubectl_apply(document).returncode == 0
    obj = wait_for(lambda: ready(control_plane, namespace, 1), timeout=60)

    scaled = get(control_plane, "scaledobject", "app-main", namespace)
    assert scaled is not None
    (trigger,) = scaled["spec"]["triggers"]
    work_url = next(q["url"] for q in obj["status"]["queues"] if q["name"] == "work")
    assert trigger["metadata"]["queueURL"] == work_url  # the real URL, not the name
    assert trigger["authenticationRef"] == {"name": "app-sqs"}
    auth = get(control_plane, "triggerauthentication", "app-sqs", namespace)
    assert auth is not None and auth["spec"]["podIdentity"]["provider"] == "aws"
    assert get(control_plane, "hpa", "app-main", namespace) is None

    deployment = get(control_plane, "deployment", "app-main", namespace)
    assert deployment is not None
    assert "f:replicas" not in owned_by_operator(deployment)
    # KEDA (here: kubectl) sets the count; drift checks (every 3 s) leave it alone.
    control_plane.kubectl_run("scale", "deployment", "app-main", "-n", namespace, "--replicas=3")
    time.sleep(8)
    deployment = get(control_plane, "deployment", "app-main", namespace)
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    assert "f:replicas" not in owned_by_operator(deployment)

    # Back to CPU autoscaling: KEDA's objects go, an HPA comes.
    main["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4}
    assert kubectl_apply(document).returncode == 0
    wait_for(lambda: ready(control_plane, namespace, 2), timeout=60)
    wait_for(lambda: get(control_plane, "scaledobject", "app-main", namespace) is None, timeout=30)
    assert get(control_plane, "triggerauthentication", "app-sqs", namespace) is None
    assert get(control_plane, "hpa", "app-main", namespace) is not None
