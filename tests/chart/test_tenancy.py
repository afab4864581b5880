"""The chart's tenancy values: the default policy reaches the operator, the platform team's
TaskQueuePolicies are created (and validated by the real CRD), and a fresh cluster is told
how to install policies, which Helm cannot create in the release that installs their CRD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import ControlPlane
from kube_taskqueue_operator.resource.crd import POLICY_CRD_PATH
from kube_taskqueue_operator.resource.policy import PolicyRules, parse_rules
from kube_taskqueue_operator.settings import OperatorSettings, from_environment

#: Kinds whose CRDs (cert-manager, Prometheus Operator) the test cluster does not have.
FOREIGN_KINDS = {"Certificate", "Issuer", "PodMonitor"}


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str | None]:
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def policies_values(tmp_path: Path, *tenants: str) -> Path:
    path = tmp_path / "tenancy.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "tenancy": {
                    "namespaces": [tenants[0]],
                    "defaultPolicy": {
                        "queuePrefixes": ["{namespace}-"],
                        "endpoints": ["aws"],
                        "credentialsSecrets": ["sqs-credentials"],
                    },
                    "policies": [
                        {
                            "name": f"{tenants[-1]}-policy",
                            "spec": {
                                "namespaces": list(tenants[1:]),
                                "queuePrefixes": ["team-b-*"],
                                "endpoints": ["default", "https://sqs.example.test"],
                                "regions": ["eu-west-1"],
                                "allowAdoption": True,
                                "allowDeletion": False,
                                "operatorCredentials": "Forbidden",
                                "credentialsSecrets": ["team-b-sqs"],
                                "images": ["registry.example.test/team-b/*"],
                                "serviceAccounts": ["processor-*"],
                            },
                        },
                        {
                            "name": f"{tenants[-1]}-labelled",
                            "spec": {
                                "namespaceSelector": {
                                    "matchExpressions": [
                                        {"key": "tier", "operator": "In", "values": ["apps"]}
                                    ]
                                },
                                "images": ["registry.example.test/*"],
                            },
                        },
                    ],
                }
            }
        )
    )
    return path


def settings_of(env: dict[str, str | None]) -> OperatorSettings:
    return from_environment({k: v for k, v in env.items() if v is not None})


def test_the_default_policy_reaches_the_operator_as_compact_json(chart):
    unset = operator_env(chart.template())
    assert "TASKQUEUE_DEFAULT_POLICY" not in unset
    assert settings_of(unset).default_policy == PolicyRules()  # the built-in default
    policy = {"queuePrefixes": ["{namespace}-"], "operatorCredentials": "Forbidden"}
    env = operator_env(chart.template("--set-json", f"tenancy.defaultPolicy={json.dumps(policy)}"))
    assert json.loads(env["TASKQUEUE_DEFAULT_POLICY"] or "") == policy
    assert " " not in (env["TASKQUEUE_DEFAULT_POLICY"] or "")
    assert settings_of(env).default_policy == parse_rules(policy)


def test_policies_are_cluster_scoped_objects_of_the_release(chart, tmp_path):
    objects = chart.template("-f", str(policies_values(tmp_path, "team-a", "team-b")))
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "TaskQueuePolicy"}
    assert set(policies) == {"team-b-policy", "team-b-labelled"}
    policy = policies["team-b-policy"]
    assert policy["apiVersion"] == "taskqueue.dev/v1alpha1"
    assert "namespace" not in policy["metadata"]
    assert policy["metadata"]["labels"]["app.kubernetes.io/instance"] == "t"
    assert policy["spec"]["credentialsSecrets"] == ["team-b-sqs"]
    assert not [o for o in chart.template() if o["kind"] == "TaskQueuePolicy"]


def test_the_values_schema_has_the_policy_fields_of_the_crd(chart):
    crd = yaml.safe_load(POLICY_CRD_PATH.read_text())
    fields = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    schema = json.loads((chart.path / "values.schema.json").read_text())
    definitions = schema["definitions"]
    assert set(definitions["policySpec"]["properties"]) == set(fields)
    assert set(definitions["policyRules"]["properties"]) == set(fields) - {
        "namespaces",
        "namespaceSelector",
    }
    for name, field in fields.items():
        assert definitions["policySpec"]["properties"][name]["type"] == field["type"], name


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ("tenancy.defaultPolicy.namespaces={a}", "additional properties 'namespaces' not allowed"),
        ("tenancy.defaultPolicy.credentialSecrets={a}", "'credentialSecrets' not allowed"),
        ("tenancy.defaultPolicy.operatorCredentials=Maybe", "operatorCredentials"),
        ("tenancy.namespaces={Not_A_Name}", "/tenancy/namespaces/0"),
        ("rbac.clusterWideWrite=true", "additional properties 'clusterWideWrite' not allowed"),
        ("networkPolicy.webhookFrom[0].ipBlok.cidr=10.0.0.0/8", "'ipBlok' not allowed"),
    ],
)
def test_tenancy_typos_fail_the_install(chart, values, error):
    result = chart.helm(
        "template", "t", str(chart.path), *chart.image, "--set", values, check=False
    )
    assert result.returncode != 0
    assert error in result.stderr


def test_a_policy_selecting_no_namespace_is_refused(chart):
    result = chart.helm(
        "template",
        "t",
        str(chart.path),
        *chart.image,
        "--set-json",
        'tenancy.policies=[{"name":"p","spec":{"images":["*"]}}]',
        check=False,
    )
    assert result.returncode != 0
    assert "/tenancy/policies/0/spec" in result.stderr


#: The values the one-node cluster's story installs the operator with.
CLUSTER_VALUES = Path(__file__).parents[2] / "hack" / "cluster" / "operator-values.yaml"


def test_ci_scenarios_and_the_cluster_story_values_lint(chart):
    for values in [*sorted((chart.path / "ci").glob("*-values.yaml")), CLUSTER_VALUES]:
        result = chart.helm("lint", "--strict", str(chart.path), *chart.image, "-f", str(values))
        assert "0 chart(s) failed" in result.stdout, values
    policy = yaml.safe_load(CLUSTER_VALUES.read_text())["tenancy"]["defaultPolicy"]
    assert parse_rules(policy).credentials_secrets == ["sqs-credentials"]


def test_tenancy_objects_pass_server_side_validation(
    chart, control_plane, crd, namespace, tenant_namespace, tmp_path
):
    """Policies against the real TaskQueuePolicy CRD, RoleBindings in existing namespaces."""
    other = f"{tenant_namespace}-b"
    control_plane.kubectl_run("create", "namespace", other)
    try:
        objects = [
            o
            for o in chart.template(
                "-f",
                str(policies_values(tmp_path, tenant_namespace, other)),
                "-f",
                str(chart.path / "ci" / "tenancy-values.yaml"),
                "--set",
                f"tenancy.namespaces={{{tenant_namespace}}}",
                namespace=namespace,
            )
            if o["kind"] not in FOREIGN_KINDS | {"CustomResourceDefinition"}
        ]
        assert {"TaskQueuePolicy", "RoleBinding", "NetworkPolicy"} <= {o["kind"] for o in objects}
        result = control_plane.kubectl_run(
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            input="\n---\n".join(json.dumps(o) for o in objects),
            check=False,
        )
        assert result.returncode == 0, result.stderr
    finally:
        control_plane.kubectl_run("delete", "namespace", other, "--wait=false")


def test_on_a_fresh_cluster_policies_come_with_the_second_release(chart, tmp_path):
    """Helm maps every object before it creates any, so the release that installs the
    TaskQueuePolicy CRD cannot also hold policies: the chart says so, and the two-step way
    works. A cluster of its own: the shared one already has the CRD."""
    plane = ControlPlane()
    plane.start()
    try:
        fresh = type(chart)(plane)
        plane.kubectl_run("create", "namespace", "ops")
        plane.kubectl_run("create", "namespace", "team-a")
        plane.kubectl_run("create", "namespace", "team-b")
        base = ("-n", "ops", *chart.image, "--set", "webhook.failurePolicy=Ignore")
        policies = ("-f", str(policies_values(tmp_path, "team-a", "team-b")))
        refused = fresh.helm("install", "tq", str(chart.path), *base, *policies, check=False)
        assert refused.returncode != 0
        assert "install (or upgrade) once with tenancy.policies empty" in refused.stderr
        fresh.helm("install", "tq", str(chart.path), *base)
        fresh.helm("upgrade", "tq", str(chart.path), *base, *policies)
        listed = json.loads(plane.kubectl_run("get", "taskqueuepolicies", "-o", "json").stdout)
        assert sorted(p["metadata"]["name"] for p in listed["items"]) == [
            "team-b-labelled",
            "team-b-policy",
        ]
        bindings = plane.kubectl_run(
            "get", "rolebindings", "-A", "-o", "jsonpath={.items[*].metadata.namespace}"
        ).stdout.split()
        assert {"team-a", "team-b"} <= set(bindings)
    finally:
        plane.stop()
