"""The Helm chart, with the real `helm` binary and the real API server."""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart import CHART, IMAGE, Chart
from harness import wait_for
from kube_taskqueue_operator.resource.crd import build_crd, build_policy_crd
from kube_taskqueue_operator.settings import from_environment
from operator_harness import OperatorProcess, condition, create_credentials_secret, get

VALUES = {"default": None, "dev": CHART / "values-dev.yaml", "prod": CHART / "values-prod.yaml"}
#: Kinds whose CRDs (cert-manager, Prometheus Operator) the test cluster does not have.
FOREIGN_KINDS = {"Certificate", "Issuer", "PodMonitor"}


def helm(plane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return Chart(plane).helm(*args, check=check)


def template(plane, *extra: str, namespace: str = "ops") -> list[dict[str, Any]]:
    return Chart(plane).template(*extra, namespace=namespace)


def values_args(name: str) -> list[str]:
    return ["-f", str(VALUES[name])] if VALUES[name] else []


@pytest.mark.parametrize("values", list(VALUES))
def test_lint_strict(control_plane, values):
    result = helm(control_plane, "lint", "--strict", str(CHART), *IMAGE, *values_args(values))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", list(VALUES))
def test_rendered_objects_pass_server_side_validation(control_plane, namespace, values):
    objects = [
        o
        for o in template(control_plane, *values_args(values), namespace=namespace)
        if o["kind"] not in FOREIGN_KINDS
    ]
    stream = "\n---\n".join(
        json.dumps(o) for o in objects if o["kind"] != "CustomResourceDefinition"
    )
    result = control_plane.kubectl_run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=stream, check=False
    )
    assert result.returncode == 0, result.stderr


def test_values_of_the_wrong_type_or_unknown_keys_are_rejected(control_plane, tmp_path):
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("replicaCount: two\n")
    result = helm(
        control_plane,
        "template",
        "t",
        str(CHART),
        "-f",
        str(wrong),
        *IMAGE,
        "--kube-version",
        "1.34.4",
        check=False,
    )
    assert result.returncode != 0
    assert "at '/replicaCount': got string, want integer" in result.stderr
    typo = helm(
        control_plane,
        "template",
        "t",
        str(CHART),
        "--set",
        "sqs.regoin=eu-west-1",
        *IMAGE,
        "--kube-version",
        "1.34.4",
        check=False,
    )
    assert typo.returncode != 0
    assert "additional properties 'regoin' not allowed" in typo.stderr


def test_the_crds_are_the_generated_ones_and_are_kept_on_uninstall(control_plane):
    crds = {
        o["metadata"]["name"]: o
        for o in template(control_plane)
        if o["kind"] == "CustomResourceDefinition"
    }
    for generated in (build_crd(), build_policy_crd()):
        crd = crds.pop(generated["metadata"]["name"])
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["spec"] == generated["spec"]
    assert not crds
    assert not [
        o
        for o in template(control_plane, "--set", "crds.enabled=false")
        if o["kind"] == "CustomResourceDefinition"
    ]


def test_helpers_are_prefixed_and_selectors_carry_no_version(control_plane):
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    defines = re.findall(r'define "([^"]+)"', helpers)
    assert defines and all(name.startswith("kube-taskqueue-operator.") for name in defines)
    [deployment] = [o for o in template(control_plane) if o["kind"] == "Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "0.1.0"


def test_environment_values_reach_the_operator(control_plane):
    objects = template(control_plane, "-f", str(VALUES["prod"]))
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert (env["TASKQUEUE_DEFAULT_REGION"], env["TASKQUEUE_DEFAULT_QUEUE_PREFIX"]) == (
        "eu-west-1",
        "prod-",
    )
    assert env["TASKQUEUE_PEERING"] == "t-kube-taskqueue-operator"  # the release's own
    [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/kube-taskqueue-operator"
    )
    assert "strategy" not in deployment["spec"]  # rolling with peering; Recreate without
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert {o["kind"] for o in objects} >= {
        "PodDisruptionBudget",
        "PodMonitor",
        "Certificate",
        "Issuer",
    }
    [webhook] = [o for o in objects if o["kind"] == "ValidatingWebhookConfiguration"]
    assert (
        webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "ops/t-kube-taskqueue-operator-webhook-tls"
    )
    assert webhook["webhooks"][0]["clientConfig"]["service"]["path"] == "/taskqueue"


def test_without_cert_manager_the_operator_is_told_to_issue_the_certificate(control_plane):
    objects = template(control_plane, "--set", "webhook.certificate.validityDays=30")
    [secret] = [o for o in objects if o["kind"] == "Secret"]
    assert "data" not in secret  # the operator fills it; Helm's merge keeps its data
    [webhook] = [o for o in objects if o["kind"] == "ValidatingWebhookConfiguration"]
    assert "caBundle" not in webhook["webhooks"][0]["clientConfig"]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    settings = from_environment({k: v for k, v in env.items() if v is not None})
    assert settings.webhook_cert_secret == secret["metadata"]["name"]
    assert settings.webhook_configuration == webhook["metadata"]["name"]
    assert settings.webhook_cert_validity == 30 * 86400
    assert "t-kube-taskqueue-operator-webhook.ops.svc" in settings.webhook_hosts
    assert settings.webhook_cert_dir is None
    assert all(v.get("secret") is None for v in pod["volumes"])


def test_pods_meet_the_restricted_pod_security_standard(control_plane):
    [deployment] = [o for o in template(control_plane) if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["readOnlyRootFilesystem"] is True


def service_account_kubeconfig(plane, directory: Path, namespace: str, account: str) -> Path:
    token = plane.kubectl_run(
        "create", "token", account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "sa"
    path = directory / "sa-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def webhook_ca_bundle(plane) -> bytes:
    webhook = json.loads(
        plane.kubectl_run(
            "get", "validatingwebhookconfiguration", "tq-kube-taskqueue-operator", "-o", "json"
        ).stdout
    )
    return base64.b64decode(webhook["webhooks"][0]["clientConfig"].get("caBundle", ""))


def adopt_existing_crd(plane, *, release: str, namespace: str) -> None:
    """A CRD applied earlier in the session (by kubectl, as the operator tests do) is handed
    to the release the way Helm documents for existing objects, so test order does not
    matter."""
    for crd in ("crd/taskqueues.taskqueue.dev", "crd/taskqueuepolicies.taskqueue.dev"):
        if plane.kubectl_run("get", crd, check=False).returncode != 0:
            continue
        plane.kubectl_run("label", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        plane.kubectl_run(
            "annotate",
            crd,
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
            "--overwrite",
        )


def test_install_run_upgrade_uninstall(control_plane, tmp_path, sqs_endpoint, prefix, queues):
    release_ns = "taskqueue-system"
    apps_ns = f"apps-{prefix.strip('-')}"
    for ns in (release_ns, apps_ns):
        control_plane.kubectl_run("create", "namespace", ns, check=False)
    base = [
        *IMAGE,
        "--set",
        f"watchNamespaces={{{apps_ns}}}",
        "--set",
        "sqs.region=us-east-1",
        "--set",
        f"sqs.endpoint={sqs_endpoint}",
        "--set",
        f"sqs.queuePrefix={prefix}",
        "--set",
        "webhook.failurePolicy=Ignore",  # no pods run in the test cluster
        # The app's namespace is a tenant's (watched); its policy allows the test's queue
        # names, SQS server and credentials Secret (the RBAC grants `get` on that name only).
        "--set-json",
        "tenancy.defaultPolicy="
        + json.dumps(
            {
                "queuePrefixes": [prefix],
                "endpoints": [sqs_endpoint],
                "credentialsSecrets": ["sqs"],
            }
        ),
    ]
    adopt_existing_crd(control_plane, release="tq", namespace=release_ns)
    result = helm(
        control_plane, "install", "tq", str(CHART), "-n", release_ns, "--wait=false", *base
    )
    assert "STATUS: deployed" in result.stdout
    assert "kube-taskqueue validate" in result.stdout  # NOTES.txt
    try:
        deployment = get(control_plane, "deployment", "tq-kube-taskqueue-operator", release_ns)
        env = {
            e["name"]: e["value"]
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        # Run the operator as the chart's service account, with the chart's settings. The
        # API server reaches a webhook Service only in a real cluster (failurePolicy Ignore
        # here), but the operator issues the certificate into the chart's Secret and
        # configuration all the same, with the chart's RBAC.
        kubeconfig = service_account_kubeconfig(
            control_plane, tmp_path, release_ns, "tq-kube-taskqueue-operator"
        )
        settings = {
            k.removeprefix("TASKQUEUE_").lower(): v
            for k, v in env.items()
            if k.startswith("TASKQUEUE_")
        }
        settings.update(webhook_managed="false", drift_interval="5")
        for local in ("health_port", "webhook_port"):  # free ports of this machine instead
            settings.pop(local)
        operator = OperatorProcess(control_plane, tmp_path, kubeconfig=str(kubeconfig), **settings)
        try:
            operator.wait_ready()
            wait_for(lambda: webhook_ca_bundle(control_plane), timeout=30)
            secret_before = get(
                control_plane, "secret", "tq-kube-taskqueue-operator-webhook-tls", release_ns
            )["data"]
            bundle = base64.b64decode(secret_before["ca.crt"])
            assert webhook_ca_bundle(control_plane) == bundle
            served = ssl.create_default_context(cadata=bundle.decode())
            # Verifies the chain and the Service's DNS name, as the API server would.
            hostname = f"tq-kube-taskqueue-operator-webhook.{release_ns}.svc"
            with (
                socket.create_connection(("127.0.0.1", operator.webhook_port)) as raw,
                served.wrap_socket(raw, server_hostname=hostname),
            ):
                pass
            document = {
                "apiVersion": "taskqueue.dev/v1alpha1",
                "kind": "TaskQueue",
                "metadata": {"name": "app", "namespace": apps_ns},
                "spec": {
                    "image": "registry.example.test/app:1",
                    "app": "sampleapp:provider",
                    "sqs": {"credentialsSecret": "sqs"},
                    "queues": [{"name": "work", "deadLetter": {"maxReceiveCount": 2}}],
                    "tasks": [{"name": "record:job", "queue": "work"}],
                    "processors": [{"name": "main", "tasks": ["record:job"]}],
                },
            }
            create_credentials_secret(control_plane, apps_ns, key_id="testing", secret="testing")
            control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(document))
            wait_for(
                lambda: (
                    (c := condition(get(control_plane, "tq", "app", apps_ns), "Ready"))
                    and c["status"] == "True"
                ),
                timeout=60,
            )
            assert queues.url("work")  # the chart's default prefix and endpoint were used
            assert get(control_plane, "deployment", "app-main", apps_ns) is not None
            assert "forbidden" not in operator.output().lower(), operator.output()[-2000:]
        finally:
            operator.stop()

        upgraded = helm(
            control_plane,
            "upgrade",
            "tq",
            str(CHART),
            "-n",
            release_ns,
            *base,
            "--set",
            "reconcile.driftInterval=60",
        )
        assert "STATUS: deployed" in upgraded.stdout
        deployment = get(control_plane, "deployment", "tq-kube-taskqueue-operator", release_ns)
        env = {
            e["name"]: e["value"]
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["TASKQUEUE_DRIFT_INTERVAL"] == "60"
        # The issued certificate and its CA bundle survive upgrades (Helm's three-way merge
        # leaves fields it never set).
        assert (
            get(control_plane, "secret", "tq-kube-taskqueue-operator-webhook-tls", release_ns)[
                "data"
            ]
            == secret_before
        )
        assert webhook_ca_bundle(control_plane) == bundle
    finally:
        helm(control_plane, "uninstall", "tq", "-n", release_ns, check=False)
    assert get(control_plane, "deployment", "tq-kube-taskqueue-operator", release_ns) is None
    assert (
        control_plane.kubectl_run("get", "crd", "taskqueues.taskqueue.dev", check=False).returncode
        == 0
    )
    assert get(control_plane, "tq", "app", apps_ns) is not None
    assert queues.url("work")


def test_plain_helm_template_renders_as_gitops_tools_run_it(control_plane):
    """No --kube-version: Helm's built-in version is v1.20.0, which a kubeVersion constraint in
    Chart.yaml would refuse although no cluster is involved."""
    result = helm(control_plane, "template", "t", str(CHART), *IMAGE)
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"Deployment", "CustomResourceDefinition"} <= kinds


def test_a_cluster_older_than_the_chart_supports_is_refused_by_name(control_plane):
    result = helm(
        control_plane, "template", "t", str(CHART), *IMAGE, "--kube-version", "1.25.3", check=False
    )
    assert result.returncode != 0
    assert "needs Kubernetes 1.27 or newer" in result.stderr
    assert "this cluster is v1.25.3" in result.stderr
    # Against the real (1.34) API server the check passes: test_install_run_upgrade_uninstall.


def test_an_image_left_unset_fails_with_a_message_that_says_what_to_do(control_plane):
    result = helm(control_plane, "template", "t", str(CHART), check=False)
    assert result.returncode != 0
    assert "image.repository is not set: build the operator image" in result.stderr
    assert "traceback" not in result.stderr.lower()


def test_readiness_means_admits_correctly_and_prod_ships_peering(control_plane):
    """Ready = the claim index is complete (/readyz), not merely "the process is up"; with
    peering the chart ships kopf's peering CRDs (the operator creates the peering object)."""
    objects = template(control_plane, "-f", str(VALUES["prod"]))
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TASKQUEUE_PEERING_LIFETIME"] == "15"
    crds = {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    assert {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= crds
    single = template(control_plane)
    assert not any(o["metadata"]["name"].endswith(".kopf.dev") for o in single)


def _known_metric_names() -> set[str]:
    """Every series name the operator and a processor export."""
    from kube_taskqueue.runtime.metrics import Metrics
    from kube_taskqueue_operator.metrics import OperatorMetrics

    names: set[str] = set()
    for registry in (Metrics().registry, OperatorMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
                names.add(family.name + suffix)
    return names


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\btaskqueue_[a-z_]+", expr))


def test_alerts_and_dashboard_use_only_metrics_that_exist(control_plane):
    objects = template(
        control_plane,
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.operatorPodMonitor.enabled=true",
        "--set",
        "metrics.grafanaDashboard.enabled=true",
    )
    known = _known_metric_names()
    [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "TaskQueueDeadLetters",
        "TaskQueueMessagesWaitTooLong",
        "TaskQueueBacklog",
        "TaskQueueProcessorNotReady",
        "TaskQueueNotReady",
    }
    for name, alert in alerts.items():
        used = _metric_names(alert["expr"])
        assert used and used <= known, (name, used - known)
        # Prometheus's own templates reach Prometheus unexpanded by Helm.
        assert "{{ $labels." in alert["annotations"]["summary"], name
    assert alerts["TaskQueueDeadLetters"]["expr"].endswith("> 0")
    [monitor] = [o for o in objects if o["kind"] == "PodMonitor"]  # processors' is off
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "health"
    [dashboard] = [
        o for o in objects if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["kube-taskqueue.json"])
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        used = _metric_names(expr)
        assert used and used <= known, (expr, used - known)
    # Off by default: nothing that needs the Prometheus Operator's CRDs.
    default = template(control_plane)
    assert not [o for o in default if o["kind"] in ("PrometheusRule", "PodMonitor")]


def test_a_shard_release_passes_its_selector_and_reads_every_claim(control_plane):
    objects = template(
        control_plane,
        "--set", "shard.selector=taskqueue.dev/shard=a",
        "--set", "shard.claimsClusterWide=true",
        "--set", "watchNamespaces={team-a}",
    )  # fmt: skip
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TASKQUEUE_SHARD_SELECTOR"] == "taskqueue.dev/shard=a"
    assert env["TASKQUEUE_CLAIMS_CLUSTER_WIDE"] == "true"
    from_environment({k: v for k, v in env.items() if v is not None})  # the operator takes it
    [cluster] = [
        o
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-cluster")
    ]
    assert {
        "apiGroups": ["taskqueue.dev"],
        "resources": ["taskqueues"],
        "verbs": ["get", "list", "watch"],
    } in cluster["rules"]
    refused = helm(
        control_plane, "template", "t", str(CHART), *IMAGE, "--set", "shard.selector=shard in (a)",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "shard" in refused.stderr
