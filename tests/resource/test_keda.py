"""Queue-driven autoscaling (issue #18): what `autoscaling.queueLength` renders (a KEDA
ScaledObject and TriggerAuthentication) and the contradictions validation refuses."""

from __future__ import annotations

from typing import Any

import pytest
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse, validate_one


def queue_driven(manifest: dict[str, Any], **scaling: Any) -> dict[str, Any]:
    examples = manifest["spec"]["processors"][1]
    examples.pop("replicas", None)
    examples["autoscaling"] = {"minReplicas": 0, "maxReplicas": 8, "queueLength": 20, **scaling}
    return manifest


def objects(manifest: dict[str, Any], **options: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(parse(manifest), **options)}


def problems(manifest: dict[str, Any]) -> list[str]:
    return [problem.message for problem in validate_one(parse(manifest))]


def test_a_queue_driven_processor_gets_a_scaled_object_and_no_replicas(manifest):
    rendered = objects(queue_driven(manifest))
    scaled = rendered[("ScaledObject", "accounts-examples")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "accounts-examples",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 8)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (30, 300)
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    (trigger,) = spec["triggers"]
    assert trigger == {
        "type": "aws-sqs-queue",
        "metadata": {
            "queueURL": "accounts-dev-example_queue",
            "queueLength": "20",
            "activationQueueLength": "0",
            "awsRegion": "eu-west-1",
            "awsEndpoint": "http://sqs.example.net:8771",
            "scaleOnInFlight": "true",
            "scaleOnDelayed": "false",
        },
        "authenticationRef": {"name": "accounts-sqs"},
    }
    # The operator never owns the replica count KEDA sets.
    assert "replicas" not in rendered[("Deployment", "accounts-examples")]["spec"]
    assert rendered[("Deployment", "accounts-main")]["spec"]["replicas"] == 2
    assert ("HorizontalPodAutoscaler", "accounts-examples") not in rendered
    assert [kind for kind, _ in rendered if kind == "ScaledObject"] == ["ScaledObject"]


def test_the_operator_fills_in_the_queue_urls(manifest):
    url = "http://sqs.example.net:8771/000000000000/accounts-dev-example_queue"
    rendered = objects(queue_driven(manifest), queue_urls={"example_queue": url})
    (trigger,) = rendered[("ScaledObject", "accounts-examples")]["spec"]["triggers"]
    assert trigger["metadata"]["queueURL"] == url


def test_keda_reads_the_depths_with_the_taskqueues_own_credentials(manifest):
    auth = objects(queue_driven(manifest))[("TriggerAuthentication", "accounts-sqs")]
    assert auth["spec"] == {
        "secretTargetRef": [
            {"parameter": "awsAccessKeyID", "name": "sqs-credentials", "key": "AWS_ACCESS_KEY_ID"},
            {
                "parameter": "awsSecretAccessKey",
                "name": "sqs-credentials",
                "key": "AWS_SECRET_ACCESS_KEY",
            },
        ]
    }
    del manifest["spec"]["sqs"]["credentialsSecret"]
    auth = objects(queue_driven(manifest))[("TriggerAuthentication", "accounts-sqs")]
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}


def test_one_trigger_per_driving_queue(manifest):
    main = manifest["spec"]["processors"][0]
    main.pop("replicas")
    main["autoscaling"] = {"queueLength": 5, "queues": ["shared"]}
    scaled = objects(manifest)[("ScaledObject", "accounts-main")]
    assert [t["metadata"]["queueURL"] for t in scaled["spec"]["triggers"]] == [
        "accounts-dev-shared"
    ]


def test_scale_to_zero_is_allowed_with_queue_length_and_the_example_is_valid(manifest):
    assert problems(queue_driven(manifest)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"external": True},
            "processor 'examples': autoscaling.queueLength (queue depth, KEDA) excludes external",
        ),
        (
            {"targetCPUUtilizationPercentage": 60},
            "processor 'examples': autoscaling.queueLength (queue depth, KEDA) excludes "
            "targetCPUUtilizationPercentage: choose one autoscaler",
        ),
        (
            {"minReplicas": 9},
            "processor 'examples': autoscaling.minReplicas (9) exceeds maxReplicas (8)",
        ),
        (
            {"queues": ["shared"]},
            "processor 'examples': autoscaling.queues names 'shared', which it does not poll (it "
            "polls example_queue)",
        ),
    ],
)
def test_contradictions_are_refused_naming_them(manifest, change, message):
    found = problems(queue_driven(manifest, **change))
    assert len(found) == 1 and found[0].startswith(message), found


def test_replicas_with_queue_driven_autoscaling_is_refused(manifest):
    queue_driven(manifest)["spec"]["processors"][1]["replicas"] = 3
    assert problems(manifest) == [
        "processor 'examples': replicas 3 has no effect with autoscaling.queueLength (KEDA sets "
        "the count between minReplicas 0 and maxReplicas 8); remove it"
    ]


def test_message_age_scales_through_cloudwatch_on_aws_only(manifest):
    del manifest["spec"]["sqs"]["endpoint"]
    scaled = objects(queue_driven(manifest, targetMessageAgeSeconds=120))[
        ("ScaledObject", "accounts-examples")
    ]
    depth, age = scaled["spec"]["triggers"]
    assert depth["type"] == "aws-sqs-queue"
    assert age["type"] == "aws-cloudwatch"
    assert age["metadata"]["metricName"] == "ApproximateAgeOfOldestMessage"
    assert age["metadata"]["dimensionValue"] == "accounts-dev-example_queue"
    assert age["metadata"]["targetMetricValue"] == "120"
    manifest["spec"]["sqs"]["endpoint"] = "http://sqs.example.net:8771"
    (problem,) = problems(manifest)
    assert "targetMessageAgeSeconds reads SQS's CloudWatch metric" in problem


def test_queue_driven_settings_without_queue_length_are_refused(manifest):
    manifest["spec"]["processors"][1]["autoscaling"] = {"targetMessageAgeSeconds": 60}
    assert problems(manifest) == [
        "processor 'examples': autoscaling.targetMessageAgeSeconds is a setting of queue-driven "
        "autoscaling: set autoscaling.queueLength too"
    ]
