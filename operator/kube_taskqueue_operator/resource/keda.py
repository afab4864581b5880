"""Queue-driven autoscaling with KEDA: a ScaledObject per processor with
`autoscaling.queueLength`, one `aws-sqs-queue` trigger per queue whose depth drives it, and one
TriggerAuthentication per TaskQueue carrying its SQS credentials.

KEDA is the established SQS autoscaler: it polls each queue's depth itself and feeds a
HorizontalPodAutoscaler (and scales to and from zero, which an HPA cannot). The operator only
describes the scaling; it never sets the Deployment's replicas for such a processor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.models import AutoscalingSpec, ProcessorSpec, TaskQueue

API_VERSION = "keda.sh/v1alpha1"
SCALED_OBJECT = "ScaledObject"
TRIGGER_AUTHENTICATION = "TriggerAuthentication"
#: The TriggerAuthentication parameters of the aws-sqs-queue scaler, from the keys of the
#: credentials Secret (the same keys the processors read).
_SECRET_PARAMETERS = (
    ("awsAccessKeyID", "AWS_ACCESS_KEY_ID"),
    ("awsSecretAccessKey", "AWS_SECRET_ACCESS_KEY"),
)


def trigger_authentication_name(resource: TaskQueue) -> str:
    return f"{resource.metadata.name}-sqs"


def driving_queues(processor: ProcessorSpec, polled: list[str]) -> list[str]:
    """The queues whose depth scales the processor: `autoscaling.queues`, else every queue it
    polls (validation refuses one it does not poll)."""
    scaling = processor.autoscaling
    chosen = scaling.queues if scaling is not None and scaling.queues else polled
    return [queue for queue in polled if queue in chosen]


def scaled_object(
    resource: TaskQueue,
    processor: ProcessorSpec,
    *,
    polled: list[str],
    metadata: dict[str, Any],
    queue_urls: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The processor's ScaledObject. `queue_urls` (queue → URL, known once the operator has
    ensured the queues) fill in each trigger's queueURL; without them (`render` offline) the
    queue's SQS name stands in its place."""
    scaling = processor.autoscaling
    assert scaling is not None and scaling.queue_length is not None
    deployment = naming.workload_name(resource, processor.name)
    return {
        "apiVersion": API_VERSION,
        "kind": SCALED_OBJECT,
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_interval,
            "cooldownPeriod": scaling.cooldown_period,
            "advanced": {
                "horizontalPodAutoscalerConfig": {"behavior": _behavior(scaling)},
            },
            "triggers": [
                trigger
                for queue in driving_queues(processor, polled)
                for trigger in _triggers(resource, scaling, queue, queue_urls)
            ],
        },
    }


def _behavior(scaling: AutoscalingSpec) -> dict[str, Any]:
    """Scale out at once; scale in gently, one pod a minute after the stabilization window:
    each pod stopped gets SIGTERM and finishes its running tasks within shutdownTimeout."""
    return {
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {
            "stabilizationWindowSeconds": scaling.scale_down_stabilization,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
    }


def _triggers(
    resource: TaskQueue,
    scaling: AutoscalingSpec,
    queue: str,
    queue_urls: Mapping[str, str] | None,
) -> list[dict[str, Any]]:
    triggers = [_depth_trigger(resource, scaling, queue, queue_urls)]
    if scaling.target_message_age is not None:
        triggers.append(_age_trigger(resource, scaling.target_message_age, queue))
    return triggers


def _age_trigger(resource: TaskQueue, target: int, queue: str) -> dict[str, Any]:
    """SQS reports the age of a queue's oldest message only to CloudWatch (no queue attribute
    says it): KEDA's aws-cloudwatch trigger reads it, the maximum over each minute."""
    return {
        "type": "aws-cloudwatch",
        "metadata": {
            "namespace": "AWS/SQS",
            "metricName": "ApproximateAgeOfOldestMessage",
            "dimensionName": "QueueName",
            "dimensionValue": naming.physical_name(resource, queue),
            "metricStat": "Maximum",
            "metricStatPeriod": "60",
            "metricUnit": "Seconds",
            "targetMetricValue": str(target),
            "minMetricValue": "0",
            "awsRegion": resource.spec.sqs.region or "us-east-1",
        },
        "authenticationRef": {"name": trigger_authentication_name(resource)},
    }


def _depth_trigger(
    resource: TaskQueue,
    scaling: AutoscalingSpec,
    queue: str,
    queue_urls: Mapping[str, str] | None,
) -> dict[str, Any]:
    sqs = resource.spec.sqs
    metadata = {
        "queueURL": (queue_urls or {}).get(queue) or naming.physical_name(resource, queue),
        "queueLength": str(scaling.queue_length),
        "activationQueueLength": str(scaling.activation_queue_length),
        "awsRegion": sqs.region or "us-east-1",
        "scaleOnInFlight": str(scaling.scale_on_in_flight).lower(),
        "scaleOnDelayed": str(scaling.scale_on_delayed).lower(),
    }
    if sqs.endpoint:
        metadata["awsEndpoint"] = sqs.endpoint
    return {
        "type": "aws-sqs-queue",
        "metadata": metadata,
        "authenticationRef": {"name": trigger_authentication_name(resource)},
    }


def trigger_authentication(resource: TaskQueue, *, metadata: dict[str, Any]) -> dict[str, Any]:
    """KEDA reads the queue depths with the processors' own identity: the credentials Secret
    when the TaskQueue names one, else the IAM role of the processors' ServiceAccount (its
    `eks.amazonaws.com/role-arn` annotation), which KEDA assumes with its own identity, so the
    role's trust policy must allow KEDA's role too. Either way KEDA's own role needs no SQS
    rights, and a namespace's scaling reads only what its processors may read."""
    secret = resource.spec.sqs.credentials_secret
    spec: dict[str, Any]
    if secret:
        spec = {
            "secretTargetRef": [
                {"parameter": parameter, "name": secret, "key": key}
                for parameter, key in _SECRET_PARAMETERS
            ]
        }
    else:
        spec = {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}
    return {
        "apiVersion": API_VERSION,
        "kind": TRIGGER_AUTHENTICATION,
        "metadata": metadata,
        "spec": spec,
    }
