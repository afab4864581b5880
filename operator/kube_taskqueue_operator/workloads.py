"""The Kubernetes adapter: server-side apply of rendered objects, pruning of objects the
spec no longer has, status writes, processor replica counts and credential Secrets.

Ownership is decided by the controller owner reference, never by labels: an object is applied
over or pruned only when its controller is this TaskQueue (its uid), so another TaskQueue's
object of the same name, or a user's object carrying our labels, is left alone and reported.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import kubernetes
import urllib3.exceptions
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION, TaskQueue
from kube_taskqueue_operator.resource.render import polled_queues

log = logging.getLogger(__name__)

#: KEDA's kinds: served only where KEDA is installed (queue-driven autoscaling).
KEDA_KINDS = (("keda.sh/v1alpha1", "TriggerAuthentication"), ("keda.sh/v1alpha1", "ScaledObject"))

#: Every kind the operator creates, in apply order.
MANAGED_KINDS = (
    ("v1", "ConfigMap"),
    KEDA_KINDS[0],
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    KEDA_KINDS[1],
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


#: The field manager that holds a Deployment's replicas while an HPA takes them over.
HANDOFF_FIELD_MANAGER = "kube-taskqueue-operator-handoff"


@contextlib.contextmanager
def _refused(what: str, *, reason: str = "ApplyFailed") -> Iterator[None]:
    """API errors but 404 as a WorkloadError naming `what`: a condition, not a traceback.
    An API server that does not answer, or an API (kind) it does not serve, is one too."""
    try:
        yield
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise  # the callers know what a missing object means
        if error.status == 403:
            # Least privilege: the chart grants the workload verbs only in tenant namespaces.
            # Retried, so the TaskQueue recovers once the namespace is bound.
            raise WorkloadError(
                f"the operator may not write {what}: its namespace is not one of the "
                "operator's tenant namespaces (the chart's tenancy.namespaces or a "
                "TaskQueuePolicy's spec.namespaces, or a RoleBinding to its tenant role); "
                f"{_refusal(error)}",
                reason="NamespaceNotPermitted",
                temporary=True,
                delay=60,
            ) from None
        raise WorkloadError(
            f"the API server refused {what}: {_refusal(error)}",
            reason=reason,
            temporary=_temporary(error.status),
        ) from None
    except ResourceNotFoundError as error:
        raise WorkloadError(
            f"the API server does not serve the kind of {what}: {error}",
            reason=reason,
            temporary=True,
            delay=60,
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise WorkloadError(
            f"the API server did not answer for {what}: {error}",
            reason="KubernetesUnavailable",
            temporary=True,
            delay=10,
        ) from None


def holds(live: Any, rendered: Any) -> bool:
    """Whether the live object already has every field of the rendered one, with its value
    (the server adds defaults and status, so extra live fields are fine). A value the server
    spells otherwise counts as a difference: the object is then applied, as always."""
    if isinstance(rendered, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and holds(live[key], value) for key, value in rendered.items()
        )
    if isinstance(rendered, list):
        return (
            isinstance(live, list)
            and len(live) == len(rendered)
            and all(holds(a, b) for a, b in zip(live, rendered, strict=True))
        )
    return bool(live == rendered)


def controller_uid(obj: Any) -> str | None:
    """The uid of an object's controller owner reference (None without one)."""
    metadata = obj.get("metadata") or {}
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("uid"))
    return None


def _in_the_way(kind: str, live: Mapping[str, Any], resource: TaskQueue) -> str:
    """Why an object of our name is not ours to apply over."""
    name = f"{kind} {live.get('metadata', {}).get('name')} in {resource.namespace}"
    for reference in live.get("metadata", {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return (
                f"{name} already exists, controlled by {reference.get('kind')} "
                f"{reference.get('name')} (uid {reference.get('uid')}), not by TaskQueue "
                f"{resource.metadata.name}; rename the processor or task, or remove that object"
            )
    return (
        f"{name} already exists and is not managed by TaskQueue {resource.metadata.name} (it "
        "has no controller owner reference); remove it, or rename the processor or task"
    )


#: Where the pod template's spec is in each kind that mounts a processor configuration.
_TEMPLATE_PATHS = (
    ("apps/v1", "Deployment", ("spec", "template", "spec")),
    ("apps/v1", "ReplicaSet", ("spec", "template", "spec")),
    ("batch/v1", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
    ("batch/v1", "Job", ("spec", "template", "spec")),
)


def _rollout_pending(live: Mapping[str, Any], *, available: bool) -> str | None:
    """Why a live Deployment is not rolled out: the Deployment controller has not seen its
    generation, not every replica runs the current revision, old replicas still run, or
    (`available`) not every replica is available. None when rolled out."""
    name = live.get("metadata", {}).get("name")
    status = live.get("status") or {}
    wanted = int(live.get("spec", {}).get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    ready = int(status.get("availableReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    stalled = [
        c.get("message")
        for c in status.get("conditions") or []
        if c.get("reason") == "ProgressDeadlineExceeded"
    ]
    if observed < int(live.get("metadata", {}).get("generation") or 0):
        reason = "its controller has not seen the latest spec"
    elif updated < wanted:
        reason = f"{updated} of {wanted} replicas updated"
    elif replicas > updated:
        reason = f"{replicas - updated} old replicas still running"
    elif available and ready < wanted:
        reason = f"{ready} of {wanted} replicas available"
    else:
        return None
    return f"Deployment {name}: {reason}" + (f" ({stalled[0]})" if stalled else "")


def _manages_replicas(live: Mapping[str, Any], field_manager: str) -> bool:
    """Whether `field_manager` alone sets the live Deployment's spec.replicas."""
    owners = [
        entry.get("manager")
        for entry in live.get("metadata", {}).get("managedFields") or []
        if "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
    ]
    return owners == [field_manager]


class Workloads:
    #: Seconds an answer to "is KEDA installed?" is kept: KEDA installed later is seen then.
    SERVED_TTL = 60.0

    def __init__(self, api_client: kubernetes.client.ApiClient, *, field_manager: str) -> None:
        self._api = api_client
        self._dynamic = DynamicClient(api_client)
        self._field_manager = field_manager
        self._served: dict[str, tuple[bool, float]] = {}
        self._served_lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves an optional API group (KEDA's), asked with one list
        of its API groups and remembered for SERVED_TTL. Never through the dynamic
        client: a kind it does not find makes it drop and rebuild its discovery cache, which
        races with the other reconcile threads reading it (KeyError: 'resources')."""
        now = time.monotonic()
        with self._served_lock:
            known = self._served.get(api_version)
        if known is not None and now - known[1] < self.SERVED_TTL:
            return known[0]
        try:
            groups = kubernetes.client.ApisApi(self._api).get_api_versions(_request_timeout=10)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise WorkloadError(
                f"the API server did not say whether it serves {kind}: {error}",
                reason="KubernetesUnavailable",
                temporary=True,
                delay=10,
            ) from None
        served = any(
            version.group_version == api_version
            for group in groups.groups or []
            for version in group.versions or []
        )
        with self._served_lock:
            self._served[api_version] = (served, now)
        return served

    def _selector(self, resource: TaskQueue) -> str:
        return (
            f"{naming.LABEL_TASKQUEUE}={resource.metadata.name},"
            "app.kubernetes.io/managed-by=kube-taskqueue-operator"
        )

    def _list(self, resource: TaskQueue, api_version: str, kind: str) -> list[Any]:
        with _refused(f"listing {kind}s in {resource.namespace}"):
            items = self._resource(api_version, kind).get(
                namespace=resource.namespace, label_selector=self._selector(resource)
            )
        return list(items.items)

    def _live(self, resource: TaskQueue, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            with _refused(f"reading {kind} {name}"):
                live = self._resource(obj["apiVersion"], kind).get(
                    name=name, namespace=resource.namespace
                )
        except NotFoundError:
            return None
        result: dict[str, Any] = live.to_dict()
        return result

    def apply(
        self,
        resource: TaskQueue,
        objects: Iterable[dict[str, Any]],
        *,
        after_first: Callable[[], None] | None = None,
        known: Mapping[tuple[str, str], dict[str, Any]] | None = None,
    ) -> list[str]:
        """Server-side apply each object; returns what was created or changed.

        An object of the same name controlled by anything but this TaskQueue is never applied
        over: WorkloadError NameConflict naming its controller. A Deployment going from fixed
        replicas to autoscaling keeps its live count: the replicas are handed to a separate
        field manager first (the procedure of the Kubernetes docs for handing replicas to an
        HPA), so dropping them from our apply does not reset them to 1. `known` holds live
        objects the caller has just read, keyed by (kind, name); the others are read here."""
        changed = []
        for index, obj in enumerate(objects):
            if index == 1 and after_first is not None:
                after_first()
            kind, name = obj["kind"], obj["metadata"]["name"]
            if (obj["apiVersion"], kind) in KEDA_KINDS and not self._serves(
                obj["apiVersion"], kind
            ):
                raise WorkloadError(
                    f"the API server does not serve {kind} ({obj['apiVersion']}): "
                    "autoscaling.queueLength needs KEDA installed in the cluster",
                    reason="KedaMissing",
                    temporary=True,
                    delay=60,
                )
            # `known`: live objects just listed by the caller (one list, not a read each).
            live = (known or {}).get((kind, name)) or self._live(resource, obj)
            if live is not None and controller_uid(live) != resource.metadata.uid:
                raise WorkloadError(
                    _in_the_way(kind, live, resource),
                    reason="NameConflict",
                    temporary=False,
                )
            handoff = (
                live is not None
                and kind == "Deployment"
                and "replicas" not in obj.get("spec", {})
                and live.get("spec", {}).get("replicas") is not None
                and _manages_replicas(live, self._field_manager)
            )
            if live is not None and not handoff and holds(live, obj):
                continue  # already as rendered: no write (the common case of a drift check)
            if handoff:
                assert live is not None
                self._hand_off_replicas(resource, obj, int(live["spec"]["replicas"]))
            try:
                with _refused(f"{kind} {name}"):
                    applied = self._resource(obj["apiVersion"], kind).server_side_apply(
                        body=obj,
                        name=name,
                        namespace=resource.namespace,
                        field_manager=self._field_manager,
                        force_conflicts=True,
                    )
            except NotFoundError as error:  # the namespace is gone, or going
                raise WorkloadError(
                    f"the API server refused {kind} {name}: {_refusal(error)}",
                    reason="ApplyFailed",
                    temporary=True,
                ) from None
            if live is None:
                changed.append(f"created {kind} {name}")
            elif (
                live.get("metadata", {}).get("resourceVersion") != applied.metadata.resourceVersion
            ):
                changed.append(f"updated {kind} {name}")
        return changed

    def _hand_off_replicas(
        self, resource: TaskQueue, obj: Mapping[str, Any], replicas: int
    ) -> None:
        name = obj["metadata"]["name"]
        with _refused(f"Deployment {name} (handing its replicas to the autoscaler)"):
            self._resource("apps/v1", "Deployment").server_side_apply(
                body={
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": resource.namespace},
                    "spec": {"replicas": replicas},
                },
                name=name,
                namespace=resource.namespace,
                field_manager=HANDOFF_FIELD_MANAGER,
                force_conflicts=True,
            )
        log.info("kept %d replicas of Deployment %s for its autoscaler", replicas, name)

    def prune(
        self,
        resource: TaskQueue,
        keep: Iterable[dict[str, Any]],
        *,
        spare: Iterable[str] = (),
    ) -> list[str]:
        """Delete our objects of processors or schedules the spec no longer has: those whose
        controller owner reference is this TaskQueue (labels alone prove nothing). Objects of
        the processors in `spare` stay (they still poll a queue being handed over), and so does
        every ConfigMap a live pod template of ours still mounts: an older ReplicaSet's pods
        that restart, a rollback, or a running Job read the configuration of their revision."""
        wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in keep}
        spared = set(spare)
        deleted: list[str] = []
        if not resource.metadata.uid:
            return deleted
        # Dependents first: a ConfigMap is kept while a Deployment still mounts it.
        for api_version, kind in reversed(MANAGED_KINDS):
            if (api_version, kind) in KEDA_KINDS and not self._serves(api_version, kind):
                continue  # KEDA is not installed, so none of these exist
            candidates = [
                item
                for item in self._list(resource, api_version, kind)
                if (kind, item.metadata.name) not in wanted
                and controller_uid(item.to_dict()) == resource.metadata.uid
                and (item.metadata.labels or {}).get(naming.LABEL_PROCESSOR) not in spared
            ]
            if kind == "ConfigMap" and candidates:
                mounted = self._mounted_config_maps(resource)
                candidates = [item for item in candidates if item.metadata.name not in mounted]
            for item in candidates:
                try:
                    with _refused(f"deleting {kind} {item.metadata.name}", reason="PruneFailed"):
                        self._resource(api_version, kind).delete(
                            name=item.metadata.name,
                            namespace=resource.namespace,
                            body={
                                "preconditions": {"uid": item.metadata.uid},
                                "propagationPolicy": "Background",
                            },
                        )
                except NotFoundError:
                    continue
                deleted.append(f"deleted {kind} {item.metadata.name}")
        return deleted

    def _mounted_config_maps(self, resource: TaskQueue) -> set[str]:
        """ConfigMaps named by the pod templates of our Deployments, CronJobs and of the
        ReplicaSets and Jobs they made (those carry our labels from the templates)."""
        mounted: set[str] = set()
        for api_version, kind, path in _TEMPLATE_PATHS:
            for item in self._list(resource, api_version, kind):
                template: Any = item.to_dict()
                for key in path:
                    template = (template or {}).get(key)
                for volume in (template or {}).get("volumes") or []:
                    name = (volume.get("configMap") or {}).get("name")
                    if name:
                        mounted.add(str(name))
        return mounted

    def deployments(self, resource: TaskQueue) -> list[dict[str, Any]]:
        """The live processor Deployments controlled by this TaskQueue."""
        return [
            live
            for live in (item.to_dict() for item in self._list(resource, "apps/v1", "Deployment"))
            if resource.metadata.uid and controller_uid(live) == resource.metadata.uid
        ]

    def rollout_pending(
        self, resource: TaskQueue, name: str, *, polling: Iterable[str]
    ) -> str | None:
        """Why processor Deployment `name` does not yet poll the queues `polling` (None when
        it does): its live spec must name them (it may itself be waiting to be applied) and be
        rolled out and available, so that pods of its current revision poll them."""
        live = self._live(
            resource, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}}
        )
        if live is None:
            return f"Deployment {name} does not exist yet"
        missing = sorted(set(polling) - (polled_queues(live) or frozenset()))
        if missing:
            return f"Deployment {name} is not yet updated to poll {', '.join(missing)}"
        return _rollout_pending(live, available=True)

    def not_rolled_out(self, resource: TaskQueue) -> list[str]:
        """Processor Deployments not yet rolled out to their current generation (empty when
        all are): observedGeneration behind, or fewer updated replicas than wanted, or old
        replicas still running. Judged from the Deployment's status, which the Deployment
        controller writes."""
        pending = []
        for processor in resource.spec.processors:
            name = naming.workload_name(resource, processor.name)
            live = self._live(
                resource,
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}},
            )
            if live is None or _rollout_pending(live, available=False):
                pending.append(name)
        return pending

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
            forbidden = (
                " (the operator reads only the Secrets named in its policies' "
                "credentialsSecrets, in its tenant namespaces)"
                if error.status == 403
                else ""
            )
            raise WorkloadError(
                f"the Secret {name!r} named by spec.sqs.credentialsSecret "
                + ("does not exist" if missing else f"cannot be read: {_refusal(error)}{forbidden}")
                + f" in namespace {namespace}; it needs AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY",
                reason="CredentialsSecretMissing" if missing else "CredentialsSecretUnreadable",
                temporary=True,
            ) from None
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
