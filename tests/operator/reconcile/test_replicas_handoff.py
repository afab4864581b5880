"""Switching a processor from fixed replicas to autoscaling keeps the live count (#14 item
9): server-side apply would drop replicas its only manager stops sending (5 → 1)."""

from __future__ import annotations

from typing import Any

import kubernetes


def _replicas(api: Any, namespace: str) -> int:
    deployment = kubernetes.client.AppsV1Api(api).read_namespaced_deployment("app-main", namespace)
    return int(deployment.spec.replicas)


def test_fixed_to_autoscaling_keeps_the_live_replicas(driver, make_manifest, kube_client):
    document = make_manifest()
    document["spec"]["processors"][0]["replicas"] = 5
    driver.create(document)
    driver.reconcile()
    assert _replicas(kube_client, driver.namespace) == 5
    spec = make_manifest()["spec"]
    spec["processors"][0] = {
        "name": "main",
        "tasks": ["record:job", "record_async:job"],
        "autoscaling": {"minReplicas": 2, "maxReplicas": 10},
    }
    driver.patch_spec("app", spec)
    driver.reconcile()
    assert driver.condition("Ready")["status"] == "True"
    assert _replicas(kube_client, driver.namespace) == 5
    driver.reconcile()  # and the next reconcile leaves them to the autoscaler
    assert _replicas(kube_client, driver.namespace) == 5
