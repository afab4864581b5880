"""The CustomResourceDefinition, generated from the models (the one source of truth).

pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no `$ref`,
every node typed, no `additionalProperties: false`, optionals as plain non-required fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic

from kube_taskqueue_operator.resource import models, policy, yamlio

REPOSITORY = Path(__file__).resolve().parents[3]
CRD_PATH = REPOSITORY / "crds" / "taskqueue.dev_taskqueues.yaml"
#: The chart's copy, templated with `helm.sh/resource-policy: keep` (charts cannot read
#: files outside their own folder).
CHART_CRD_PATH = REPOSITORY / "charts" / "kube-taskqueue-operator" / "files" / CRD_PATH.name
CRD_NAME = f"{models.PLURAL}.{models.GROUP}"
POLICY_CRD_PATH = REPOSITORY / "crds" / f"{models.GROUP}_{policy.POLICY_PLURAL}.yaml"
CHART_POLICY_CRD_PATH = CHART_CRD_PATH.parent / POLICY_CRD_PATH.name
POLICY_CRD_NAME = f"{policy.POLICY_PLURAL}.{models.GROUP}"

#: JSON Schema keywords that carry over to Kubernetes' OpenAPI v3 subset unchanged.
_KEPT = (
    "type",
    "description",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "default",
    "x-kubernetes-validations",
)


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON Schema node into a structural Kubernetes schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        outer = {k: v for k, v in schema.items() if k != "$ref"}
        return structural({**target, **outer}, defs)
    if "anyOf" in schema:
        variants = [v for v in schema["anyOf"] if v.get("type") != "null"]
        outer = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(variants) == 1:
            merged = structural({**variants[0], **outer}, defs)
            if merged.get("default", "") is None:
                del merged["default"]
            return merged
        types = sorted(v.get("type", "") for v in variants)
        if types == ["integer", "string"]:
            return {"x-kubernetes-int-or-string": True, **_kept(outer)}
        raise ValueError(f"no structural form for the union {variants}")
    result = _kept(schema)
    if "const" in schema:
        result["enum"] = [schema["const"]]
    if result.get("default", "") is None:
        del result["default"]
    if schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties:
            result["properties"] = {
                name: structural(node, defs) for name, node in properties.items()
            }
            if schema.get("required"):
                result["required"] = list(schema["required"])
        elif isinstance(extra, dict) and extra:
            result["additionalProperties"] = structural(extra, defs)
        else:
            result["x-kubernetes-preserve-unknown-fields"] = True
    if schema.get("type") == "array":
        result["items"] = structural(schema["items"], defs)
    return result


def _kept(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: schema[key] for key in _KEPT if key in schema}


def openapi_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return structural(schema, schema.get("$defs", {}))


def build_crd() -> dict[str, Any]:
    """The whole CRD object."""
    spec_schema = openapi_schema(models.TaskQueueSpec)
    status_schema = openapi_schema(models.TaskQueueStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "taskqueue"},
        },
        "spec": {
            "group": models.GROUP,
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": models.SHORT_NAMES,
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        # A JSONPath over a list shows its first item only: counts go in status.
                        {"name": "Queues", "type": "integer", "jsonPath": ".status.queueCount"},
                        {
                            "name": "Processors",
                            "type": "integer",
                            "jsonPath": ".status.processorCount",
                        },
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {
                            "name": "Reason",
                            "type": "string",
                            "priority": 1,
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A set of SQS queues, the tasks on them and the "
                            "processors that run those tasks.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def build_policy_crd() -> dict[str, Any]:
    """The TaskQueuePolicy CRD: cluster-scoped, so only cluster administrators (the platform
    team) can write one, never a tenant with rights in its own namespace."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": POLICY_CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "taskqueue"},
        },
        "spec": {
            "group": models.GROUP,
            "names": {
                "kind": policy.POLICY_KIND,
                "listKind": f"{policy.POLICY_KIND}List",
                "plural": policy.POLICY_PLURAL,
                "singular": policy.POLICY_SINGULAR,
                "shortNames": ["tqp"],
            },
            "scope": "Cluster",
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "What the TaskQueues of the selected namespaces may "
                            "do: queue prefixes, SQS endpoints, regions, adoption, deletion, "
                            "credentials, images and ServiceAccounts.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": openapi_schema(policy.TaskQueuePolicySpec),
                            },
                        }
                    },
                }
            ],
        },
    }


_HEADER = (
    "# Generated from kube_taskqueue_operator.resource.{module} by `kube-taskqueue crd`."
    " Do not edit.\n"
)


def render_crd() -> str:
    return _HEADER.format(module="models") + yamlio.dump(build_crd())


def render_policy_crd() -> str:
    return _HEADER.format(module="policy") + yamlio.dump(build_policy_crd())


def generated_files() -> dict[Path, str]:
    """Every checked-in CRD file and its text (crds/ and the chart's copies)."""
    task_queue, policies = render_crd(), render_policy_crd()
    return {
        CRD_PATH: task_queue,
        CHART_CRD_PATH: task_queue,
        POLICY_CRD_PATH: policies,
        CHART_POLICY_CRD_PATH: policies,
    }
