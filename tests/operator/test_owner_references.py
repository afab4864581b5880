"""The operator's own RBAC suffices where OwnerReferencesPermissionEnforcement is on (OpenShift
enables it; the test control plane does too): setting `blockOwnerDeletion` on an owner
reference needs `update` on the owner's `finalizers` subresource (#14 suspicion)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from controlplane import LIMITED_USER
from kube_taskqueue_operator import permissions
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse
from kube_taskqueue_operator.workloads import WorkloadError, Workloads


def _bind(control_plane: Any, namespace: str, rules: list[dict[str, Any]]) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "operator", "namespace": namespace},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "operator", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "operator"},
        "subjects": [
            {"kind": "User", "name": LIMITED_USER, "apiGroup": "rbac.authorization.k8s.io"}
        ],
    }
    for document in (role, binding):
        control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(document))


def _rules(without: str | None = None) -> list[dict[str, Any]]:
    return [
        {"apiGroups": [p.group], "resources": list(p.resources), "verbs": list(p.verbs)}
        for p in permissions.NAMESPACED
        if without not in p.resources
    ]


@pytest.fixture
def limited_workloads(control_plane: Any) -> Workloads:
    client = kubernetes.config.new_client_from_config(str(control_plane.limited_kubeconfig))
    return Workloads(client, field_manager="kube-taskqueue-operator")


@pytest.mark.parametrize("granted", [True, False])
def test_the_operators_permissions_let_it_set_block_owner_deletion(
    control_plane, crd, namespace, make_manifest, kube_client, limited_workloads, granted
):
    _bind(control_plane, namespace, _rules() if granted else _rules("taskqueues/finalizers"))
    body = kubernetes.client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        "taskqueue.dev", "v1alpha1", namespace, "taskqueues", make_manifest()
    )
    resource = parse(body)
    objects = render(resource)
    assert all(o["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True for o in objects)
    if granted:
        changes = limited_workloads.apply(resource, objects)
        assert len(changes) == len(objects)
    else:  # the permission is what makes it work, not something else
        with pytest.raises(WorkloadError, match="cannot set blockOwnerDeletion"):
            limited_workloads.apply(resource, objects)
