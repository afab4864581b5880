"""The Kubernetes adapter: server-side apply of rendered objects, pruning of objects the
spec no longer has, status writes, processor replica counts and credential Secrets."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from typing import Any

import kubernetes
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION, TaskQueue

log = logging.getLogger(__name__)

#: Every kind the operator creates, in apply order.
MANAGED_KINDS = (
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "CronJob"),
)


class Workloads:
    def __init__(self, api_client: kubernetes.client.ApiClient, *, field_manager: str) -> None:
        self._api = api_client
        self._dynamic = DynamicClient(api_client)
        self._field_manager = field_manager

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _selector(self, resource: TaskQueue) -> str:
        return (
            f"{naming.LABEL_TASKQUEUE}={resource.metadata.name},"
            "app.kubernetes.io/managed-by=kube-taskqueue-operator"
        )

    def existing(self, resource: TaskQueue) -> dict[tuple[str, str], str]:
        """(kind, name) → resourceVersion of every object we manage for the resource."""
        found = {}
        for api_version, kind in MANAGED_KINDS:
            items = self._resource(api_version, kind).get(
                namespace=resource.namespace, label_selector=self._selector(resource)
            )
            for item in items.items:
                found[(kind, item.metadata.name)] = item.metadata.resourceVersion
        return found

    def apply(
        self,
        resource: TaskQueue,
        objects: Iterable[dict[str, Any]],
        *,
        after_first: Callable[[], None] | None = None,
    ) -> list[str]:
        """Server-side apply each object; returns what was created or changed."""
        before = self.existing(resource)
        changed = []
        for index, obj in enumerate(objects):
            if index == 1 and after_first is not None:
                after_first()
            kind, name = obj["kind"], obj["metadata"]["name"]
            applied = self._resource(obj["apiVersion"], kind).server_side_apply(
                body=obj,
                name=name,
                namespace=resource.namespace,
                field_manager=self._field_manager,
                force_conflicts=True,
            )
            previous = before.get((kind, name))
            if previous is None:
                changed.append(f"created {kind} {name}")
            elif previous != applied.metadata.resourceVersion:
                changed.append(f"updated {kind} {name}")
        return changed

    def prune(self, resource: TaskQueue, keep: Iterable[dict[str, Any]]) -> list[str]:
        """Delete our objects of processors or schedules the spec no longer has."""
        wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in keep}
        deleted = []
        for api_version, kind in MANAGED_KINDS:
            items = self._resource(api_version, kind).get(
                namespace=resource.namespace, label_selector=self._selector(resource)
            )
            for item in items.items:
                if (kind, item.metadata.name) in wanted:
                    continue
                try:
                    self._resource(api_version, kind).delete(
                        name=item.metadata.name, namespace=resource.namespace
                    )
                except NotFoundError:
                    continue
                deleted.append(f"deleted {kind} {item.metadata.name}")
        return deleted

    def processor_replicas(self, resource: TaskQueue) -> list[dict[str, Any]]:
        deployments = self._resource("apps/v1", "Deployment")
        result: list[dict[str, Any]] = []
        for processor in resource.spec.processors:
            name = naming.workload_name(resource, processor.name)
            try:
                item = deployments.get(name=name, namespace=resource.namespace)
            except NotFoundError:
                result.append({"name": processor.name})
                continue
            status = item.status or {}
            result.append(
                {
                    "name": processor.name,
                    "desiredReplicas": item.spec.replicas,
                    "readyReplicas": int(status.get("readyReplicas") or 0),
                }
            )
        return result

    def patch_status(self, *, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (never the spec)."""
        kubernetes.client.CustomObjectsApi(self._api).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = kubernetes.client.CoreV1Api(self._api).read_namespaced_secret(name, namespace)
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
