"""Every Kubernetes permission the operator uses, where the chart grants it, and why. The
chart's RBAC is checked against this list by tests (tests/chart), so it grants nothing more
and nowhere wider.

Least privilege for a shared cluster (#17): only what must be cluster-wide is granted
cluster-wide. Everything that writes workloads, and `get` on credentials Secrets, is granted
only in tenant namespaces (those the platform team lists for the chart), so a tenant who
edits TaskQueues cannot make the operator write Deployments or ConfigMaps in kube-system or
read another team's Secrets.
"""

from __future__ import annotations

import dataclasses
import enum


class Scope(enum.Enum):
    """Where the chart grants a permission."""

    CLUSTER = "cluster"
    """A ClusterRoleBinding: cluster-scoped resources, needed whatever is watched."""

    WATCHED = "watched"
    """Where the operator watches TaskQueues: cluster-wide when it watches every namespace
    (`watchNamespaces` empty), else a RoleBinding in each watched namespace."""

    TENANT = "tenant"
    """A RoleBinding in each tenant namespace (`watchNamespaces`, `tenancy.namespaces` and
    the namespaces listed by the chart's TaskQueuePolicies; the platform team binds namespaces
    selected by label), or one ClusterRoleBinding with `rbac.clusterWideWrites`."""

    OPERATOR_NAMESPACE = "operator-namespace"
    """A Role in the operator's own namespace."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Permission:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    scope: Scope
    why: str
    named: bool = False
    """Granted only on objects the chart names (RBAC resourceNames)."""


#: The TaskQueue API, where TaskQueues are watched. TaskQueues are the operator's own API, so
#: reading and patching them anywhere it watches reaches nothing else; status is how a
#: TaskQueue outside the tenant namespaces learns that it is refused.
TASKQUEUES = (
    Permission(
        group="taskqueue.dev",
        resources=("taskqueues",),
        verbs=("get", "list", "watch", "patch"),
        scope=Scope.WATCHED,
        why="watch TaskQueues (kopf and the claim index); kopf patches its finalizer and "
        "progress annotations",
    ),
    Permission(
        group="taskqueue.dev",
        resources=("taskqueues/status",),
        verbs=("get", "patch"),
        scope=Scope.WATCHED,
        why="write conditions (also the refusal of a TaskQueue no policy allows), queue URLs "
        "and replica counts",
    ),
)

#: The workloads of TaskQueues, only in tenant namespaces.
TENANT = (
    Permission(
        group="taskqueue.dev",
        resources=("taskqueues/finalizers",),
        verbs=("update",),
        scope=Scope.TENANT,
        why="owner references with blockOwnerDeletion on the objects it creates, where "
        "OwnerReferencesPermissionEnforcement is on (OpenShift); only needed where it creates "
        "objects",
    ),
    Permission(
        group="",
        resources=("configmaps",),
        verbs=("get", "list", "create", "patch", "delete"),
        scope=Scope.TENANT,
        why="processor configurations: server-side apply, prune",
    ),
    Permission(
        group="apps",
        resources=("deployments",),
        verbs=("get", "list", "create", "patch", "delete"),
        scope=Scope.TENANT,
        why="processor Deployments: server-side apply, prune, replica status",
    ),
    Permission(
        group="apps",
        resources=("replicasets",),
        verbs=("list",),
        scope=Scope.TENANT,
        why="keep the ConfigMaps older revisions of a processor still mount (rollbacks)",
    ),
    Permission(
        group="batch",
        resources=("jobs",),
        verbs=("list",),
        scope=Scope.TENANT,
        why="keep the ConfigMaps running scheduled Jobs still mount",
    ),
    Permission(
        group="batch",
        resources=("cronjobs",),
        verbs=("get", "list", "create", "patch", "delete"),
        scope=Scope.TENANT,
        why="CronJobs of scheduled tasks",
    ),
    Permission(
        group="autoscaling",
        resources=("horizontalpodautoscalers",),
        verbs=("get", "list", "create", "patch", "delete"),
        scope=Scope.TENANT,
        why="autoscalers of processors with spec.processors[].autoscaling",
    ),
    Permission(
        group="keda.sh",
        resources=("scaledobjects", "triggerauthentications"),
        verbs=("get", "list", "create", "patch", "delete"),
        scope=Scope.TENANT,
        why="queue-driven autoscaling (autoscaling.queueLength): a KEDA ScaledObject per "
        "processor and the TriggerAuthentication with the TaskQueue's SQS credentials",
    ),
    Permission(
        group="",
        resources=("secrets",),
        verbs=("get",),
        scope=Scope.TENANT,
        why="the SQS credentials Secret named by spec.sqs.credentialsSecret: only the names "
        "the policies allow (tenancy.defaultPolicy and tenancy.policies credentialsSecrets); "
        "no rule at all when they allow none",
        named=True,
    ),
    Permission(
        group="",
        resources=("events",),
        verbs=("create",),
        scope=Scope.TENANT,
        why="events about reconciles, repairs and invalid resources, posted in the "
        "TaskQueue's namespace; a TaskQueue outside the tenant namespaces is told in its "
        "status instead (kopf logs a failed post and carries on)",
    ),
    Permission(
        group="events.k8s.io",
        resources=("events",),
        verbs=("create",),
        scope=Scope.TENANT,
        why="events (newer API group, used by some clients)",
    ),
)

#: Every permission on namespaced objects in a namespace the operator serves (watched and a
#: tenant), wherever the chart grants it.
NAMESPACED = (*TASKQUEUES, *TENANT)

#: Cluster-scoped permissions (needed whatever namespaces are watched).
CLUSTER = (
    Permission(
        group="apiextensions.k8s.io",
        resources=("customresourcedefinitions",),
        verbs=("get", "list", "watch"),
        scope=Scope.CLUSTER,
        why="kopf checks the TaskQueue CRD is installed and watches for it",
    ),
    Permission(
        group="",
        resources=("namespaces",),
        verbs=("get", "list", "watch"),
        scope=Scope.CLUSTER,
        why="kopf resolves which namespaces to watch; the policy index matches "
        "namespaceSelectors against namespace labels",
    ),
    Permission(
        group="taskqueue.dev",
        resources=("taskqueuepolicies",),
        verbs=("get", "list", "watch"),
        scope=Scope.CLUSTER,
        why="the policy index: which TaskQueuePolicies select a TaskQueue's namespace "
        "(cluster-scoped objects)",
    ),
)

#: Only when kopf peering is enabled (several replicas).
PEERING = (
    Permission(
        group="kopf.dev",
        resources=("kopfpeerings", "clusterkopfpeerings"),
        verbs=("get", "list", "watch", "patch", "create"),
        scope=Scope.CLUSTER,
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
        scope=Scope.OPERATOR_NAMESPACE,
        why="keep the webhook certificate it issues; update guarded by resourceVersion",
        named=True,
    ),
    Permission(
        group="admissionregistration.k8s.io",
        resources=("validatingwebhookconfigurations",),
        verbs=("get", "patch"),
        scope=Scope.CLUSTER,
        why="put the certificate's CA bundle into the webhook registration",
        named=True,
    ),
)

#: Everything, for look-ups.
ALL = (*NAMESPACED, *CLUSTER, *PEERING, *WEBHOOK_CERTIFICATE)


def granted_in(scope: Scope) -> tuple[Permission, ...]:
    """The permissions the chart grants in `scope`."""
    return tuple(p for p in ALL if p.scope is scope)


def allowed(
    group: str, resource: str, verb: str, *, named: bool = False, scope: Scope | None = None
) -> bool:
    """True when the operator uses `verb` on `group`/`resource` (on named objects only
    when `named`), in `scope` when given."""
    return any(
        p.group == group
        and resource in p.resources
        and verb in p.verbs
        and (named or not p.named)
        and (scope is None or p.scope is scope)
        for p in ALL
    )
