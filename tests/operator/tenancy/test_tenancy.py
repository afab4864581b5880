"""Tenancy (issue #17), as the review ran it: a tenant whose only rights are on TaskQueues in
its own namespace cannot use the operator as a deputy. Each finding is refused at apply
(the webhook) and again at reconcile when the webhook is bypassed (the TaskQueue created while
no operator runs); a policy tightened later changes the condition and touches nothing in SQS.

The operators here run with the built-in default policy (the other operator tests use a
permissive one) and moto as their default endpoint; SQS traffic to every endpoint under test
goes through a loopback proxy that counts the requests.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from harness import wait_for
from operator_harness import condition, events, get

from bench.countproxy import CountingProxy

REGION = "us-east-1"
TENANT = "tenant-a"


@pytest.fixture
def tenant(control_plane, namespace) -> Callable[..., Any]:
    """kubectl as a user who may do anything with TaskQueues in `namespace`, and nothing
    else (no Secrets, no Deployments, nothing cluster-wide)."""
    rbac = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "taskqueue-editor", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["taskqueue.dev"],
                    "resources": ["taskqueues", "taskqueues/status"],
                    "verbs": ["*"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "taskqueue-editor", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "taskqueue-editor",
            },
            "subjects": [{"kind": "User", "name": TENANT}],
        },
    ]
    control_plane.kubectl_run(
        "apply", "-f", "-", input=json.dumps({"kind": "List", "apiVersion": "v1", "items": rbac})
    )

    def kubectl(*args: str, input: str | None = None) -> Any:
        return control_plane.kubectl_run(
            f"--as={TENANT}", *args, "-n", namespace, input=input, check=False
        )

    assert kubectl("auth", "can-i", "get", "secrets").stdout.strip() == "no"
    assert kubectl("auth", "can-i", "create", "taskqueues").stdout.strip() == "yes"
    return kubectl


@pytest.fixture
def proxy(moto_port) -> Iterator[CountingProxy]:
    counting = CountingProxy(moto_port)
    yield counting
    counting.close()


@pytest.fixture
def victim(sqs) -> Iterator[dict[str, str]]:
    """Another team's queue, with a message in it, that the tenant's operator must not touch."""
    prefix = f"teamb{uuid.uuid4().hex[:8]}-"
    url = sqs.create_queue(
        QueueName=f"{prefix}work",  # the name the tenant's manifest makes with this prefix
        Attributes={"VisibilityTimeout": "45"},
        tags={"team": "b"},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="team b's work")
    yield {"prefix": prefix, "url": url}
    sqs.delete_queue(QueueUrl=url)


def untouched(sqs, victim: dict[str, str]) -> None:
    url = victim["url"]
    assert sqs.list_queue_tags(QueueUrl=url).get("Tags") == {"team": "b"}
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "45"
    assert attributes["ApproximateNumberOfMessages"] == "1"


def tenant_manifest(make_manifest, namespace: str, **sqs: Any) -> dict[str, Any]:
    """The shared test manifest as a tenant of `namespace` writes it under the default
    policy: its own prefix, the operator's default endpoint."""
    document = make_manifest()
    document["spec"]["sqs"] = {"region": REGION, "queuePrefix": f"{namespace}_", **sqs}
    return document


def start(start_operator, sqs_endpoint: str) -> Any:
    return start_operator(default_policy="{}", default_endpoint=sqs_endpoint, default_region=REGION)


def denied(control_plane, namespace: str, name: str = "app") -> dict[str, Any]:
    def reason() -> Any:
        ready = condition(get(control_plane, "tq", name, namespace), "Ready")
        return ready if ready and ready["reason"] == "PolicyDenied" else None

    found: dict[str, Any] = wait_for(reason, timeout=60)
    return found


def test_each_finding_is_refused_at_apply_naming_the_rule(
    control_plane, start_operator, namespace, make_manifest, sqs_endpoint, tenant, victim, proxy
):
    start(start_operator, sqs_endpoint)
    control_plane.kubectl_run(
        "create", "secret", "generic", "platform-aws", "-n", namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=AKIAPLATFORM", "--from-literal=AWS_SECRET_ACCESS_KEY=x",
    )  # fmt: skip
    cases = {
        # 1. Take-over and deletion of another team's queue.
        "spec.sqs.queuePrefix": {"sqs": {"queuePrefix": victim["prefix"]}},
        "spec.adoptExistingQueues": {"adoptExistingQueues": True},
        # 2. Signed requests to an address of the tenant's choice.
        "spec.sqs.endpoint": {"sqs": {"endpoint": proxy.endpoint}},
        # 3. A Secret and a ServiceAccount the tenant was not given.
        "spec.sqs.credentialsSecret": {"sqs": {"credentialsSecret": "platform-aws"}},
        "spec.serviceAccountName": {"serviceAccountName": "platform-admin"},
    }
    for rule, change in cases.items():
        document = tenant_manifest(make_manifest, namespace, **change.pop("sqs", {}))
        document["spec"].update(change)
        result = tenant("create", "-f", "-", input=json.dumps(document))
        assert result.returncode != 0, rule
        assert "the default policy (no TaskQueuePolicy selects namespace" in result.stderr, rule
        assert f"{rule} " in result.stderr, result.stderr
    allowed = tenant(
        "create", "-f", "-", input=json.dumps(tenant_manifest(make_manifest, namespace))
    )
    assert allowed.returncode == 0, allowed.stderr
    assert proxy.total() == 0
    untouched(boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=REGION), victim)


def test_a_tenant_queue_created_while_no_operator_runs_is_refused_by_reconcile(
    control_plane, start_operator, namespace, make_manifest, sqs_endpoint, sqs, victim, proxy
):
    """The webhook bypassed: both objects are stored before any operator runs."""
    takeover = tenant_manifest(make_manifest, namespace, queuePrefix=victim["prefix"])
    takeover["metadata"]["name"] = "takeover"
    takeover["spec"].update(adoptExistingQueues=True, deletionPolicy="Delete")
    ssrf = tenant_manifest(make_manifest, namespace, endpoint=proxy.endpoint)
    ssrf["metadata"]["name"] = "ssrf"
    ssrf["spec"].update(serviceAccountName="platform-admin", deletionPolicy="Delete")
    for document in (takeover, ssrf):
        control_plane.kubectl_run("create", "-f", "-", input=json.dumps(document))
    start(start_operator, sqs_endpoint)

    takeover_ready = denied(control_plane, namespace, "takeover")
    assert "spec.sqs.queuePrefix" in takeover_ready["message"]
    assert "spec.adoptExistingQueues" in takeover_ready["message"]
    ssrf_ready = denied(control_plane, namespace, "ssrf")
    assert "spec.sqs.endpoint" in ssrf_ready["message"]
    assert "spec.serviceAccountName 'platform-admin'" in ssrf_ready["message"]
    assert control_plane.kubectl_run(
        "get", "deployments,cronjobs,configmaps", "-n", namespace, "-l",
        "app.kubernetes.io/managed-by=kube-taskqueue-operator", "-o", "name",
    ).stdout.strip() == ""  # fmt: skip

    for name in ("takeover", "ssrf"):
        control_plane.kubectl_run("delete", "tq", name, "-n", namespace, "--timeout=60s")
    reasons = [e["reason"] for e in events(control_plane, namespace)]
    assert reasons.count("PolicyDenied") >= 2
    left = [
        e["message"] for e in events(control_plane, namespace) if "left in place" in e["message"]
    ]
    assert any(victim["prefix"] + "work" in message for message in left), left
    untouched(sqs, victim)
    assert proxy.total() == 0, proxy.snapshot()


def test_a_tightened_policy_changes_the_condition_and_touches_nothing(
    control_plane, start_operator, namespace, make_manifest, sqs_endpoint, sqs, proxy
):
    name = f"tenants-{namespace}"
    policy = {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueuePolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "endpoints": [proxy.endpoint]},
    }
    control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(policy))
    try:
        start(start_operator, sqs_endpoint)
        document = tenant_manifest(make_manifest, namespace, endpoint=proxy.endpoint)
        document["spec"]["deletionPolicy"] = "Delete"
        control_plane.kubectl_run("create", "-f", "-", input=json.dumps(document))
        wait_for(
            lambda: (
                (condition(get(control_plane, "tq", "app", namespace), "Ready") or {}).get("status")
                == "True"
            ),
            timeout=60,
        )
        assert proxy.total() > 0  # the proxy carries this TaskQueue's SQS traffic
        deployment = get(control_plane, "deployment", "app-main", namespace)
        assert deployment is not None

        policy["spec"]["endpoints"] = ["aws"]
        control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(policy))
        ready = denied(control_plane, namespace)
        assert f"TaskQueuePolicy '{name}': spec.sqs.endpoint" in ready["message"]
        time.sleep(1)  # a request already under way when the policy changed
        proxy.reset()
        # Several drift (3 s) and status (2 s) intervals: no request reaches the endpoint.
        time.sleep(8)
        assert proxy.total() == 0, proxy.snapshot()
        after = get(control_plane, "deployment", "app-main", namespace)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == deployment["metadata"]["resourceVersion"]

        control_plane.kubectl_run("delete", "tq", "app", "-n", namespace, "--timeout=60s")
        assert proxy.total() == 0, proxy.snapshot()
        kept = sqs.get_queue_url(QueueName=f"{namespace}_work")["QueueUrl"]
        assert kept  # deletionPolicy Delete, yet nothing was deleted
    finally:
        control_plane.kubectl_run("delete", "taskqueuepolicy", name, "--ignore-not-found")


def test_clash_messages_do_not_name_other_namespaces_even_to_an_unauthenticated_caller(
    control_plane, start_operator, namespace, kube_client, make_manifest, sqs_endpoint, tenant
):
    import kubernetes

    other = f"team-b-{uuid.uuid4().hex[:6]}"
    core = kubernetes.client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": other}})
    shared = f"shared{uuid.uuid4().hex[:6]}-"
    policy = {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueuePolicy",
        "metadata": {"name": f"shared-{namespace}"},
        "spec": {"namespaces": [namespace, other], "queuePrefixes": [shared]},
    }
    control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(policy))
    try:
        process = start(start_operator, sqs_endpoint)
        owner = tenant_manifest(make_manifest, other, queuePrefix=shared)
        owner["metadata"] = {"name": "secret-app", "namespace": other}
        control_plane.kubectl_run("create", "-f", "-", input=json.dumps(owner))
        wait_for(
            lambda: condition(get(control_plane, "tq", "secret-app", other), "Ready"), timeout=60
        )

        mine = tenant_manifest(make_manifest, namespace, queuePrefix=shared)
        refused = tenant("create", "-f", "-", input=json.dumps(mine))
        assert refused.returncode != 0
        assert "is also declared by a TaskQueue in another namespace" in refused.stderr
        assert other not in refused.stderr and "secret-app" not in refused.stderr

        # The same review sent straight to the webhook, as anyone on the network could.
        configuration = json.loads(
            control_plane.kubectl_run(
                "get", "validatingwebhookconfiguration", "taskqueue.dev", "-o", "json"
            ).stdout
        )
        url = configuration["webhooks"][0]["clientConfig"]["url"]
        assert str(process.webhook_port) in url
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "taskqueue.dev", "version": "v1alpha1", "kind": "TaskQueue"},
                "resource": {
                    "group": "taskqueue.dev",
                    "version": "v1alpha1",
                    "resource": "taskqueues",
                },
                "operation": "CREATE",
                "namespace": namespace,
                "userInfo": {"username": "anyone"},
                "object": mine,
            },
        }
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(
            url,
            data=json.dumps(review).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["response"]["allowed"] is False
        text = json.dumps(answer)
        assert "another namespace" in text
        assert other not in text and "secret-app" not in text
    finally:
        control_plane.kubectl_run(
            "delete", "tq", "--all", "-n", other, "--timeout=60s", check=False
        )
        core.delete_namespace(other)
        control_plane.kubectl_run(
            "delete", "taskqueuepolicy", f"shared-{namespace}", "--ignore-not-found"
        )


def test_the_api_server_refuses_a_policy_that_selects_nothing(control_plane, crd):
    policy = {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueuePolicy",
        "metadata": {"name": f"nothing-{uuid.uuid4().hex[:6]}"},
        "spec": {"images": ["*"]},
    }
    result = control_plane.kubectl_run(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(policy), check=False
    )
    assert result.returncode != 0
    assert "a TaskQueuePolicy selects namespaces" in result.stderr
    policy["spec"]["namespaceSelector"] = {}
    accepted = control_plane.kubectl_run(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(policy)
    )
    # Fields left out are stored with the built-in defaults, so what applies is visible.
    assert json.loads(accepted.stdout)["spec"]["queuePrefixes"] == ["{namespace}_"]


def test_a_squatter_stored_past_the_webhook_owns_nothing(
    control_plane, start_operator, namespace, kube_client, make_manifest, sqs_endpoint
):
    """A TaskQueue stored while no webhook ran, in another team's names, is refused by the
    reconcile, and does not keep that team from its own queues (it claims nothing)."""
    import kubernetes

    team_b = f"team-b-{uuid.uuid4().hex[:6]}"
    core = kubernetes.client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": team_b}})
    squatter = tenant_manifest(make_manifest, namespace, queuePrefix=f"{team_b}_")
    squatter["metadata"]["name"] = "squatter"
    control_plane.kubectl_run("create", "-f", "-", input=json.dumps(squatter))
    try:
        start(start_operator, sqs_endpoint)
        assert "spec.sqs.queuePrefix" in denied(control_plane, namespace, "squatter")["message"]
        owner = tenant_manifest(make_manifest, team_b)
        owner["metadata"] = {"name": "app", "namespace": team_b}
        created = control_plane.kubectl_run(
            "create", "-f", "-", input=json.dumps(owner), check=False
        )
        assert created.returncode == 0, created.stderr
        wait_for(
            lambda: (
                (condition(get(control_plane, "tq", "app", team_b), "Ready") or {}).get("status")
                == "True"
            ),
            timeout=60,
        )
    finally:
        control_plane.kubectl_run("delete", "tq", "--all", "-n", team_b, "--timeout=60s")
        core.delete_namespace(team_b)
