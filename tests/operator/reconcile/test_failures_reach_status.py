"""Every Kubernetes-side reconcile failure is a condition with a reason, a one-line message
and the generation it is about, and a Warning event (#14 item 6)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from operator_harness import mounted_config_map, roll_out


@pytest.fixture
def forbid_deleting(kube_client: Any, namespace: str) -> Iterator[Any]:
    """A ValidatingAdmissionPolicy refusing DELETE of one ConfigMap in the test's namespace
    (the API server's own admission: no webhook needed)."""
    api = kubernetes.client.AdmissionregistrationV1Api(kube_client)
    name = f"forbid-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def forbid(config_map: str) -> None:
        api.create_validating_admission_policy(
            {
                "metadata": {"name": name},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["DELETE"],
                                "resources": ["configmaps"],
                                "resourceNames": [config_map],
                            }
                        ]
                    },
                    "validations": [{"expression": "false", "message": "kept by policy"}],
                },
            }
        )
        made.append(name)
        api.create_validating_admission_policy_binding(
            {
                "metadata": {"name": name},
                "spec": {
                    "policyName": name,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        }
                    },
                },
            }
        )
        time.sleep(2)  # the API server's policy informer picks it up

    yield forbid
    for made_name in made:
        api.delete_validating_admission_policy_binding(made_name)
        api.delete_validating_admission_policy(made_name)


def _deployment(api: Any, namespace: str, name: str) -> dict[str, Any]:
    live = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return dict(api.sanitize_for_serialization(live))


def test_a_refused_prune_is_a_condition_of_the_new_generation(
    driver, make_manifest, forbid_deleting, kube_client
):
    driver.create(make_manifest())
    driver.reconcile()
    assert driver.condition("Ready")["status"] == "True"
    forbid_deleting(mounted_config_map(_deployment(kube_client, driver.namespace, "app-others")))
    spec = make_manifest()["spec"]
    spec["processors"] = [
        {"name": "main", "tasks": ["record:job", "record_async:job", "other:job"], "replicas": 2}
    ]
    generation = driver.patch_spec("app", spec)["metadata"]["generation"]
    driver.reconcile()  # `main` takes over queue `other`: `others` stays until it rolls out
    roll_out(kube_client, driver.namespace, "app-main")
    outcome = driver.reconcile()
    assert outcome.retry_after is None  # refused until the policy or the spec changes
    status = driver.get()["status"]
    assert status["observedGeneration"] == generation
    ready = driver.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PruneFailed")
    assert ready["observedGeneration"] == generation
    assert "deleting ConfigMap app-others-" in ready["message"]
    assert "kept by policy" in ready["message"] and "\n" not in ready["message"]
    assert ("Warning", "PruneFailed") in [(k, r) for k, r, _ in driver.events]


def test_a_missing_credentials_secret_is_a_condition(driver, make_manifest):
    document = make_manifest()
    document["spec"]["sqs"]["credentialsSecret"] = "nowhere"
    driver.create(document)
    outcome = driver.reconcile()
    assert outcome.retry_after is not None
    ready = driver.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CredentialsSecretMissing")
    assert driver.get()["status"]["observedGeneration"] == 1
