"""The CRD: generated from the models, checked in without drift, structural."""

from __future__ import annotations

from typing import Any

from kube_taskqueue_operator.resource.crd import (
    CHART_CRD_PATH,
    CRD_PATH,
    build_crd,
    build_policy_crd,
    generated_files,
    render_crd,
)


def test_checked_in_crds_match_the_models():
    assert CRD_PATH.read_text() == render_crd(), "run `kube-taskqueue crd --write`"
    assert CHART_CRD_PATH.read_text() == render_crd(), "run `kube-taskqueue crd --write`"
    for path, text in generated_files().items():
        assert path.read_text() == text, f"{path}: run `kube-taskqueue crd --write`"


def test_policies_are_cluster_scoped_so_tenants_cannot_write_them():
    crd = build_policy_crd()
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["kind"] == "TaskQueuePolicy"


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, node)]
    for name, child in node.get("properties", {}).items():
        nodes.extend(walk(child, f"{path}.{name}"))
    if "items" in node:
        nodes.extend(walk(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        nodes.extend(walk(node["additionalProperties"], f"{path}{{}}"))
    return nodes


def schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural():
    # The rules of https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
    # custom-resource-definitions/#specifying-a-structural-schema, as far as we generate.
    forbidden = {
        "$ref",
        "$defs",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "title",
        "const",
        "exclusiveMinimum",
    }
    for path, node in walk(schema()):
        assert not forbidden & node.keys(), f"{path}: {forbidden & node.keys()}"
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") is not False, path
        if node.get("type") == "object":
            assert (
                "properties" in node
                or "additionalProperties" in node
                or node.get("x-kubernetes-preserve-unknown-fields")
                or path == ".metadata"
            ), f"{path}: an object must declare its fields"
        if "default" in node:
            assert node["default"] is not None, path


def test_schema_bounds_and_defaults_from_the_models():
    queue = schema()["properties"]["spec"]["properties"]["queues"]["items"]["properties"]
    assert queue["maxBatchSize"] == {
        "type": "integer",
        "description": "Most messages one poll takes (SQS allows 10).",
        "minimum": 1,
        "maximum": 10,
        "default": 10,
    }
    assert queue["pollInterval"]["minimum"] == 1
    assert queue["deadLetter"]["properties"]["maxReceiveCount"]["default"] == 5
    spec = schema()["properties"]["spec"]
    assert spec["required"] == ["image", "app", "sqs", "queues", "tasks", "processors"]
    assert spec["properties"]["deletionPolicy"]["enum"] == ["Retain", "Delete"]
    processor = spec["properties"]["processors"]["items"]["properties"]
    assert processor["name"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    task = spec["properties"]["tasks"]["items"]["properties"]
    assert task["payload"] == {
        "type": "object",
        "description": "Payload sent on schedule (a JSON object).",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def test_cel_rules_subresource_and_printer_columns():
    version = build_crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Queues"] == ".status.queueCount"
    assert columns["Processors"] == ".status.processorCount"
    assert columns["Age"] == ".metadata.creationTimestamp"
    messages = [
        rule["message"] for rule in schema()["properties"]["spec"]["x-kubernetes-validations"]
    ]
    assert "queue names must be unique" in messages
    assert "every task's queue must be declared in spec.queues" in messages
    names = build_crd()["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "TaskQueue",
        "taskqueues",
        ["tq"],
    )
    assert build_crd()["spec"]["scope"] == "Namespaced"
