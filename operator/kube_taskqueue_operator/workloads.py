"""The Kubernetes adapter: server-side apply of rendered objects, pruning of objects the
spec no longer has, status writes, processor replica counts and credential Secrets."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
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


class WorkloadError(Exception):
    """The API server refused what the operator did; the message names the object."""

    def __init__(self, message: str, *, reason: str, temporary: bool, delay: float = 30) -> None:
        super().__init__(message)
        self.reason = reason
        self.temporary = temporary
        self.delay = delay


def _refusal(error: kubernetes.client.ApiException) -> str:
    """The API server's own message (its Status body), else the HTTP reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return (
        f"{error.status} {error.reason}: {message}" if message else f"{error.status} {error.reason}"
    )


def _temporary(status: int | None) -> bool:
    # Conflicts, throttling and server errors pass; a refused object stays refused until
    # the spec changes (the drift timer still retries it).
    return status is None or status in (409, 429) or status >= 500


@contextlib.contextmanager
def _refused(what: str) -> Iterator[None]:
    """API errors but 404 as a WorkloadError naming `what`: a condition, not a traceback."""
    try:
        yield
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise  # the callers know what a missing object means
        raise WorkloadError(
            f"the API server refused {what}: {_refusal(error)}",
            reason="ApplyFailed",
            temporary=_temporary(error.status),
        ) from None


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
            for item in self._list(resource, api_version, kind):
                found[(kind, item.metadata.name)] = item.metadata.resourceVersion
        return found

    def _list(self, resource: TaskQueue, api_version: str, kind: str) -> list[Any]:
        with _refused(f"listing {kind}s in {resource.namespace}"):
            items = self._resource(api_version, kind).get(
                namespace=resource.namespace, label_selector=self._selector(resource)
            )
        return list(items.items)

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
            with _refused(f"{kind} {name}"):
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
            for item in self._list(resource, api_version, kind):
                if (kind, item.metadata.name) in wanted:
                    continue
                try:
                    with _refused(f"deleting {kind} {item.metadata.name}"):
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
                with _refused(f"reading Deployment {name}"):
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
        """Merge-patch the status subresource (never the spec); a TaskQueue deleted
        meanwhile is left alone."""
        try:
            with _refused(f"the status of TaskQueue {namespace}/{name}"):
                kubernetes.client.CustomObjectsApi(self._api).patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, {"status": status}
                )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The credentials Secret's data; WorkloadError when it cannot be read."""
        try:
            secret = kubernetes.client.CoreV1Api(self._api).read_namespaced_secret(name, namespace)
        except kubernetes.client.ApiException as error:
            missing = error.status == 404
            raise WorkloadError(
                f"the Secret {name!r} named by spec.sqs.credentialsSecret "
                + ("does not exist" if missing else f"cannot be read: {_refusal(error)}")
                + f" in namespace {namespace}; it needs AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY",
                reason="CredentialsSecretMissing" if missing else "CredentialsSecretUnreadable",
                temporary=True,
            ) from None
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
