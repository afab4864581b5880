"""The chart's RBAC: exactly the permissions of permissions.py, each granted only where its
scope says, and, checked by the real API server as the operator's ServiceAccount, no reach
into namespaces that are not tenants' (kube-system above all) unless asked for."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from kube_taskqueue_operator import permissions
from kube_taskqueue_operator.permissions import Scope

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
#: Where a grant applies: a namespace, or CLUSTER_WIDE.
CLUSTER_WIDE = "*"


class Grant(NamedTuple):
    group: str
    resource: str
    verb: str
    names: tuple[str, ...]
    where: str


def effective_grants(objects: list[dict[str, Any]], account: str) -> set[Grant]:
    """What the bindings of `account` grant, and where: a ClusterRoleBinding everywhere, a
    RoleBinding in its namespace."""
    by_ref = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o["rules"]
        for o in objects
        if o["kind"] in {"Role", "ClusterRole"}
    }
    assert by_ref
    granted: set[Grant] = set()
    for binding in objects:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        assert [s["name"] for s in binding["subjects"]] == [account], binding
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role_namespace = namespace if ref["kind"] == "Role" else None
        for rule in by_ref[(ref["kind"], role_namespace, ref["name"])]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb), rule
                        granted.add(
                            Grant(
                                group,
                                resource,
                                verb,
                                tuple(sorted(rule.get("resourceNames", ()))),
                                namespace or CLUSTER_WIDE,
                            )
                        )
    return granted


class Config(NamedTuple):
    watch: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()
    peering: bool = False
    issues_certificate: bool = True
    cluster_wide_writes: bool = False


def expected_grants(config: Config, *, fullname: str, namespace: str) -> set[Grant]:
    """What permissions.py says the chart grants for `config`, and where."""
    used = [*permissions.NAMESPACED, *permissions.CLUSTER]
    if config.peering:
        used += permissions.PEERING
    if config.issues_certificate:
        used += permissions.WEBHOOK_CERTIFICATE
    where = {
        Scope.CLUSTER: {CLUSTER_WIDE},
        Scope.WATCHED: set(config.watch) or {CLUSTER_WIDE},
        # Watched namespaces are tenants' too.
        Scope.TENANT: (
            {CLUSTER_WIDE} if config.cluster_wide_writes else {*config.watch, *config.tenants}
        ),
        Scope.OPERATOR_NAMESPACE: {namespace},
    }
    names = {
        ("secrets", Scope.TENANT): tuple(sorted(config.credentials)),
        ("secrets", Scope.OPERATOR_NAMESPACE): (f"{fullname}-webhook-tls",),
        ("validatingwebhookconfigurations", Scope.CLUSTER): (fullname,),
    }
    expected: set[Grant] = set()
    for permission in used:
        for resource in permission.resources:
            named = names[(resource, permission.scope)] if permission.named else ()
            if permission.named and not named:
                continue  # nothing to name: no rule at all
            for verb in permission.verbs:
                for place in where[permission.scope]:
                    expected.add(Grant(permission.group, resource, verb, named, place))
    return expected


def values(config: Config) -> list[str]:
    args = []
    if config.watch:
        args += ["--set", f"watchNamespaces={{{','.join(config.watch)}}}"]
    if config.tenants:
        args += ["--set", f"tenancy.namespaces={{{','.join(config.tenants)}}}"]
    if config.credentials:
        args += [
            "--set",
            f"tenancy.defaultPolicy.credentialsSecrets={{{','.join(config.credentials)}}}",
        ]
    if config.peering:
        args += ["--set", "peering.enabled=true"]
    if not config.issues_certificate:
        args += ["--set", "webhook.certManager.enabled=true"]
    if config.cluster_wide_writes:
        args += ["--set", "rbac.clusterWideWrites=true"]
    return args


@pytest.mark.parametrize(
    "config",
    [
        Config(),
        Config(tenants=("team-a",), credentials=("sqs-credentials",)),
        Config(peering=True, tenants=("team-a", "team-b")),
        Config(watch=("team-a", "team-b"), credentials=("a", "b")),
        Config(watch=("team-a",), tenants=("team-b",)),
        Config(issues_certificate=False, tenants=("team-a",)),
        Config(cluster_wide_writes=True, credentials=("sqs-credentials",)),
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c._asdict().items() if v) or "defaults",
)
def test_rbac_grants_exactly_what_the_operator_uses_where_its_scope_says(chart, config):
    objects = chart.template(*values(config))
    fullname = "t-kube-taskqueue-operator"
    granted = effective_grants(objects, fullname)
    for grant in granted:
        assert permissions.allowed(grant.group, grant.resource, grant.verb, named=bool(grant.names))
    assert granted == expected_grants(config, fullname=fullname, namespace="ops")


def test_tenant_namespaces_are_the_union_of_watched_listed_and_policy_namespaces(chart):
    objects = chart.template(
        "--set",
        "watchNamespaces={team-w}",
        "--set",
        "tenancy.namespaces={team-a,team-w}",
        "--set-json",
        'tenancy.policies=[{"name":"b","spec":{"namespaces":["team-b","team-a"],'
        '"credentialsSecrets":["b-sqs"]}},{"name":"labels","spec":{"namespaceSelector":'
        '{"matchLabels":{"tier":"apps"}},"credentialsSecrets":["l-sqs"]}}]',
        "--set",
        "tenancy.defaultPolicy.credentialsSecrets={sqs}",
    )
    tenant_bindings = [
        o
        for o in objects
        if o["kind"] == "RoleBinding" and o["roleRef"]["name"].endswith("-tenant")
    ]
    assert sorted(b["metadata"]["namespace"] for b in tenant_bindings) == [
        "team-a",
        "team-b",
        "team-w",
    ]
    [tenant] = [
        o
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-tenant")
    ]
    [secrets] = [r for r in tenant["rules"] if "secrets" in r["resources"]]
    assert secrets == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["b-sqs", "l-sqs", "sqs"],
        "verbs": ["get"],
    }
    # No ClusterRoleBinding to the tenant role, nor any other way to write workloads
    # cluster-wide.
    assert not [
        o
        for o in objects
        if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"].endswith("-tenant")
    ]


def test_watching_namespaces_grants_the_taskqueue_api_there_only(chart):
    objects = chart.template("--set", "watchNamespaces={team-a,team-b}")
    cluster_wide = {
        g.resource
        for g in effective_grants(objects, "t-kube-taskqueue-operator")
        if g.where == CLUSTER_WIDE and not g.names
    }
    assert cluster_wide == {"customresourcedefinitions", "namespaces", "taskqueuepolicies"}
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TASKQUEUE_NAMESPACES"] == "team-a,team-b"


def test_the_notes_say_how_to_bind_a_namespace_selected_by_labels(chart):
    def notes(*extra: str) -> str:
        # No CRDs: a release of the session may own them already (dry runs check that too).
        return chart.helm(
            "install",
            "notes",
            str(chart.path),
            "-n",
            "ops",
            "--dry-run",
            *chart.image,
            "--set",
            "crds.enabled=false",
            *extra,
        ).stdout

    default = notes()
    assert "Tenant namespaces (the operator writes workloads there only): none yet." in default
    assert "kubectl create rolebinding notes-kube-taskqueue-operator-tenant -n NAMESPACE" in (
        default
    )
    assert "--serviceaccount=ops:notes-kube-taskqueue-operator" in default
    listed = notes("--set", "tenancy.namespaces={team-a,team-b}")
    assert "there only): team-a, team-b." in listed
    assert "kube-system included" in notes("--set", "rbac.clusterWideWrites=true")


# -- as the operator's ServiceAccount, asked of the real API server ------------------------


class Installed(NamedTuple):
    account: str
    tenant: str
    cluster_objects: list[tuple[str, str]]


def can(plane: Any, account: str, *args: str) -> bool:
    result = plane.kubectl_run("auth", "can-i", *args, f"--as={account}", check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, (args, result.stdout, result.stderr)
    return answer == "yes"


@pytest.fixture
def install_rbac(chart, control_plane, crd, namespace, tenant_namespace) -> Iterator[Any]:
    """Applies only the chart's RBAC objects (and ServiceAccount) of a release of its own;
    deletes the cluster-scoped ones afterwards so no other test sees them."""
    created: list[tuple[str, str]] = []

    def install(*extra: str) -> Installed:
        release = f"rbac-{uuid.uuid4().hex[:6]}"
        objects = [
            o
            for o in chart.template(
                "--set",
                f"tenancy.namespaces={{{tenant_namespace}}}",
                "--set",
                "tenancy.defaultPolicy.credentialsSecrets={sqs-credentials}",
                *extra,
                release=release,
                namespace=namespace,
            )
            if o["kind"] in RBAC_KINDS
        ]
        for o in objects:
            if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
                created.append((o["kind"], o["metadata"]["name"]))
            else:
                o["metadata"].setdefault("namespace", namespace)
        control_plane.kubectl_run(
            "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects)
        )
        [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
        name = account["metadata"]["name"]
        return Installed(f"system:serviceaccount:{namespace}:{name}", tenant_namespace, created)

    yield install
    for kind, name in created:
        control_plane.kubectl_run("delete", kind, name, "--ignore-not-found", check=False)


#: What a tenant who can write a TaskQueue must never get the operator to do by default.
KUBE_SYSTEM_REACH = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("get", "secrets/sqs-credentials"),
    ("patch", "configmaps/aws-auth"),
    ("create", "configmaps"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps/coredns"),
    ("delete", "deployments.apps/coredns"),
    ("create", "cronjobs.batch"),
    ("create", "horizontalpodautoscalers.autoscaling"),
    ("create", "events"),
]


def test_by_default_the_operator_cannot_touch_kube_system(control_plane, install_rbac):
    installed = install_rbac()
    account, tenant = installed.account, installed.tenant
    for verb, resource in KUBE_SYSTEM_REACH:
        assert not can(control_plane, account, verb, resource, "-n", "kube-system"), (
            verb,
            resource,
        )
    # Nor another namespace that is no tenant's, nor a Secret no policy names in a tenant's.
    assert not can(control_plane, account, "create", "deployments.apps", "-n", "default")
    assert not can(control_plane, account, "get", "secrets/unrelated", "-n", tenant)
    assert not can(control_plane, account, "get", "secrets", "-n", tenant)
    assert not can(control_plane, account, "list", "secrets", "-n", tenant)
    # What it needs, it has: in the tenant namespace...
    assert can(control_plane, account, "get", "secrets/sqs-credentials", "-n", tenant)
    for verb, *resource in [
        ("create", "deployments.apps"),
        ("patch", "deployments.apps/app-main"),
        ("delete", "configmaps/app-main"),
        ("create", "cronjobs.batch"),
        ("create", "horizontalpodautoscalers.autoscaling"),
        ("list", "replicasets.apps"),
        ("create", "events"),
        ("update", "taskqueues.taskqueue.dev/app", "--subresource=finalizers"),
    ]:
        assert can(control_plane, account, verb, *resource, "-n", tenant), (verb, resource)
    # ...and cluster-wide, what must be.
    for verb, *resource in [
        ("list", "taskqueues.taskqueue.dev"),
        ("watch", "taskqueues.taskqueue.dev"),
        ("patch", "taskqueues.taskqueue.dev", "--subresource=status"),
        ("list", "taskqueuepolicies.taskqueue.dev"),
        ("watch", "taskqueuepolicies.taskqueue.dev"),
        ("watch", "namespaces"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ]:
        assert can(control_plane, account, verb, *resource, "--all-namespaces"), (verb, resource)
    assert not can(control_plane, account, "create", "taskqueuepolicies.taskqueue.dev")


def test_watching_namespaces_keeps_even_taskqueues_to_them(control_plane, install_rbac, namespace):
    installed = install_rbac("--set", f"watchNamespaces={{{namespace}}}")
    account = installed.account
    assert can(control_plane, account, "watch", "taskqueues.taskqueue.dev", "-n", namespace)
    assert not can(control_plane, account, "list", "taskqueues.taskqueue.dev", "--all-namespaces")
    assert not can(control_plane, account, "list", "taskqueues.taskqueue.dev", "-n", "kube-system")
    # A watched namespace is a tenant's too.
    assert can(control_plane, account, "create", "deployments.apps", "-n", namespace)


def test_cluster_wide_writes_bring_the_old_reach_back(control_plane, install_rbac):
    """The switch for single-tenant clusters does what it says (and so the test above can
    fail): the operator may then write workloads in kube-system."""
    account = install_rbac("--set", "rbac.clusterWideWrites=true").account
    for verb, resource in [
        ("patch", "configmaps/aws-auth"),
        ("create", "deployments.apps"),
        ("patch", "deployments.apps/coredns"),
        ("create", "events"),
    ]:
        assert can(control_plane, account, verb, resource, "-n", "kube-system"), (verb, resource)
    # Secrets stay by name, even then.
    assert not can(control_plane, account, "get", "secrets", "-n", "kube-system")
    assert not can(control_plane, account, "get", "secrets/unrelated", "-n", "kube-system")


def test_no_credentials_secret_allowed_means_no_secrets_rule(control_plane, install_rbac):
    installed = install_rbac("--set", "tenancy.defaultPolicy.credentialsSecrets=null")
    assert not can(
        control_plane, installed.account, "get", "secrets/sqs-credentials", "-n", installed.tenant
    )
    assert can(
        control_plane, installed.account, "create", "deployments.apps", "-n", installed.tenant
    )
