"""The operator pods' NetworkPolicy: ingress only on the webhook port (from the API server's
peers) and on the health/metrics port (from Prometheus's namespace); egress left open."""

from __future__ import annotations

import json
from typing import Any


def network_policy(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [policy] = [o for o in objects if o["kind"] == "NetworkPolicy"]
    return policy


def by_port(policy: dict[str, Any]) -> dict[str, list[dict[str, Any]] | None]:
    rules = policy["spec"]["ingress"]
    assert all(len(rule["ports"]) == 1 for rule in rules)
    return {rule["ports"][0]["port"]: rule.get("from") for rule in rules}


def test_by_default_the_webhook_port_is_open_and_metrics_only_to_monitoring(chart):
    objects = chart.template()
    policy = network_policy(objects)
    assert policy["metadata"]["namespace"] == "ops"
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress: API server and SQS
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert by_port(policy) == {
        "webhook": None,  # from anywhere: the API server's address is the cluster's own
        "health": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
    }
    assert set(by_port(policy)) <= ports


def test_peers_are_the_values(chart):
    api_server = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    scraper = [{"podSelector": {"matchLabels": {"app": "prometheus"}}, "namespaceSelector": {}}]
    policy = network_policy(
        chart.template(
            "--set-json",
            f"networkPolicy.webhookFrom={json.dumps(api_server)}",
            "--set-json",
            f"networkPolicy.metricsFrom={json.dumps(scraper)}",
            "--set",
            "networkPolicy.metricsNamespace=observability",
        )
    )
    assert by_port(policy) == {
        "webhook": api_server,
        "health": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "observability"}
                }
            },
            *scraper,
        ],
    }


def test_without_the_webhook_or_a_metrics_peer_nothing_may_connect(chart):
    policy = network_policy(
        chart.template("--set", "webhook.enabled=false", "--set", "networkPolicy.metricsNamespace=")
    )
    assert not policy["spec"].get("ingress")
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_it_can_be_turned_off(chart):
    assert not [
        o
        for o in chart.template("--set", "networkPolicy.enabled=false")
        if o["kind"] == "NetworkPolicy"
    ]
