"""Every Kubernetes permission the operator uses, and why. The chart's RBAC is checked
against this list by a test, so it grants nothing more."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class Permission:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    named: bool = False
    """Granted only on the one object the chart names (RBAC resourceNames)."""


#: Permissions in each watched namespace (or cluster-wide when watching all).
NAMESPACED = (
    Permission(
        group="taskqueue.dev",
        resources=("taskqueues",),
        verbs=("get", "list", "watch", "patch"),
        why="watch TaskQueues; kopf patches its finalizer and progress annotations",
    ),
    Permission(
        group="taskqueue.dev",
        resources=("taskqueues/status",),
        verbs=("get", "patch"),
        why="write conditions, queue URLs and replica counts",
    ),
    Permission(
        group="taskqueue.dev",
        resources=("taskqueues/finalizers",),
        verbs=("update",),
        why="owner references with blockOwnerDeletion on the objects it creates, where "
        "OwnerReferencesPermissionEnforcement is on (OpenShift)",
    ),
    Permission(
        group="",
        resources=("configmaps",),
        verbs=("get", "list", "create", "patch", "delete"),
        why="processor configurations: server-side apply, prune",
    ),
    Permission(
        group="apps",
        resources=("deployments",),
        verbs=("get", "list", "create", "patch", "delete"),
        why="processor Deployments: server-side apply, prune, replica status",
    ),
    Permission(
        group="apps",
        resources=("replicasets",),
        verbs=("list",),
        why="keep the ConfigMaps older revisions of a processor still mount (rollbacks)",
    ),
    Permission(
        group="batch",
        resources=("jobs",),
        verbs=("list",),
        why="keep the ConfigMaps running scheduled Jobs still mount",
    ),
    Permission(
        group="batch",
        resources=("cronjobs",),
        verbs=("get", "list", "create", "patch", "delete"),
        why="CronJobs of scheduled tasks",
    ),
    Permission(
        group="autoscaling",
        resources=("horizontalpodautoscalers",),
        verbs=("get", "list", "create", "patch", "delete"),
        why="autoscalers of processors with spec.processors[].autoscaling",
    ),
    Permission(
        group="",
        resources=("secrets",),
        verbs=("get",),
        why="the SQS credentials Secret named by spec.sqs.credentialsSecret",
    ),
    Permission(
        group="",
        resources=("events",),
        verbs=("create",),
        why="events about reconciles, repairs and invalid resources",
    ),
    Permission(
        group="events.k8s.io",
        resources=("events",),
        verbs=("create",),
        why="events (newer API group, used by some clients)",
    ),
)

#: Cluster-scoped permissions (needed whatever namespaces are watched).
CLUSTER = (
    Permission(
        group="apiextensions.k8s.io",
        resources=("customresourcedefinitions",),
        verbs=("get", "list", "watch"),
        why="kopf checks the TaskQueue CRD is installed and watches for it",
    ),
    Permission(
        group="",
        resources=("namespaces",),
        verbs=("get", "list", "watch"),
        why="kopf resolves which namespaces to watch",
    ),
)

#: Only when kopf peering is enabled (several replicas).
PEERING = (
    Permission(
        group="kopf.dev",
        resources=("kopfpeerings", "clusterkopfpeerings"),
        verbs=("get", "list", "watch", "patch", "create"),
        why="kopf peering: one active replica, the others on standby; the operator creates "
        "the peering object when it is absent",
    ),
)


#: Only when the operator issues the webhook certificate (cert-manager off): the chart's
#: Secret (in the operator's namespace) and ValidatingWebhookConfiguration, by name.
WEBHOOK_CERTIFICATE = (
    Permission(
        group="",
        resources=("secrets",),
        verbs=("get", "update"),
        why="keep the webhook certificate it issues; update guarded by resourceVersion",
        named=True,
    ),
    Permission(
        group="admissionregistration.k8s.io",
        resources=("validatingwebhookconfigurations",),
        verbs=("get", "patch"),
        why="put the certificate's CA bundle into the webhook registration",
        named=True,
    ),
)


def allowed(group: str, resource: str, verb: str, *, named: bool = False) -> bool:
    """True when the operator uses `verb` on `group`/`resource` (on one named object only
    when `named`)."""
    return any(
        p.group == group and resource in p.resources and verb in p.verbs and (named or not p.named)
        for p in (*NAMESPACED, *CLUSTER, *PEERING, *WEBHOOK_CERTIFICATE)
    )
